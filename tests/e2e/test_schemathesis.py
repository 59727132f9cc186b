"""Property-based tests of a served node: whatever a client sends, the node answers 4xx, not 5xx.

1. Schemathesis reads the running node's own OpenAPI document and, for every operation,
   generates valid and invalid requests (positive and negative modes): no answer is a server
   error, and every error is the JSON error body ``{"error": {"code", "message", ...}}``.
2. Hypothesis posts random bytes, random JSON and mutated copies of a valid envelope to
   ``/ledger/transactions``: each is refused at intake with a stable reason code, nothing is
   committed, and the chain still verifies (``medledger chain verify``): no half-applied block.
3. Hypothesis signs transactions with random payloads, so they pass intake and reach the
   contracts: each is committed, as ok or with a reason code, never a 5xx, and the chain
   replays from genesis to the live state.

The budget is small on purpose (tens of examples per operation): this is a smoke alarm in the
default test run, not a soak.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from medledger.client import new_transaction
from medledger.core.crypto.key_wrap import x25519_from_seed
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts import default_contracts
from medledger.core.ledger.envelope import INTAKE_REASONS
from medledger.core.ledger.tx import SignedTransaction
from medledger.entrypoints.cli.demo import synthetic_cid

from .conftest import MEDLEDGER, DemoLedgerNode

REASON_CODE = re.compile(r"[a-z][a-z_]{0,40}")
FAST = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


@pytest.fixture(scope="module")
def http(demo_ledger_node: DemoLedgerNode) -> httpx.Client:
    return demo_ledger_node.http


def assert_error_body(status: int, content_type: str, text: str) -> None:
    """An error is our JSON error body: a code and a message, never a traceback (the token
    endpoint's is RFC 6749 §5.2's: an error code and a description; on /fhir: a FHIR
    OperationOutcome with an issue code)."""
    if status < 400:
        return
    if content_type.startswith("application/fhir+json"):
        issue = json.loads(text)["issue"][0]
        assert isinstance(issue["code"], str)
        assert "Traceback" not in text
        return
    assert content_type.startswith("application/json"), (status, text[:200])
    body = json.loads(text)
    assert "Traceback" not in text
    if isinstance(body["error"], str):
        assert isinstance(body["error_description"], str)
        return
    error = body["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)


def chain_verifies(node: DemoLedgerNode) -> None:
    """`medledger chain verify` replays every block from genesis against the live state."""
    result = subprocess.run(
        [*MEDLEDGER, "chain", "verify", "--home", str(node.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def latest_block_and_log(http: httpx.Client) -> tuple[int, int]:
    """The latest block's height, after checking it commits to the whole log."""
    r = http.get("/ledger/blocks/latest")
    assert r.status_code == 200
    header = r.json()["header"]
    assert http.get("/healthz").json()["log_size"] == header["log_size"]
    return int(header["height"]), int(header["log_size"])


# --- 1. every operation of the served OpenAPI document ----------------------------------------
#: What the node serves; a new route fails ``test_the_served_schema_lists_every_operation``
#: until it is added here, and so fuzzed.
OPERATIONS = (
    "GET /healthz",
    "GET /log/checkpoint",
    "GET /log/verifier-key",
    "GET /log/entries/{index}",
    "GET /log/proof/inclusion",
    "GET /log/proof/consistency",
    "GET /log/receipt/{index}",
    "GET /log/tile/{path}",
    "POST /ledger/transactions",
    "GET /ledger/transactions/{tx_id}",
    "GET /ledger/blocks/latest",
    "GET /ledger/blocks/{height}",
    "GET /ledger/participants",
    "GET /ledger/participants/{did}",
    "GET /ledger/records/{patient}",
    "GET /ledger/records/{patient}/{record_id}",
    "GET /ledger/access-batches/{batch_id}",
    "GET /ledger/reviews/{event_id}",
    "GET /ledger/escrows/{escrow_id}",
    "GET /ledger/escrows/{escrow_id}/requests/{request_id}",
    "GET /ledger/genesis",
    "GET /ledger/state-proof",
    "POST /records",
    "POST /records/read",
    "POST /records/key-release",
    "POST /records/erase",
    "GET /blobs/{cid}",
    "GET /consents/{patient}",
    "GET /consents/{patient}/{consent_id}/fhir",
    "POST /audit/events",
    "POST /audit/reviews",
    "POST /audit/review-notes",
    "POST /audit/review-notes/erase",
    "POST /audit/stats",
    "GET /log/checkpoints",
    "POST /auth/token",
    "GET /.well-known/smart-configuration",
    "GET /fhir/metadata",
    "POST /fhir",
    "GET /fhir/Consent",
    "POST /fhir/Consent",
    "GET /fhir/Consent/{consent_id}",
    "PUT /fhir/Consent/{consent_id}",
    "DELETE /fhir/Consent/{consent_id}",
    "GET /fhir/AuditEvent",
    "GET /fhir/Patient/{patient_id}/$everything",
    "GET /fhir/Provenance",
    "GET /fhir/Provenance/{provenance_id}",
    "GET /fhir/{resource_type}/_history",
    "GET /fhir/{resource_type}",
    "POST /fhir/{resource_type}",
    "PUT /fhir/{resource_type}",
    "DELETE /fhir/{resource_type}",
    "POST /fhir/{resource_type}/_search",
    "GET /fhir/{resource_type}/{record_id}",
    "PUT /fhir/{resource_type}/{record_id}",
    "DELETE /fhir/{resource_type}/{record_id}",
    "GET /fhir/{resource_type}/{record_id}/_history",
    "GET /fhir/{resource_type}/{record_id}/_history/{version}",
)


