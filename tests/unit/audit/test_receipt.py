"""Access-event receipts (medledger.core.audit.receipt): a receipt that verifies, and one
mutation per check it must fail (the transparency-dev mutation cases: wrong leaf, index off
by one, truncated proof, swapped roots, plus the anchor's own failures).

Anchors are built by hand: an ``access.batch`` transaction signed by the node's key, its
``log_entry``, a small log around it (the naive RFC 9162 reference tree), and a checkpoint
signed by the log's key. Pure: no node, no storage.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from medledger.core.audit.batch import SealedBatch, batch_inclusion_proof, seal_batch
from medledger.core.audit.event import AccessEvent
from medledger.core.audit.receipt import (
    RECEIPT_TYPE,
    EventReceipt,
    EventReceiptLimits,
    format_event_receipt,
    parse_event_receipt,
    verify_event_receipt,
)
from medledger.core.checkpoint import Checkpoint, sign_checkpoint
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.block import log_entry
from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.contracts.access_batch import ACCESS_BATCH
from medledger.core.ledger.envelope import sign_transaction
from medledger.core.ledger.runtime import TxResult
from medledger.core.ledger.tx import Transaction
from medledger.core.note import Signer
from medledger.core.receipt import Receipt, format_receipt
from medledger.errors import (
    InvalidInputError,
    ProofError,
    SignatureError,
    VerificationError,
)
from medledger.testing.reference_merkle import mth, path
from tests.unit.audit.events import T0, event_id, make_event

ORIGIN = "hospital.example/log"
LOG = Signer(ORIGIN, bytes([1]) * 32)
OTHER_LOG = Signer(ORIGIN, bytes([2]) * 32)
NODE = ParticipantKey.from_seed(bytes([7]) * 32)
OTHER_NODE = ParticipantKey.from_seed(bytes([8]) * 32)
NETWORK = "medledger-test"
BATCH_ID = event_id(10_000)


def events(n: int = 5, **changes: Any) -> list[AccessEvent]:
    return [make_event(i, node=NODE.did, **changes) for i in range(n)]


def anchor_entry(
    batch: SealedBatch,
    *,
    key: ParticipantKey = NODE,
    ok: bool = True,
    reason: str | None = None,
    tx_type: str = ACCESS_BATCH,
    payload: dict[str, Any] | None = None,
) -> bytes:
    tx = Transaction(
        network=NETWORK,
        type=tx_type,
        payload=batch.anchor_payload() if payload is None else payload,
        sender=key.did,
        nonce="nonce-0001",
        expires=2_000_000_000,
    )
    stx = sign_transaction(tx, key.sign)
    return log_entry(12, 3, stx.wire, TxResult(stx.tx_id, ok, reason))


def anchor_receipt(entry: bytes, *, signer: Signer = LOG, at: int = 2) -> bytes:
    """A tlog-proof of ``entry`` at index ``at`` of a 6-entry log, with extra = the entry."""
    entries = [f"entry {i}".encode() for i in range(6)]
    entries[at] = entry
    note = sign_checkpoint(Checkpoint(ORIGIN, len(entries), mth(entries)), signer)
    return format_receipt(Receipt(at, tuple(path(at, entries)), note, extra=entry))


def receipt_of(batch: SealedBatch, index: int, anchor: bytes, **changes: Any) -> bytes:
    receipt = EventReceipt(
        event=batch.events[index],
        batch_id=batch.batch_id,
        index=index,
        size=batch.count,
        proof=tuple(batch_inclusion_proof(batch.leaves, index)),
        anchor=anchor,
    )
    return format_event_receipt(dataclasses.replace(receipt, **changes))


BATCH = seal_batch(BATCH_ID, events())
ANCHOR = anchor_receipt(anchor_entry(BATCH))


def good(index: int = 3) -> bytes:
    return receipt_of(BATCH, index, ANCHOR)


def edit(data: bytes, change: Any) -> bytes:
    """Re-serialise the receipt after ``change(obj)``: still canonical, so only the change
    itself is what fails."""
    obj = json.loads(data)
    change(obj)
    return canonical(obj)


# --- the receipt that verifies --------------------------------------------------------------
@pytest.mark.parametrize("index", range(5))
def test_every_event_of_a_batch_verifies_offline(index: int) -> None:
    assert verify_event_receipt(good(index), LOG.verifier()) == BATCH.events[index]


def test_a_batch_of_one_needs_no_proof_hashes() -> None:
    single = seal_batch(BATCH_ID, events(1))
    data = receipt_of(single, 0, anchor_receipt(anchor_entry(single)))
    assert json.loads(data)["batch"]["proof"] == []
    assert verify_event_receipt(data, LOG.verifier()) == single.events[0]


def test_a_break_glass_event_verifies_with_its_justification() -> None:
    event = make_event(
        0,
        node=NODE.did,
        purpose="ETREAT",
        decision="break-glass",
        reasons=("break-glass",),
        justification="Unconscious, no consent",
    )
    batch = seal_batch(BATCH_ID, [event])
    data = receipt_of(batch, 0, anchor_receipt(anchor_entry(batch)))
    assert verify_event_receipt(data, LOG.verifier()).justification == "Unconscious, no consent"


def test_the_receipt_is_one_canonical_json_document() -> None:
    data = good()
    obj = json.loads(data)
    assert canonical(obj) == data
    assert obj["type"] == RECEIPT_TYPE
    assert set(obj) == {"type", "event", "batch", "anchor"}
    assert obj["anchor"].startswith("c2sp.org/tlog-proof@v1\nextra ")


def test_parse_and_format_round_trip() -> None:
    parsed = parse_event_receipt(good(), EventReceiptLimits())
    assert format_event_receipt(parsed) == good()
    assert parsed.event == BATCH.events[3]


def test_the_origin_can_be_given_explicitly() -> None:
    verify_event_receipt(good(), LOG.verifier(), origin=ORIGIN)
    with pytest.raises(VerificationError, match="origin"):
        verify_event_receipt(good(), LOG.verifier(), origin="other.example/log")


# --- the batch proof ------------------------------------------------------------------------
def test_receipt_for_altered_event_is_rejected() -> None:
    """A node that shows a patient an altered event (another purpose, actor or decision)
    cannot give a receipt for it: the leaf no longer leads to the anchored root."""
    for field, value in [("purpose", "HRESCH"), ("decision", "deny"), ("time_ms", T0 + 1)]:
        altered = edit(good(3), lambda o, f=field, v=value: o["event"].__setitem__(f, v))
        with pytest.raises(ProofError):
            verify_event_receipt(altered, LOG.verifier())


def test_a_receipt_for_another_events_position_is_rejected() -> None:
    for index in (2, 4):
        wrong = edit(good(3), lambda o, i=index: o["batch"].__setitem__("index", i))
        with pytest.raises(ProofError):
            verify_event_receipt(wrong, LOG.verifier())


def test_a_truncated_proof_is_rejected() -> None:
    truncated = edit(good(), lambda o: o["batch"]["proof"].pop())
    with pytest.raises(ProofError):
        verify_event_receipt(truncated, LOG.verifier())


def test_a_proof_with_garbage_prepended_is_rejected() -> None:
    padded = edit(good(), lambda o: o["batch"]["proof"].insert(0, "00" * 32))
    with pytest.raises(ProofError):
        verify_event_receipt(padded, LOG.verifier())


def test_a_wrong_batch_size_is_rejected() -> None:
    for size in (4, 6):
        wrong = edit(good(), lambda o, s=size: o["batch"].__setitem__("size", s))
        with pytest.raises((ProofError, VerificationError)):
            verify_event_receipt(wrong, LOG.verifier())


def test_an_anchor_of_a_batch_with_another_root_is_rejected() -> None:
    """Swapped roots: the anchor is this batch id's, but for other events."""
    other = seal_batch(BATCH_ID, events(5, purpose="HRESCH"))
    swapped = receipt_of(BATCH, 3, anchor_receipt(anchor_entry(other)))
    with pytest.raises(ProofError, match="anchored root"):
        verify_event_receipt(swapped, LOG.verifier())


