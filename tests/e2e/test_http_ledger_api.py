"""The ledger's HTTP API over real HTTP, against a served demo network with no background traffic.

The happy path is checked the way an auditor would: the receipt of a committed transaction
verifies offline against the log's verifier key, and a block header's signature verifies under
its proposer's did:key. Every attack the intake and the contracts stop has its own regression
test, named after the attack, with the status and the stable code the node must answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from medledger.adapters.keystore import generate_key
from medledger.client import new_transaction
from medledger.config import Limits
from medledger.core.identity.keys import ParticipantKey, verify_signature
from medledger.core.ledger.block import BlockHeader, rfc9162_root
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.envelope import encode_signature, signed_bytes
from medledger.core.ledger.tx import SignedTransaction
from medledger.core.note import parse_verifier_key
from medledger.core.receipt import parse_receipt, verify_receipt
from medledger.entrypoints.cli.demo import synthetic_cid
from medledger.errors import ProofError, SignatureError

from .conftest import DemoLedgerNode

#: The log origin ``create_demo_home`` gives the demo network.
DEMO_ORIGIN = "demo.medledger.local/log"
#: A well-formed did:key that nobody registers.
UNKNOWN_DID = generate_key().did


# --- helpers ----------------------------------------------------------------------------------
def get(node: DemoLedgerNode, path: str, **params: Any) -> httpx.Response:
    return node.http.get(path, params=params or None)


def post(
    node: DemoLedgerNode, body: bytes, *, wait: str = "commit", **headers: str
) -> httpx.Response:
    return node.http.post(
        "/ledger/transactions",
        params={"wait": wait},
        content=body,
        headers={"content-type": "application/json", **headers},
    )


def sign(
    node: DemoLedgerNode,
    key: ParticipantKey,
    tx_type: str,
    payload: Mapping[str, JSON],
    **kwargs: Any,
) -> SignedTransaction:
    kwargs.setdefault("now_s", int(time.time()))
    kwargs.setdefault("network", node.network)
    return new_transaction(key, tx_type=tx_type, payload=payload, **kwargs)


def commit(
    node: DemoLedgerNode, key: ParticipantKey, tx_type: str, payload: Mapping[str, JSON]
) -> dict[str, Any]:
    """Submit, wait for the block, and return the committed status (ok or not)."""
    r = post(node, sign(node, key, tx_type, payload).wire)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "committed"
    return body


def assert_error(r: httpx.Response, status: int, code: str, parameter: str | None = None) -> None:
    """A refusal: the status, JSON ``{"error": {...}}`` with the code (and parameter), and
    nothing that looks like a traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == code, error
    if parameter is not None:
        assert error.get("parameter") == parameter, error
    assert "Traceback" not in r.text


def new_patient(node: DemoLedgerNode, **kwargs: Any) -> SignedTransaction:
    """The hospital registering a new pseudonymous patient: a transaction that commits ok."""
    payload: dict[str, JSON] = {"did": generate_key().did, "kind": "patient", "roles": []}
    return sign(node, node.keys["hospital"], "participant.register", payload, **kwargs)


def register_practitioner(node: DemoLedgerNode, org: str = "hospital") -> ParticipantKey:
    key = generate_key()
    payload = {
        "did": key.did,
        "kind": "practitioner",
        "roles": ["physician"],
        "organization": node.keys[org].did,
    }
    assert commit(node, node.keys[org], "participant.register", payload)["ok"] is True
    return key


def register_patient(node: DemoLedgerNode, org: str = "hospital") -> ParticipantKey:
    key = generate_key()
    payload = {"did": key.did, "kind": "patient", "roles": []}
    assert commit(node, node.keys[org], "participant.register", payload)["ok"] is True
    return key


def anchor_payload(patient: str, record_id: str, version: int, prev: str | None) -> dict[str, JSON]:
    """A record version's commitment, over synthetic bytes (the ledger never sees content)."""
    content, salt = secrets.token_bytes(64), secrets.token_bytes(32)
    return {
        "patient": patient,
        "record_id": record_id,
        "resource_type": "Observation",
        "version": version,
        "commitment": hmac.new(salt, content, hashlib.sha256).hexdigest(),
        "cid": synthetic_cid(content),
        "prev": prev,
    }