@pytest.fixture(scope="module")
def served_schema(demo_ledger_node: DemoLedgerNode) -> Any:
    """The OpenAPI document of the running node, as schemathesis reads it."""
    return schemathesis.openapi.from_url(demo_ledger_node.url + "openapi.json", timeout=10)


def test_the_served_schema_lists_every_operation(served_schema: Any):
    served = {result.ok().label for result in served_schema.get_all_operations()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_operation_answers_a_server_error(
    served_schema: Any, demo_ledger_node: DemoLedgerNode, label: str
):
    method, path = label.split(" ", 1)
    operation = served_schema[path][method]
    # Positive cases follow the schema; negative ones break it (wrong types, out-of-range and
    # malformed values), which is where a node that trusts its router would fail.
    modes = [GenerationMode.POSITIVE]
    if operation.path_parameters or operation.query:
        modes.append(GenerationMode.NEGATIVE)
    base_url = demo_ledger_node.url.rstrip("/")

    @settings(FAST, max_examples=25)
    @given(case=st.one_of([operation.as_strategy(mode) for mode in modes]))
    def no_server_error(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500
        assert_error_body(
            response.status_code, response.headers.get("content-type", [""])[0], response.text
        )

    no_server_error()


# --- 2. junk at the transaction intake ----------------------------------------------------
#: Any JSON, including what the intake refuses: floats, NaN, Infinity, huge integers.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MUTATIONS = ("letter", "byte", "cut", "insert", "space", "field", "drop", "extra", "same")


@st.composite
def mutated(draw: st.DrawFn, wire: bytes) -> bytes:
    """A valid envelope, damaged in one way: a letter or byte changed, bytes cut or inserted,
    whitespace added, or a field replaced, dropped or added. Unchanged, it is a replay."""
    kind = draw(st.sampled_from(MUTATIONS))
    at = draw(st.integers(0, len(wire) - 1))
    if kind == "letter":  # still JSON, still canonical: only the signature can tell
        letters = [i for i, b in enumerate(wire) if b in ALNUM]
        at = draw(st.sampled_from(letters))
        return wire[:at] + bytes([draw(st.sampled_from(ALNUM))]) + wire[at + 1 :]
    if kind == "byte":
        return wire[:at] + bytes([draw(st.integers(0, 255))]) + wire[at + 1 :]
    if kind == "cut":
        return wire[:at] + wire[at + draw(st.integers(1, 40)) :]
    if kind == "insert":
        return wire[:at] + draw(st.binary(min_size=1, max_size=8)) + wire[at:]
    if kind == "space":
        return wire.replace(b",", b", ", 1) if draw(st.booleans()) else wire + b"\n"
    if kind == "same":
        return wire
    obj = json.loads(wire)
    key = draw(st.sampled_from(sorted(obj)))
    if kind == "field":
        obj[key] = draw(json_values)
    elif kind == "drop":
        del obj[key]
    else:
        obj[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def committed_envelope(node: DemoLedgerNode, http: httpx.Client) -> SignedTransaction:
    """A committed transaction: its exact wire is a replay now, so no mutation of it passes."""
    stx = new_transaction(
        node.keys["hospital"],
        network=node.network,
        tx_type="access.batch",
        payload={
            "batch_id": "fuzz-base-batch",
            "root": "ab" * 32,
            "count": 1,
            "first_time_ms": 0,
            "last_time_ms": 0,
        },
        now_s=int(time.time()),
    )
    r = http.post("/ledger/transactions", params={"wait": "commit"}, content=stx.wire)
    assert r.status_code == 200, r.text
    return stx


def test_junk_envelopes_are_refused_at_intake_and_leave_the_chain_whole(
    demo_ledger_node: DemoLedgerNode, http: httpx.Client
):
    base = committed_envelope(demo_ledger_node, http)
    before = latest_block_and_log(http)

    @settings(FAST, max_examples=200)
    @given(
        body=st.one_of(
            st.binary(max_size=600),
            json_values.map(lambda v: json.dumps(v).encode()),
            mutated(base.wire),  # twice: the cases closest to a valid envelope matter most
            mutated(base.wire),
        )
    )
    def refused(body: bytes) -> None:
        r = http.post("/ledger/transactions", params={"wait": "none"}, content=body)
        assert r.status_code in (400, 413), (r.status_code, r.text)
        assert r.json()["error"]["code"] in INTAKE_REASONS, r.text

    refused()
    # Nothing was committed, the node still serves, and the chain replays to the live state.
    assert latest_block_and_log(http) == before
    chain_verifies(demo_ledger_node)


# --- 3. signed transactions with random payloads reach the contracts ------------------------
#: JSON a sender can sign (integers within 2**53, Unicode scalar values only).
payload_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=16)
    | st.sampled_from(["patient", "practitioner", "organization", "physician", "erasure"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), inner)
    ),
    max_leaves=8,
)
#: The fields each contract reads, required then optional (``core.ledger.contracts``).
FIELDS = {
    "participant.register": (("did", "kind", "roles"), ("organization", "name")),
    "participant.update_roles": (("did", "roles"), ()),
    "participant.deactivate": (("did",), ()),
    "record.anchor": (
        ("patient", "record_id", "resource_type", "version", "commitment", "cid", "prev"),
        (),
    ),
    "record.tombstone": (("patient", "record_id", "reason"), ()),
    "access.batch": (("batch_id", "root", "count", "first_time_ms", "last_time_ms"), ()),
    "participant.set_encryption_key": (("enc_key",), ()),
    "escrow.create": (("escrow_id", "threshold", "custodians", "key_did"), ()),
    "escrow.request": (("escrow_id", "request_id", "enc_key", "reason"), ()),
    "escrow.approve": (("escrow_id", "request_id", "share_wrap"), ()),
    "consent.grant": (("consent",), ()),
    "consent.revoke": (("patient", "consent_id"), ()),
    "consent.delegate": (("patient", "delegate"), ("until_ms",)),
    "consent.undelegate": (("patient", "delegate"), ()),
    "access.review": (("batch_id", "event_id", "outcome"), ("note_commitment",)),
}


