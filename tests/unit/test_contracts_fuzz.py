"""Every contract under arbitrary payloads and senders, through the runtime.

Whatever a transaction holds, applying it either succeeds with writes that are canonical JSON
objects (or deletions) under the owning contract's own key prefix, or is refused with a known
reason code: never any other exception, never a change to the state it read, and the same
outcome each time.
Payloads mix arbitrary JSON (the restricted model) with values that mean something in the
state (registered DIDs, the head hash of a record), so that the success paths are reached too.
"""

from __future__ import annotations

import hashlib
import json

from hypothesis import event, given, settings
from hypothesis import strategies as st

from medledger.core.crypto.key_wrap import x25519_from_seed
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts import default_contracts
from medledger.core.ledger.contracts.access_batch import AccessBatchContract
from medledger.core.ledger.contracts.consent import ConsentContract
from medledger.core.ledger.contracts.participants import ParticipantsContract
from medledger.core.ledger.contracts.records import RecordsContract, head_key
from medledger.core.ledger.contracts.review import ReviewContract
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, Runtime
from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=9, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACTS = (
    ParticipantsContract(),
    RecordsContract(),
    ConsentContract(),
    AccessBatchContract(),
    ReviewContract(),
)
RUNTIME = Runtime(CONTRACTS)
NAMESPACE = {tx_type: c.namespace for c in CONTRACTS for tx_type in c.tx_types}
TX_TYPES = sorted(NAMESPACE)
NONCE_PREFIX = "nonce/"
KNOWN_REASONS = {
    # the runtime's
    "unknown_type",
    "wrong_network",
    "expired",
    "replayed_nonce",
    # shared
    "invalid_payload",
    "sender_not_registered",
    # participants
    "not_authority",
    "not_organization",
    "not_allowed",
    "unknown_organization",
    "unknown_participant",
    "already_registered",
    "participant_inactive",
    # records
    "unknown_record",
    "version_conflict",
    "chain_broken",
    "not_author_org",
    "patient_not_registered",
    "tombstoned",
    "resource_type_mismatch",
    # access batches
    "duplicate_batch",
    # consent
    "unknown_patient",
    "not_patient_or_delegate",
    "not_patient",
    "consent_exists",
    "already_revoked",
    "too_many_consents",
    "unknown_delegate",
    # reviews
    "not_privacy_officer",
    "unknown_batch",
    "not_own_organization",
    "already_reviewed",
}

AUTHORITY, AUTHORITY_2, HOSPITAL, CLINIC = did(1), did(2), did(10), did(11)
DOCTOR, NURSE, PATIENT, PATIENT_2, STRANGER = did(20), did(21), did(30), did(31), did(99)
OFFICER = did(22)
DIDS = [
    AUTHORITY, AUTHORITY_2, HOSPITAL, CLINIC, DOCTOR, NURSE, OFFICER, PATIENT, PATIENT_2, STRANGER
]  # fmt: skip
HEX = hashlib.sha256(b"x").hexdigest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def signed(tx_type: str, payload: dict[str, JSON], sender: str, nonce: str) -> SignedTransaction:
    tx = Transaction(NETWORK, tx_type, payload, sender, nonce, 2_000_000_000)
    tx_id = hashlib.sha256(canonical(tx.body())).digest()
    return SignedTransaction(tx, bytes(64), tx_id, b"")


REGISTER = "participant.register"


def practitioner(who: str, role: str, organization: str) -> dict[str, JSON]:
    return {"did": who, "kind": "practitioner", "roles": [role], "organization": organization}


def valid_anchor() -> dict[str, JSON]:
    return {
        "patient": PATIENT,
        "record_id": "rec-1",
        "resource_type": "Observation",
        "version": 1,
        "commitment": HEX,
        "cid": CID,
        "prev": None,
    }


def valid_batch() -> dict[str, JSON]:
    return {
        "batch_id": "batch-0001",
        "root": HEX,
        "count": 3,
        "first_time_ms": 1,
        "last_time_ms": 2,
    }