def flip_char(text: str, at: int) -> str:
    """``text`` with one base64url character replaced by another (still base64url)."""
    replacement = "A" if text[at] != "A" else "B"
    return text[:at] + replacement + text[at + 1 :]


def raw_post(node: DemoLedgerNode, headers: bytes, body: bytes) -> tuple[int, bytes]:
    """POST over a bare socket, so the headers can lie; the first response's status and body."""
    url = urlsplit(node.url)
    assert url.hostname is not None
    assert url.port is not None
    request = (
        b"POST /ledger/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n" + headers + b"\r\n" + body
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        # The node may answer and close before it has read everything sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < _response_end(received):
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, rest[: _content_length(head)]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _response_end(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    return len(head) + 4 + _content_length(head)


@pytest.fixture(scope="module")
def practitioner(demo_ledger_node: DemoLedgerNode) -> ParticipantKey:
    """A practitioner of the hospital, registered once for the module."""
    return register_practitioner(demo_ledger_node)


# --- the happy path ---------------------------------------------------------------------------
def test_registering_a_practitioner_commits_with_a_receipt_that_verifies_offline(
    demo_ledger_node: DemoLedgerNode,
):
    node = demo_ledger_node
    key = generate_key()
    payload = {
        "did": key.did,
        "kind": "practitioner",
        "roles": ["nurse"],
        "organization": node.keys["clinic"].did,
    }
    stx = sign(node, node.keys["clinic"], "participant.register", payload)
    r = post(node, stx.wire)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tx_id"] == stx.tx_id.hex()
    assert (body["status"], body["ok"], body["reason"]) == ("committed", True, None)
    assert body["height"] >= 1
    assert isinstance(body["log_index"], int)

    # Offline: the served verifier key, the entry's exact bytes and the receipt are enough.
    verifier = parse_verifier_key(get(node, "/log/verifier-key").text.strip())
    entry = get(node, f"/log/entries/{body['log_index']}")
    assert entry.status_code == 200
    receipt = parse_receipt(body["receipt"].encode(), Limits())
    assert receipt.index == body["log_index"]
    assert receipt.extra == entry.content
    checkpoint = verify_receipt(
        receipt, entry=entry.content, origin=DEMO_ORIGIN, verifiers=[verifier], limits=Limits()
    )
    assert checkpoint.size > body["log_index"]
    # The entry is this transaction, its exact wire bytes, and its outcome.
    assert stx.wire in entry.content
    logged = json.loads(entry.content)
    assert logged["tx_id"] == stx.tx_id.hex()
    assert (logged["height"], logged["index"]) == (body["height"], body["index"])
    assert (logged["ok"], logged["reason"]) == (True, None)
    # A receipt for another entry does not pass for this one.
    with pytest.raises(ProofError):
        verify_receipt(
            receipt,
            entry=b"not this entry",
            origin=DEMO_ORIGIN,
            verifiers=[verifier],
            limits=Limits(),
        )


def test_transaction_and_its_block_are_readable_and_the_header_signature_verifies(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
):
    node = demo_ledger_node
    patient = generate_key()
    stx = sign(
        node,
        node.keys["hospital"],
        "participant.register",
        {"did": patient.did, "kind": "patient", "roles": []},
    )
    committed = post(node, stx.wire).json()

    tx = get(node, f"/ledger/transactions/{stx.tx_id.hex()}")
    assert tx.status_code == 200
    assert tx.json()["status"] == "committed"
    assert tx.json()["transaction"] == json.loads(stx.wire)
    assert tx.json()["log_index"] == committed["log_index"]

    r = get(node, f"/ledger/blocks/{committed['height']}")
    assert r.status_code == 200
    block = r.json()
    header = BlockHeader.from_json(block["header"])
    assert header.height == committed["height"] == block["height"]
    assert header.network == node.network
    assert header.proposer == node.keys["hospital"].did  # the demo node's key
    assert header.hash().hex() == block["hash"]
    signature = bytes.fromhex(block["signature"])
    verify_signature(header.proposer, header.signing_bytes(), signature)
    # The signature covers the header: another time, height or root does not verify.
    forged = BlockHeader.from_json({**block["header"], "time_ms": header.time_ms + 1})
    with pytest.raises(SignatureError):
        verify_signature(header.proposer, forged.signing_bytes(), signature)
    # The block lists the transaction, and its tx_root is over the wire bytes in order.
    ids = [t["tx_id"] for t in block["transactions"]]
    assert stx.tx_id.hex() in ids
    assert header.tx_count == len(ids)
    wires = [canonical(get(node, f"/ledger/transactions/{i}").json()["transaction"]) for i in ids]
    assert header.tx_root == rfc9162_root(wires)
    # The chain: the previous block's hash is this block's prev.
    previous = get(node, f"/ledger/blocks/{header.height - 1}").json()
    assert bytes.fromhex(previous["hash"]) == header.prev

    latest = get(node, "/ledger/blocks/latest")
    assert latest.status_code == 200
    assert latest.json()["height"] >= header.height


def test_a_registered_participant_is_readable(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
):
    node = demo_ledger_node
    r = get(node, f"/ledger/participants/{practitioner.did}")
    assert r.status_code == 200
    participant = r.json()
    assert participant["did"] == practitioner.did
    assert participant["kind"] == "practitioner"
    assert participant["roles"] == ["physician"]
    assert participant["organization"] == node.keys["hospital"].did
    assert participant["registered_by"] == node.keys["hospital"].did
    assert (participant["active"], participant["authority"]) == (True, False)
    # The genesis authorities are participants too.
    hospital = get(node, f"/ledger/participants/{node.keys['hospital'].did}").json()
    assert (hospital["kind"], hospital["authority"]) == ("organization", True)
    # And the listing pages through them by DID.
    listed: list[str] = []
    after = ""
    while True:
        page = get(node, "/ledger/participants", after=after, limit=2).json()
        listed += [p["did"] for p in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert practitioner.did in listed
    assert listed == sorted(listed)
    assert get(node, f"/ledger/participants/{UNKNOWN_DID}").status_code == 404


def test_a_record_is_anchored_versioned_and_tombstoned(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
):
    node = demo_ledger_node
    patient = register_patient(node)
    record_id = f"obs-{secrets.token_hex(4)}"

    v1 = anchor_payload(patient.did, record_id, 1, None)
    assert commit(node, practitioner, "record.anchor", v1)["ok"] is True
    head = get(node, f"/ledger/records/{patient.did}/{record_id}").json()["head"]
    assert (head["version"], head["author"]) == (1, practitioner.did)
    assert head["author_org"] == node.keys["hospital"].did

    v2 = anchor_payload(patient.did, record_id, 2, head["hash"])
    assert commit(node, practitioner, "record.anchor", v2)["ok"] is True
    r = get(node, f"/ledger/records/{patient.did}/{record_id}")
    assert r.status_code == 200
    head, versions = r.json()["head"], r.json()["versions"]
    assert head["version"] == 2
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["commitment"] for v in versions] == [v1["commitment"], v2["commitment"]]
    # The versions form a hash chain, and the head names the last link.
    assert versions[1]["prev"] == hashlib.sha256(canonical(versions[0])).hexdigest()
    assert head["hash"] == hashlib.sha256(canonical(versions[1])).hexdigest()
    listed = get(node, f"/ledger/records/{patient.did}").json()["items"]
    assert [(i["record_id"], i["version"]) for i in listed] == [(record_id, 2)]

    # Only the author organization extends the record, and only at the next version.
    stale = anchor_payload(patient.did, record_id, 2, head["hash"])
    assert commit(node, practitioner, "record.anchor", stale)["reason"] == "version_conflict"
    v3 = anchor_payload(patient.did, record_id, 3, head["hash"])
    assert commit(node, node.keys["clinic"], "record.anchor", v3)["reason"] == "not_author_org"

    # The patient tombstones it; nothing more is anchored to it.
    tombstone = {"patient": patient.did, "record_id": record_id, "reason": "erasure"}
    assert commit(node, patient, "record.tombstone", tombstone)["ok"] is True
    head = get(node, f"/ledger/records/{patient.did}/{record_id}").json()["head"]
    assert head["tombstoned"] is True
    assert (head["tombstone"]["reason"], head["tombstone"]["by"]) == ("erasure", patient.did)
    failed = commit(node, practitioner, "record.anchor", v3)
    assert (failed["ok"], failed["reason"]) == (False, "tombstoned")
    again = commit(node, patient, "record.tombstone", tombstone)
    assert (again["ok"], again["reason"]) == (False, "tombstoned")


def test_record_listing_pages_past_a_record_with_many_versions(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
):
    """Regression: the listing scanned a fixed window of 64 state rows per record asked for;
    a record's versions sit under it in the key order, so a record with 64 versions filled
    the window and the listing ended early, silently leaving out the patient's other records.
    """
    node = demo_ledger_node
    patient = register_patient(node)
    prev = None
    for version in range(1, 65):  # each version's prev is the committed hash of the last one
        payload = anchor_payload(patient.did, "a-long-history", version, prev)
        assert commit(node, practitioner, "record.anchor", payload)["ok"] is True
        head = get(node, f"/ledger/records/{patient.did}/a-long-history").json()["head"]
        prev = head["hash"]
    for record_id in ("b-one", "c-two"):
        payload = anchor_payload(patient.did, record_id, 1, None)
        assert commit(node, practitioner, "record.anchor", payload)["ok"] is True

    listed, after = [], ""
    for _ in range(10):
        page = get(node, f"/ledger/records/{patient.did}", after=after, limit=1).json()
        listed += [(i["record_id"], i["version"]) for i in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert listed == [("a-long-history", 64), ("b-one", 1), ("c-two", 1)]
    everything = get(node, f"/ledger/records/{patient.did}", limit=500).json()
    assert [i["record_id"] for i in everything["items"]] == ["a-long-history", "b-one", "c-two"]
    assert everything["next"] is None


def test_an_access_batch_is_anchored_and_readable(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    now = int(time.time() * 1000)
    payload = {
        "batch_id": f"batch-{secrets.token_hex(6)}",
        "root": secrets.token_hex(32),
        "count": 17,
        "first_time_ms": now - 1000,
        "last_time_ms": now,
    }
    assert commit(node, node.keys["lab"], "access.batch", payload)["ok"] is True
    r = get(node, f"/ledger/access-batches/{payload['batch_id']}")
    assert r.status_code == 200
    assert r.json()["root"] == payload["root"]
    assert r.json()["org"] == node.keys["lab"].did
    again = commit(node, node.keys["lab"], "access.batch", payload)
    assert (again["ok"], again["reason"]) == (False, "duplicate_batch")


# --- attack regressions: refused at intake ----------------------------------------------------
def test_forged_signature_is_rejected(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    stx = new_patient(node)
    sig = encode_signature(stx.signature)
    assert sig.encode() in stx.wire
    # One flipped character (not the last: it carries padding bits that must stay zero).
    flipped = stx.wire.replace(sig.encode(), flip_char(sig, 10).encode())
    assert_error(post(node, flipped), 400, "bad_signature", "sig")
    # A genuine signature, by someone else's key, over the same body.
    other = encode_signature(node.keys["clinic"].sign(signed_bytes(stx.tx)))
    assert_error(post(node, stx.wire.replace(sig.encode(), other.encode())), 400, "bad_signature")
    # A changed payload under the original signature.
    tampered = stx.wire.replace(b'"kind":"patient"', b'"kind":"organization"')
    assert tampered != stx.wire
    assert_error(post(node, tampered), 400, "bad_signature", "sig")
    # None of them reached the ledger; the genuine one still commits.
    assert get(node, f"/ledger/transactions/{stx.tx_id.hex()}").status_code == 404
    assert post(node, stx.wire).json()["ok"] is True


def test_replayed_nonce_is_rejected(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    stx = new_patient(node)
    assert post(node, stx.wire).json()["ok"] is True
    # The same wire again, after it was committed.
    assert_error(post(node, stx.wire), 400, "replayed_nonce", "nonce")
    # A new transaction (another tx id, validly signed) reusing the nonce.
    reuse = new_patient(node, nonce=stx.tx.nonce)
    assert reuse.tx_id != stx.tx_id
    assert_error(post(node, reuse.wire), 400, "replayed_nonce", "nonce")
    # A replay while the original is still pending is refused as well.
    pending = new_patient(node)
    assert post(node, pending.wire, wait="none").status_code in (200, 202)
    assert_error(post(node, pending.wire, wait="none"), 400, "replayed_nonce", "nonce")
    waited = get(node, f"/ledger/transactions/{pending.tx_id.hex()}")
    assert waited.status_code == 200


def test_wrong_network_is_rejected(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    stx = new_patient(node, network="medledger-other")
    assert_error(post(node, stx.wire), 400, "wrong_network", "network")
    assert get(node, f"/ledger/transactions/{stx.tx_id.hex()}").status_code == 404


def test_expired_transaction_is_rejected(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    now = int(time.time())
    expired = new_patient(node, now_s=now - 3600, ttl_s=60)
    assert_error(post(node, expired.wire), 400, "expired", "expires")
    # Nor may a transaction outlive the window in which the node remembers its nonce.
    too_far = new_patient(node, now_s=now, ttl_s=3 * 24 * 3600)
    assert_error(post(node, too_far.wire), 400, "expires_too_far", "expires")


def test_malformed_json_is_400(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    assert_error(post(node, b'{"v": 1, "network": '), 400, "malformed", "transaction")
    assert_error(post(node, b"\xff\xfe{}"), 400, "malformed", "transaction")
    assert_error(post(node, b""), 400, "malformed", "transaction")
    assert_error(post(node, b'{"v":1,"v":1}'), 400, "malformed", "transaction")
    assert_error(post(node, b"[1, 2, 3]"), 400, "schema_error", "transaction")
    assert_error(post(node, b'{"v":1.5}'), 400, "schema_error", "transaction")
    assert_error(post(node, b"[" * 50_000), 413, "oversize", "transaction")
    # A valid transaction in another spelling: the node accepts one wire form only.
    stx = new_patient(node)
    spaced = json.dumps(json.loads(stx.wire), indent=1).encode()
    assert_error(post(node, spaced), 400, "non_canonical", "transaction")


def test_unknown_type_is_400(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    stx = sign(
        node, node.keys["hospital"], "record.delete", {"patient": UNKNOWN_DID, "record_id": "x"}
    )
    assert_error(post(node, stx.wire), 400, "unknown_type", "type")
    missing = json.loads(sign(node, node.keys["hospital"], "access.batch", {}).wire)
    del missing["type"]
    assert_error(post(node, canonical(missing)), 400, "schema_error", "type")


def test_oversize_body_is_413(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    big = b'{"x":"' + b"a" * 70 * 1024 + b'"}'
    assert_error(post(node, big), 413, "oversize", "transaction")
    # Streamed without a Content-Length (chunked): refused as soon as the limit is passed.
    chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))
    r = httpx.post(node.url + "ledger/transactions", content=chunks, timeout=10)
    assert_error(r, 413, "oversize", "transaction")
    # A Content-Length that claims more than the limit: refused before the body is read.
    status, body = raw_post(node, b"Content-Length: 1000000000\r\n", b"{}")
    assert status == 413
    assert json.loads(body)["error"]["code"] == "oversize"
    # A Content-Length that claims less than is sent: only what it declares is the body.
    status, body = raw_post(node, b"Content-Length: 10\r\n", big)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "malformed"
    # The node still serves.
    assert get(node, "/ledger/blocks/latest").status_code == 200


# --- attack regressions: committed, but as failed ---------------------------------------------
def test_sender_not_registered_is_committed_as_failed(demo_ledger_node: DemoLedgerNode):
    node = demo_ledger_node
    stranger = generate_key()
    now = int(time.time() * 1000)
    payload = {
        "batch_id": f"stranger-{secrets.token_hex(6)}",
        "root": secrets.token_hex(32),
        "count": 1,
        "first_time_ms": now,
        "last_time_ms": now,
    }
    stx = sign(node, stranger, "access.batch", payload)
    r = post(node, stx.wire)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["ok"], body["reason"]) == (
        "committed",
        False,
        "sender_not_registered",
    )
    # The refusal is on the record, in the log, with a receipt like any outcome.
    entry = json.loads(get(node, f"/log/entries/{body['log_index']}").content)
    assert (entry["ok"], entry["reason"]) == (False, "sender_not_registered")
    assert parse_receipt(body["receipt"].encode(), Limits()).index == body["log_index"]
    # It changed no contract state, and its nonce is spent.
    assert get(node, f"/ledger/access-batches/{payload['batch_id']}").status_code == 404
    assert get(node, f"/ledger/participants/{stranger.did}").status_code == 404
    assert_error(post(node, stx.wire), 400, "replayed_nonce", "nonce")


def test_practitioner_registered_by_a_non_authority_fails(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
):
    node = demo_ledger_node
    accomplice = generate_key()
    payload = {
        "did": accomplice.did,
        "kind": "practitioner",
        "roles": ["physician"],
        "organization": node.keys["hospital"].did,
    }
    body = commit(node, practitioner, "participant.register", payload)
    assert (body["ok"], body["reason"]) == (False, "not_authority")
    assert get(node, f"/ledger/participants/{accomplice.did}").status_code == 404
    # Nor may an organization registration come from a practitioner.
    org = {"did": generate_key().did, "kind": "organization", "roles": ["clinic"]}
    body = commit(node, practitioner, "participant.register", org)
    assert (body["ok"], body["reason"]) == (False, "not_authority")


# --- path and query parameters ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status", "parameter"),
    [
        ("GET", "/ledger/transactions/not-hex", 400, "tx_id"),
        ("GET", "/ledger/transactions/" + "AB" * 32, 400, "tx_id"),
        ("GET", "/ledger/transactions/" + "ab" * 31, 400, "tx_id"),
        ("GET", "/ledger/transactions/" + "ab" * 33, 400, "tx_id"),
        ("GET", "/ledger/transactions/" + "00" * 32, 404, None),
        ("GET", "/ledger/blocks/-1", 400, "height"),
        ("GET", "/ledger/blocks/01", 400, "height"),
        ("GET", "/ledger/blocks/1.5", 400, "height"),
        ("GET", "/ledger/blocks/99999999999999999999", 400, "height"),
        ("GET", "/ledger/blocks/999999", 404, None),
        ("GET", "/ledger/participants/did:key:z6MkNOTAKEY", 400, "did"),
        ("GET", "/ledger/participants/did:web:example.org", 400, "did"),
        ("GET", "/ledger/participants/" + "x" * 3000, 400, "did"),
        ("GET", "/ledger/participants?limit=0", 400, "limit"),
        ("GET", "/ledger/participants?limit=many", 400, "limit"),
        ("GET", "/ledger/participants?after=" + "x" * 65, 400, "after"),
        ("GET", "/ledger/records/patient-1", 400, "patient"),
        ("GET", "/ledger/records/patient-1/rec", 400, "patient"),
        ("GET", f"/ledger/records/{UNKNOWN_DID}/bad%20id", 400, "record_id"),
        ("GET", f"/ledger/records/{UNKNOWN_DID}/" + "r" * 65, 400, "record_id"),
        ("GET", f"/ledger/records/{UNKNOWN_DID}/unknown-record", 404, None),
        ("GET", f"/ledger/records/{UNKNOWN_DID}?limit=501", 400, "limit"),
        ("GET", "/ledger/access-batches/short", 400, "batch_id"),
        ("GET", "/ledger/access-batches/bad%2Achars", 400, "batch_id"),
        ("GET", "/ledger/access-batches/unknown-batch-0", 404, None),
        ("POST", "/ledger/transactions?wait=forever", 400, "wait"),
        ("POST", "/ledger/transactions?timeout=0", 400, "timeout"),
        ("POST", "/ledger/transactions?timeout=31", 400, "timeout"),
        ("POST", "/ledger/transactions?timeout=nan", 400, "timeout"),
        ("DELETE", "/ledger/blocks/latest", 405, None),
    ],
)
def test_bad_parameters_get_a_4xx_naming_the_parameter(
    demo_ledger_node: DemoLedgerNode, method: str, path: str, status: int, parameter: str | None
):
    r = httpx.request(method, demo_ledger_node.url + path.lstrip("/"), content=b"{}", timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    if parameter is not None:
        assert error["parameter"] == parameter
    assert "Traceback" not in r.text