def plausible_fields(node: DemoLedgerNode) -> dict[str, st.SearchStrategy[Any]]:
    """Values a contract could accept, so generated payloads get past parsing to the rules."""
    hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
    did = st.sampled_from([node.keys[n].did for n in ("hospital", "dr-house", "patient-1")]) | (
        st.binary(min_size=32, max_size=32).map(lambda seed: ParticipantKey.from_seed(seed).did)
    )
    record_id = st.sampled_from(["rec-1", "rec-2"])
    return {
        "did": did,
        "kind": st.sampled_from(["organization", "practitioner", "patient"]),
        "roles": st.sampled_from([["physician"], ["nurse"], ["clinic"], []]),
        "organization": did,
        "name": st.just("Demo Fuzz Clinic (demo)"),
        "patient": did,
        "record_id": record_id,
        "resource_type": st.sampled_from(["Observation", "Condition"]),
        "version": st.integers(1, 2),
        "commitment": hex64,
        "cid": st.binary(min_size=1, max_size=8).map(synthetic_cid),
        "prev": st.none(),
        "reason": st.sampled_from(["erasure", "entered-in-error"]),
        "batch_id": st.sampled_from(["fuzz-batch-1", "fuzz-batch-2"]),
        "root": hex64,
        "count": st.integers(1, 1_000),
        "first_time_ms": st.integers(0, 2_000),
        "last_time_ms": st.integers(0, 2_000),
        "enc_key": st.binary(min_size=32, max_size=32).map(
            lambda seed: x25519_from_seed(seed).public_key.hex()
        ),
        "escrow_id": st.sampled_from(["fuzz-escrow-1", "fuzz-escrow-2"]),
        "request_id": st.sampled_from(["fuzz-request-1", "fuzz-request-2"]),
        "threshold": st.integers(1, 3),
        "custodians": st.lists(did, min_size=1, max_size=3),
        "key_did": did,
        "share_wrap": st.binary(min_size=1, max_size=64).map(
            lambda b: base64.b64encode(b).decode()
        ),
        "consent": st.builds(_consent, st.sampled_from(["c-1", "c-2"]), did, did),
        "consent_id": st.sampled_from(["c-1", "c-2"]),
        "delegate": did,
        "until_ms": st.none() | st.integers(0, 2**53 - 1),
        "event_id": st.sampled_from(["a" * 26, "b" * 26]),
        "outcome": st.sampled_from(["justified", "unjustified", "referred"]),
        "note_commitment": hex64,
    }