def valid_consent(consent_id: str = "c-1", actor: str = DOCTOR) -> dict[str, JSON]:
    """A consent's policy form (``medledger.core.consent.model``): PATIENT permits ``actor``."""
    return {
        "consent_id": consent_id,
        "patient": PATIENT,
        "status": "active",
        "scope": "patient-privacy",
        "categories": ["http://loinc.org|59284-0"],
        "performers": [],
        "organizations": [],
        "policy_rule": None,
        "date_time_ms": None,
        "provision": {
            "type": "permit",
            "period": None,
            "actors": [{"role": "PRCP", "reference": actor, "practitioner_role": None}],
            "actions": ["access"],
            "security_labels": [],
            "purposes": ["TREAT"],
            "classes": ["Observation"],
            "codes": [],
            "data_period": None,
            "data": [],
            "provisions": [],
        },
    }


EVENT_ID = "a" * 26


def build_world() -> DictState:
    """A genesis, organizations, staff, patients, a record at version 1 and an access batch."""
    genesis = Genesis(
        NETWORK,
        0,
        (
            Authority(AUTHORITY, "Health Authority", ("regulator",)),
            Authority(AUTHORITY_2, "Identity Provider", ("identity-provider",)),
        ),
    )
    state = DictState(genesis_writes(genesis))
    org = "organization"
    setup: list[tuple[str, dict[str, JSON], str]] = [
        (REGISTER, {"did": HOSPITAL, "kind": org, "roles": ["hospital"]}, AUTHORITY),
        (REGISTER, {"did": CLINIC, "kind": org, "roles": ["clinic"]}, AUTHORITY),
        (REGISTER, practitioner(DOCTOR, "physician", HOSPITAL), AUTHORITY),
        (REGISTER, practitioner(NURSE, "nurse", CLINIC), AUTHORITY),
        (REGISTER, practitioner(OFFICER, "privacy-officer", HOSPITAL), AUTHORITY),
        (REGISTER, {"did": PATIENT, "kind": "patient"}, HOSPITAL),
        (REGISTER, {"did": PATIENT_2, "kind": "patient"}, CLINIC),
        ("record.anchor", valid_anchor(), DOCTOR),
        ("access.batch", valid_batch(), HOSPITAL),
        ("consent.grant", {"consent": valid_consent()}, PATIENT),
        ("consent.delegate", {"patient": PATIENT, "delegate": PATIENT_2}, PATIENT),
    ]
    txs = [signed(t, p, s, f"setup-{i:04d}") for i, (t, p, s) in enumerate(setup)]
    results, writes = RUNTIME.apply_block(txs, state, CTX)
    assert all(r.ok for r in results), results
    state.apply(writes)
    return state


WORLD = build_world()
ENC_KEY = x25519_from_seed(bytes(32)).public_key.hex()
V1_HASH = json.loads(WORLD.get(head_key(PATIENT, "rec-1")) or b"")["hash"]