# --- the anchor -----------------------------------------------------------------------------
def test_the_anchor_of_another_batch_is_rejected() -> None:
    other = seal_batch(event_id(20_000), events())
    wrong = receipt_of(BATCH, 3, anchor_receipt(anchor_entry(other)))
    with pytest.raises(VerificationError, match="another batch"):
        verify_event_receipt(wrong, LOG.verifier())


def test_the_anchor_of_another_kind_of_transaction_is_rejected() -> None:
    entry = anchor_entry(BATCH, tx_type="record.tombstone", payload={"patient": NODE.did})
    with pytest.raises(VerificationError, match=r"not access\.batch"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_anchor_that_failed_is_rejected() -> None:
    entry = anchor_entry(BATCH, ok=False, reason="not_organization")
    with pytest.raises(VerificationError, match="failed"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_anchor_by_another_node_is_rejected() -> None:
    """The node that decided signs the batch: another organization cannot vouch for it."""
    entry = anchor_entry(BATCH, key=OTHER_NODE)
    with pytest.raises(VerificationError, match="another node"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_anchor_with_a_bad_transaction_signature_is_rejected() -> None:
    """The log signed an entry whose transaction signature does not verify."""
    entry = anchor_entry(BATCH)
    obj = json.loads(entry)
    sig = obj["tx"]["sig"]
    obj["tx"]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    forged = entry.replace(sig.encode(), obj["tx"]["sig"].encode())
    with pytest.raises(SignatureError):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(forged)), LOG.verifier())


def test_an_anchor_under_a_checkpoint_of_another_key_is_rejected() -> None:
    forged = receipt_of(BATCH, 3, anchor_receipt(anchor_entry(BATCH), signer=OTHER_LOG))
    with pytest.raises(SignatureError):
        verify_event_receipt(forged, LOG.verifier())
    with pytest.raises(SignatureError):
        verify_event_receipt(good(), OTHER_LOG.verifier())


def test_an_anchor_whose_entry_is_not_in_the_log_is_rejected() -> None:
    anchor = ANCHOR.decode()
    lines = anchor.split("\n")
    lines[2] = "index 3"  # the entry claimed at another index
    with pytest.raises(ProofError):
        verify_event_receipt(receipt_of(BATCH, 3, "\n".join(lines).encode()), LOG.verifier())


def test_an_anchor_without_its_entry_is_rejected() -> None:
    no_extra = "\n".join(
        line for line in ANCHOR.decode().split("\n") if not line.startswith("extra ")
    )
    with pytest.raises(VerificationError, match="extra"):
        verify_event_receipt(receipt_of(BATCH, 3, no_extra.encode()), LOG.verifier())


def test_an_anchor_that_is_not_tlog_proof_is_rejected() -> None:
    with pytest.raises(VerificationError, match="tlog-proof"):
        verify_event_receipt(receipt_of(BATCH, 3, b"hello\n"), LOG.verifier())


def test_an_event_outside_the_anchored_time_range_is_rejected() -> None:
    payload = {**BATCH.anchor_payload(), "first_time_ms": T0 + 4}
    entry = anchor_entry(BATCH, payload=payload)
    with pytest.raises(VerificationError, match="time range"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_anchor_with_another_count_is_rejected() -> None:
    entry = anchor_entry(BATCH, payload={**BATCH.anchor_payload(), "count": 6})
    with pytest.raises(VerificationError, match="count"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_entry_that_is_not_a_transaction_is_rejected() -> None:
    entry = canonical({"kind": "note", "text": "hello"})
    with pytest.raises(VerificationError, match="not a transaction"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(entry)), LOG.verifier())


def test_an_entry_with_a_forged_tx_id_is_rejected() -> None:
    entry = anchor_entry(BATCH)
    tx_id = json.loads(entry)["tx_id"]
    forged = entry.replace(tx_id.encode(), b"0" * 64)
    with pytest.raises(VerificationError, match="tx_id"):
        verify_event_receipt(receipt_of(BATCH, 3, anchor_receipt(forged)), LOG.verifier())


# --- the document ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.replace(b'{"anchor"', b'{ "anchor"'),  # not canonical
        lambda d: d[:-1],  # truncated
        lambda d: b"\xff" + d,  # not UTF-8
        lambda d: edit(d, lambda o: o.__setitem__("type", "other/v1")),
        lambda d: edit(d, lambda o: o.__setitem__("comment", "hello")),
        lambda d: edit(d, lambda o: o["event"].__setitem__("name", "Jane Doe")),
        lambda d: edit(d, lambda o: o["batch"].__setitem__("proof", ["zz" * 32])),
        lambda d: edit(d, lambda o: o["batch"].__setitem__("proof", ["00" * 32] * 21)),
        lambda d: edit(d, lambda o: o["batch"].__setitem__("index", 5)),
        lambda d: edit(d, lambda o: o["batch"].__setitem__("batch_id", "x")),
        lambda d: edit(d, lambda o: o.__setitem__("anchor", 7)),
        lambda d: d.replace(b'"index":3', b'"index":3.0'),
        lambda d: d.replace(b'"index":3', b'"index":3,"index":3'),
    ],
)
def test_a_malformed_receipt_is_a_verification_error(mutate: Any) -> None:
    with pytest.raises(VerificationError):
        verify_event_receipt(mutate(good()), LOG.verifier())


def test_an_oversize_receipt_is_refused_before_parsing() -> None:
    limits = EventReceiptLimits(max_receipt_bytes=1024)
    with pytest.raises(VerificationError, match="limit"):
        verify_event_receipt(good(), LOG.verifier(), limits)


def test_the_receipt_value_keeps_its_invariants() -> None:
    parsed = parse_event_receipt(good(), EventReceiptLimits())
    for change in ({"index": 5}, {"size": 0}, {"proof": (b"x",)}, {"anchor": b""},
                   {"anchor": b"\xff"}, {"batch_id": "?"}):  # fmt: skip
        with pytest.raises(InvalidInputError):
            dataclasses.replace(parsed, **change)