def _consent(consent_id: str, patient: str, actor: str) -> dict[str, Any]:
    """A consent's policy form: ``patient`` permits ``actor`` to read for treatment."""
    provision = {
        "type": "permit", "period": None, "actions": ["access"], "security_labels": [],
        "purposes": ["TREAT"], "classes": [], "codes": [], "data_period": None, "data": [],
        "provisions": [],
        "actors": [{"role": "PRCP", "reference": actor, "practitioner_role": None}],
    }  # fmt: skip
    return {
        "consent_id": consent_id, "patient": patient, "status": "active",
        "scope": "patient-privacy", "categories": ["http://loinc.org|59284-0"],
        "performers": [], "organizations": [],
        "policy_rule": None, "date_time_ms": None, "provision": provision,
    }  # fmt: skip


def payloads(node: DemoLedgerNode, tx_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """A payload for ``tx_type``: plausible values, or one field dropped, replaced by random
    JSON, or an unknown field added."""
    plausible = plausible_fields(node)
    required, optional = FIELDS[tx_type]
    complete = st.fixed_dictionaries(
        {name: plausible[name] for name in required},
        optional={name: plausible[name] for name in optional},
    )
    dropped = st.tuples(complete, st.sampled_from(required)).map(
        lambda p: {k: v for k, v in p[0].items() if k != p[1]}
    )
    corrupted = st.tuples(complete, st.sampled_from(required), payload_values).map(
        lambda p: {**p[0], p[1]: p[2]}
    )
    extra = st.tuples(complete, st.sampled_from(sorted(plausible)), payload_values).map(
        lambda p: {p[1]: p[2], **p[0]}
    )
    return st.one_of(complete, dropped, corrupted, extra)


def test_signed_random_payloads_are_committed_with_a_reason_never_a_server_error(
    demo_ledger_node: DemoLedgerNode, http: httpx.Client
):
    node = demo_ledger_node
    assert set(FIELDS) == {t for c in default_contracts() for t in c.tx_types}
    seed_participants(node, http)
    submitted: list[str] = []
    start_height, _ = latest_block_and_log(http)

    @settings(FAST, max_examples=100)
    @given(
        signer=st.sampled_from(["hospital", "clinic", "dr-house", "patient-1", "nurse-joy"]),
        typed=st.sampled_from(sorted(FIELDS)).flatmap(
            lambda t: st.tuples(st.just(t), payloads(node, t))
        ),
    )
    def reaches_the_contracts(signer: str, typed: tuple[str, dict[str, Any]]) -> None:
        tx_type, payload = typed
        stx = new_transaction(
            node.keys[signer],
            network=node.network,
            tx_type=tx_type,
            payload=payload,
            now_s=int(time.time()),
        )
        assert canonical(json.loads(stx.wire)) == stx.wire
        r = http.post("/ledger/transactions", params={"wait": "none"}, content=stx.wire)
        if r.status_code == 413:  # a payload nested past the limit is refused at intake
            assert r.json()["error"]["code"] == "oversize"
            return
        assert r.status_code in (200, 202), r.text
        submitted.append(stx.tx_id.hex())

    reaches_the_contracts()
    for tx_id in submitted:
        status = wait_committed(http, tx_id)
        assert isinstance(status["ok"], bool)
        if not status["ok"]:
            assert REASON_CODE.fullmatch(status["reason"]), status
    height, _ = latest_block_and_log(http)
    assert height > start_height
    chain_verifies(node)


def seed_participants(node: DemoLedgerNode, http: httpx.Client) -> None:
    """Register a practitioner and a patient, so random payloads get past the sender check."""
    hospital = node.keys["hospital"]
    for payload in (
        {
            "did": node.keys["dr-house"].did,
            "kind": "practitioner",
            "roles": ["physician"],
            "organization": hospital.did,
        },
        {"did": node.keys["patient-1"].did, "kind": "patient", "roles": []},
    ):
        stx = new_transaction(
            hospital,
            network=node.network,
            tx_type="participant.register",
            payload=payload,
            now_s=int(time.time()),
        )
        r = http.post("/ledger/transactions", params={"wait": "commit"}, content=stx.wire)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True, r.text


def wait_committed(http: httpx.Client, tx_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll a transaction until it is committed (the builder cuts a block every 200 ms)."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = http.get(f"/ledger/transactions/{tx_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] == "committed":
            return body
        assert time.monotonic() < deadline, f"{tx_id} was not committed in {timeout_s} s"
        time.sleep(0.02)