FIELDS: dict[str, tuple[str, ...]] = {
    "participant.register": ("did", "kind", "roles", "organization", "name"),
    "participant.update_roles": ("did", "roles"),
    "participant.deactivate": ("did",),
    "participant.set_encryption_key": ("enc_key",),
    "record.anchor": (
        "patient",
        "record_id",
        "resource_type",
        "version",
        "commitment",
        "cid",
        "prev",
    ),
    "record.tombstone": ("patient", "record_id", "reason"),
    "access.batch": ("batch_id", "root", "count", "first_time_ms", "last_time_ms"),
    "consent.grant": ("consent",),
    "consent.revoke": ("patient", "consent_id"),
    "consent.delegate": ("patient", "delegate", "until_ms"),
    "consent.undelegate": ("patient", "delegate"),
    "access.review": ("batch_id", "event_id", "outcome"),
}
#: Per field: values that are well formed (some of them refused by the state, say a version
#: that is not next) and values that are malformed in a way the contract must name.
WELL_FORMED: dict[str, list[JSON]] = {
    "did": [*DIDS, did(50)],
    "patient": [PATIENT, PATIENT_2, DOCTOR, STRANGER],
    "organization": [None, HOSPITAL, CLINIC, PATIENT, STRANGER],
    "kind": ["organization", "practitioner", "patient"],
    "roles": [[], ["hospital"], ["lab", "clinic"], ["physician"], ["nurse", "pharmacist"]],
    "name": [None, "Example Clinic"],
    "record_id": ["rec-1", "rec-2"],
    "resource_type": ["Observation", "Condition"],
    "version": [1, 2, 3],
    "commitment": [HEX],
    "cid": [CID],
    "prev": [None, V1_HASH, HEX],
    "reason": ["erasure", "entered-in-error"],
    "batch_id": ["batch-0001", "batch-0002"],
    "root": [HEX],
    "count": [1, 1_000_000],
    "first_time_ms": [0, 1_000],
    "last_time_ms": [1_000, 2_000],
    "enc_key": [ENC_KEY],
    "consent": [valid_consent("c-2"), valid_consent("c-1"), valid_consent("c-3", NURSE)],
    "consent_id": ["c-1", "c-2"],
    "delegate": [PATIENT_2, DOCTOR, STRANGER],
    "until_ms": [None, CTX.time_ms + 1_000],
    "event_id": [EVENT_ID, "b" * 26],
    "outcome": ["justified", "unjustified", "referred"],
}
MALFORMED: dict[str, list[JSON]] = {
    "did": ["did:web:example.org", None],
    "patient": ["Jane Doe"],
    "organization": ["hospital"],
    "kind": ["robot"],
    "roles": [["nurse", "nurse"], ["x"], "nurse"],
    "name": ["", "n" * 201, "a\u202eb"],
    "record_id": ["a/b", ""],
    "resource_type": ["observation", "O"],
    "version": [0, -1, "2", True],
    "commitment": [HEX.upper(), HEX[1:]],
    "cid": ["Qm" + CID[2:], "b"],
    "prev": [HEX.upper(), ""],
    "reason": ["whim"],
    "batch_id": ["short", "batch/0001"],
    "root": [HEX[:-1]],
    "count": [0, 1_000_001],
    "first_time_ms": [-1, 3_000],
    "last_time_ms": [-1, "1000"],
    "enc_key": ["00" * 32, ENC_KEY.upper(), ENC_KEY[2:]],
    "consent": [{"consent_id": "c-9"}, "c-1", {**valid_consent("c-9"), "status": "revoked"}],
    "consent_id": ["a b", ""],
    "delegate": ["a relative"],
    "until_ms": [0, "1000"],
    "event_id": ["A" * 26, "a" * 25],
    "outcome": ["fine"],
}
ALL_FIELDS = sorted(WELL_FORMED)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
SENDERS = st.sampled_from([*DIDS, did(51)])


def field_value(name: str) -> st.SearchStrategy[JSON]:
    """Mostly well formed, so that whole payloads often are; otherwise malformed or anything."""
    return st.integers(0, 19).flatmap(
        lambda n: (
            st.sampled_from(WELL_FORMED[name])
            if n < 17
            else st.sampled_from(MALFORMED[name])
            if n < 19
            else JSON_VALUES
        )
    )


@st.composite
def payloads(draw: st.DrawFn, tx_type: str) -> dict[str, JSON]:
    """The type's fields (rarely one dropped or an extra one added), or an arbitrary object."""
    if draw(st.integers(0, 9)) == 0:
        keys = st.sampled_from(ALL_FIELDS) | st.text(max_size=8)
        return draw(st.dictionaries(keys, JSON_VALUES, max_size=6))
    payload = {name: draw(field_value(name)) for name in FIELDS[tx_type]}
    mutation = draw(st.integers(0, 9))
    if mutation == 0:
        del payload[draw(st.sampled_from(FIELDS[tx_type]))]
    elif mutation == 1:
        payload[draw(st.sampled_from(ALL_FIELDS) | st.text(max_size=8))] = draw(JSON_VALUES)
    return payload


#: Transactions that succeed on ``WORLD``: the fuzzer starts from them half the time.
TEMPLATES: list[tuple[str, dict[str, JSON], str]] = [
    (REGISTER, {"did": did(50), "kind": "organization", "roles": ["lab"]}, AUTHORITY_2),
    (REGISTER, practitioner(did(51), "pharmacist", CLINIC), AUTHORITY),
    (REGISTER, {"did": did(52), "kind": "patient"}, CLINIC),
    ("participant.update_roles", {"did": NURSE, "roles": ["nurse", "researcher"]}, AUTHORITY),
    ("participant.deactivate", {"did": PATIENT}, HOSPITAL),
    ("participant.deactivate", {"did": HOSPITAL}, AUTHORITY),
    ("record.anchor", {**valid_anchor(), "version": 2, "prev": V1_HASH}, HOSPITAL),
    ("record.anchor", {**valid_anchor(), "patient": PATIENT_2}, NURSE),
    ("record.tombstone", {"patient": PATIENT, "record_id": "rec-1", "reason": "erasure"}, PATIENT),
    ("access.batch", {**valid_batch(), "batch_id": "batch-0002"}, CLINIC),
    ("participant.set_encryption_key", {"enc_key": ENC_KEY}, NURSE),
    ("consent.grant", {"consent": valid_consent("c-2", NURSE)}, PATIENT),
    ("consent.grant", {"consent": valid_consent("c-3")}, PATIENT_2),
    ("consent.revoke", {"patient": PATIENT, "consent_id": "c-1"}, PATIENT),
    ("consent.revoke", {"patient": PATIENT, "consent_id": "c-7"}, PATIENT_2),
    ("consent.delegate", {"patient": PATIENT, "delegate": DOCTOR, "until_ms": None}, PATIENT),
    ("consent.undelegate", {"patient": PATIENT, "delegate": PATIENT_2}, PATIENT),
    (
        "access.review",
        {"batch_id": "batch-0001", "event_id": EVENT_ID, "outcome": "justified"},
        OFFICER,
    ),
]


@st.composite
def transactions(draw: st.DrawFn, index: int) -> SignedTransaction:
    """Half the time a template, perhaps with a field or the sender changed; else anything."""
    if draw(st.booleans()):
        tx_type, template, sender = draw(st.sampled_from(TEMPLATES))
        payload = dict(template)
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(FIELDS[tx_type]))
            payload[name] = draw(field_value(name))
        if draw(st.integers(0, 3)) == 0:
            sender = draw(SENDERS)
    else:
        tx_type = draw(st.sampled_from(TX_TYPES))
        payload, sender = draw(payloads(tx_type)), draw(SENDERS)
    return signed(tx_type, payload, sender, f"fuzz-{index:04d}")


def check_writes(writes: dict[str, bytes | None], namespaces: set[str]) -> None:
    for key, value in writes.items():
        if key.startswith(NONCE_PREFIX):
            continue
        assert any(key.startswith(ns) for ns in namespaces), key
        if value is None:  # a deletion (an ended delegation, an emptied consent index)
            continue
        assert isinstance(json.loads(value), dict)
        assert canonical(json.loads(value)) == value


#: Contracts fuzzed in a file of their own (tests/unit/test_contract_escrow.py).
FUZZED_ELSEWHERE = {"escrow"}


def test_the_fuzzed_contracts_are_the_default_ones() -> None:
    others = [c for c in default_contracts() if c.name not in FUZZED_ELSEWHERE]
    assert sorted(c.name for c in others) == sorted(c.name for c in CONTRACTS)
    assert Runtime(others).tx_types == RUNTIME.tx_types


def test_the_templates_succeed_on_the_world() -> None:
    for index, (tx_type, payload, sender) in enumerate(TEMPLATES):
        stx = signed(tx_type, payload, sender, f"fuzz-{index:04d}")
        (result,), _ = RUNTIME.apply_block([stx], DictState(WORLD.snapshot()), CTX)
        assert result.ok, (tx_type, result)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_each_transaction_is_applied_or_refused_with_a_reason(data: st.DataObject) -> None:
    state = DictState(WORLD.snapshot())
    for index in range(data.draw(st.integers(1, 6), label="transactions")):
        stx = data.draw(transactions(index))
        before = state.snapshot()
        (result,), writes = RUNTIME.apply_block([stx], state, CTX)
        assert state.snapshot() == before
        event(f"{stx.tx.type}: {'ok' if result.ok else result.reason}")
        if result.ok:
            check_writes(writes, {NAMESPACE[stx.tx.type]})
        else:
            assert result.reason in KNOWN_REASONS, result
            assert writes == {}
        state.apply(writes)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_block_of_arbitrary_transactions_is_deterministic(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 8), label="transactions")
    block = [data.draw(transactions(index)) for index in range(count)]
    state = DictState(WORLD.snapshot())
    results, writes = RUNTIME.apply_block(block, state, CTX)
    assert state.snapshot() == WORLD.snapshot()
    assert RUNTIME.apply_block(block, DictState(WORLD.snapshot()), CTX) == (results, writes)
    assert all(r.ok or r.reason in KNOWN_REASONS for r in results)
    ok_types = {stx.tx.type for stx, r in zip(block, results, strict=True) if r.ok}
    check_writes(writes, {NAMESPACE[t] for t in ok_types})
