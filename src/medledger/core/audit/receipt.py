"""Access-event receipts: one event, proved offline from its batch up to a signed checkpoint.

A receipt is one JSON document, in RFC 8785 canonical form (one spelling per receipt)::

    {"type": "medledger-access-event-receipt/v1",
     "event": <the event's JSON object: its leaf bytes, parsed>,
     "batch": {"batch_id": ..., "index": i, "size": n, "proof": [<hex SHA-256>, ...]},
     "anchor": "<C2SP tlog-proof@v1 receipt of the batch's access.batch log entry>"}

Two proofs chain: the event is leaf ``i`` of its batch's RFC 9162 tree of ``n`` leaves, whose
root the node anchored with one signed ``access.batch`` transaction (ADR 0014); that
transaction is an entry of the transparency log under a checkpoint signed by the log's key
(the anchor carries its entry in ``extra``, ADR 0004). A patient needs nothing else: not the
node, not the other events of the batch (the proof names them only by hash).

What this module handles: the receipt value, formatting and strict parsing
(``format_event_receipt``/``parse_event_receipt``), and ``verify_event_receipt``. Not handled
here: building receipts from storage (``services.audit``), cosignature quorums, trusting a
log key (the caller passes the verifier it trusts). Pure.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from medledger.config import Limits
from medledger.core.audit.batch import MAX_BATCH_PROOF_HASHES
from medledger.core.audit.event import AccessEvent, parse_event
from medledger.core.ledger.block import log_entry
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.access_batch import (
    ACCESS_BATCH,
    BATCH_ID,
    MAX_BATCH_EVENTS,
)
from medledger.core.ledger.envelope import (
    TxLimits,
    decode_transaction,
    verify_transaction_signature,
)
from medledger.core.ledger.runtime import TxResult
from medledger.core.ledger.tx import SignedTransaction
from medledger.core.merkle import HASH_SIZE, leaf_hash, root_from_inclusion_proof
from medledger.core.note import NoteVerifier
from medledger.core.receipt import parse_receipt, verify_receipt
from medledger.errors import (
    InvalidInputError,
    ProofError,
    TooLargeError,
    VerificationError,
)

RECEIPT_TYPE: Final = "medledger-access-event-receipt/v1"
_RECEIPT_KEYS: Final = frozenset({"type", "event", "batch", "anchor"})
_BATCH_KEYS: Final = frozenset({"batch_id", "index", "size", "proof"})
_ENTRY_KEYS: Final = frozenset({"height", "index", "kind", "ok", "reason", "tx", "tx_id"})
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class EventReceiptLimits:
    """Upper bounds on an untrusted event receipt (``medledger.config.Limits`` style).

    A receipt is ~2-4 KiB: an event (<= ~3 KiB with a 500-character justification), at most
    20 batch proof hashes, and an anchor of ~1 KiB of transaction plus log proof and
    checkpoint. ``log`` bounds the embedded tlog-proof, ``tx`` the anchored transaction."""

    max_receipt_bytes: int = 64 * 1024
    max_batch_proof_hashes: int = MAX_BATCH_PROOF_HASHES
    log: Limits = field(default_factory=Limits)
    tx: TxLimits = field(default_factory=TxLimits)

    def __post_init__(self) -> None:
        if not 0 < self.max_receipt_bytes <= 1024 * 1024:
            raise InvalidInputError("max_receipt_bytes must be in 1..1 MiB")
        if not 0 <= self.max_batch_proof_hashes <= 64:
            raise InvalidInputError("max_batch_proof_hashes must be in 0..64")


@dataclass(frozen=True, slots=True)
class EventReceipt:
    """A parsed receipt; nothing in it is trusted until ``verify_event_receipt`` says so."""

    event: AccessEvent
    batch_id: str
    index: int
    size: int
    proof: tuple[bytes, ...]
    anchor: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.batch_id, str) or not BATCH_ID.fullmatch(self.batch_id):
            raise InvalidInputError("batch_id: 8-64 of [A-Za-z0-9_-]", parameter="batch_id")
        if _not_int(self.size, 1, MAX_BATCH_EVENTS):
            raise InvalidInputError(f"size: 1..{MAX_BATCH_EVENTS}", parameter="size")
        if _not_int(self.index, 0, self.size - 1):
            raise InvalidInputError("index: must be below the batch size", parameter="index")
        object.__setattr__(self, "proof", tuple(self.proof))
        if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in self.proof):
            raise InvalidInputError("proof: 32-byte hashes", parameter="proof")
        if not isinstance(self.anchor, bytes) or not self.anchor:
            raise InvalidInputError("anchor: must not be empty", parameter="anchor")
        try:
            self.anchor.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInputError("anchor: must be UTF-8 text", parameter="anchor") from e

    def to_json(self) -> dict[str, JSON]:
        return {
            "type": RECEIPT_TYPE,
            "event": self.event.to_json(),
            "batch": {
                "batch_id": self.batch_id,
                "index": self.index,
                "size": self.size,
                "proof": [h.hex() for h in self.proof],
            },
            "anchor": self.anchor.decode("utf-8"),
        }


def _not_int(value: object, low: int, high: int) -> bool:
    return type(value) is not int or not low <= value <= high


def format_event_receipt(receipt: EventReceipt) -> bytes:
    """The receipt's canonical JSON bytes (RFC 8785)."""
    return canonical(receipt.to_json())


# --- strict JSON --------------------------------------------------------------------------
def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidInputError("an object has a duplicate key", parameter="receipt")
    return obj


def _no_float(text: str) -> NoReturn:
    raise InvalidInputError(f"numbers must be integers, not {text[:20]}", parameter="receipt")


def _safe_int(text: str) -> int:
    if len(text) > 17 or abs(int(text)) > MAX_SAFE_INTEGER:
        raise InvalidInputError("an integer is out of range", parameter="receipt")
    return int(text)


def _strict_json(data: bytes, what: str) -> Any:
    """UTF-8 JSON with unique keys, integers only (RFC 7493 I-JSON)."""
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique,
            parse_float=_no_float,
            parse_constant=_no_float,
            parse_int=_safe_int,
        )
    except RecursionError as e:
        raise InvalidInputError(f"{what} is nested too deeply", parameter=what) from e
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError
        raise InvalidInputError(f"{what} is not UTF-8 JSON", parameter=what) from e


def _object(value: object, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise InvalidInputError(
            f"{what} must be an object with exactly {', '.join(sorted(keys))}", parameter=what
        )
    return value


def _hash(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE or not set(value) <= _HEX:
        raise InvalidInputError("proof: each hash is 64 lowercase hex digits", parameter="proof")
    return bytes.fromhex(value)


def parse_event_receipt(data: bytes, limits: EventReceiptLimits) -> EventReceipt:
    """Parse an untrusted receipt, accepting only its canonical form.

    1. at most ``limits.max_receipt_bytes`` (``TooLargeError``), before anything is parsed;
    2. strict JSON (UTF-8, unique keys, integers only), exactly the receipt's keys, ``type``
       is ``medledger-access-event-receipt/v1``;
    3. ``event``: ``parse_event`` (every field checked, unknown ones refused);
    4. ``batch``: an id, ``0 <= index < size <= 2**20``, at most
       ``limits.max_batch_proof_hashes`` lowercase-hex SHA-256 hashes;
    5. ``anchor``: a non-empty string (parsed as tlog-proof by ``verify_event_receipt``);
    6. the bytes are the RFC 8785 form of what was parsed, so the event's leaf bytes are
       exactly bytes that were received (never a re-serialisation that could differ).
    """
    # 1.
    if len(data) > limits.max_receipt_bytes:
        raise TooLargeError(
            f"the receipt is {len(data)} bytes, the limit is {limits.max_receipt_bytes}",
            parameter="receipt",
        )
    # 2.
    obj = _object(_strict_json(data, "receipt"), _RECEIPT_KEYS, "receipt")
    if obj["type"] != RECEIPT_TYPE:
        raise InvalidInputError(f"type: must be {RECEIPT_TYPE}", parameter="type")
    # 3.
    event = parse_event(obj["event"])
    # 4.
    batch = _object(obj["batch"], _BATCH_KEYS, "batch")
    proof = batch["proof"]
    if not isinstance(proof, list) or len(proof) > limits.max_batch_proof_hashes:
        raise TooLargeError(
            f"proof: a list of at most {limits.max_batch_proof_hashes} hashes",
            parameter="proof",
        )
    # 5.
    anchor = obj["anchor"]
    if not isinstance(anchor, str):
        raise InvalidInputError("anchor: must be tlog-proof text", parameter="anchor")
    try:
        anchor_bytes = anchor.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate escape: not text
        raise InvalidInputError("anchor: must be Unicode text", parameter="anchor") from e
    receipt = EventReceipt(
        event=event,
        batch_id=batch["batch_id"],
        index=batch["index"],
        size=batch["size"],
        proof=tuple(_hash(h) for h in proof),
        anchor=anchor_bytes,
    )
    # 6.
    if format_event_receipt(receipt) != data:
        raise InvalidInputError(
            "the receipt is not in RFC 8785 canonical form", parameter="receipt"
        )
    return receipt


# --- verification -------------------------------------------------------------------------
def _anchor_transaction(entry: bytes, limits: TxLimits) -> SignedTransaction:
    """The transaction a log entry (``block.log_entry``) records, if it committed with ok.

    1. the entry is a JSON object with exactly the log entry's keys, of kind ``tx``;
    2. its outcome is ok (a failed transaction anchored nothing);
    3. the entry is byte for byte ``log_entry`` of a transaction at its height and index:
       the same head around the embedded wire bytes, which are cut out as received (never
       re-serialised);
    4. those wire bytes decode as a transaction in canonical form (signature checked later)
       whose id is the entry's ``tx_id``.
    """
    # 1.
    try:
        obj = _object(_strict_json(entry, "entry"), _ENTRY_KEYS, "entry")
    except InvalidInputError as e:
        raise VerificationError(f"the anchored log entry is not a transaction: {e}") from e
    if obj["kind"] != "tx":
        raise VerificationError("the anchored log entry is not a transaction")
    # 2.
    if obj["ok"] is not True or obj["reason"] is not None:
        raise VerificationError(
            f"the anchor transaction failed ({ascii(obj['reason'])[:60]}): it anchored nothing"
        )
    height, index, tx_id = obj["height"], obj["index"], obj["tx_id"]
    if _not_int(height, 0, MAX_SAFE_INTEGER) or _not_int(index, 0, MAX_SAFE_INTEGER):
        raise VerificationError("the anchored log entry has no valid height and index")
    try:
        tx_id_bytes = _hash(tx_id)
    except InvalidInputError as e:
        raise VerificationError("the anchored log entry has no valid tx_id") from e
    # 3.
    shell = log_entry(height, index, b"", TxResult(tx_id_bytes, ok=True))
    cut = shell.index(b',"tx_id":')
    head, tail = shell[:cut], shell[cut:]
    if not (entry.startswith(head) and entry.endswith(tail)) or len(entry) <= len(shell):
        raise VerificationError("the log entry is not in the form of a transaction's entry")
    wire = entry[len(head) : len(entry) - len(tail)]
    # 4.
    try:
        stx = decode_transaction(wire, limits)
    except InvalidInputError as e:
        raise VerificationError(f"the anchored transaction is malformed: {e}") from e
    if not hmac.compare_digest(stx.tx_id, tx_id_bytes):
        raise VerificationError("the log entry's tx_id is not the id of its transaction")
    return stx


def _check_anchor_payload(stx: SignedTransaction, receipt: EventReceipt, root: bytes) -> None:
    """The anchor is the ``access.batch`` of this batch, by the node that decided."""
    tx = stx.tx
    if tx.type != ACCESS_BATCH:
        raise VerificationError(f"the anchor is a {tx.type} transaction, not {ACCESS_BATCH}")
    payload = tx.payload
    if payload.get("batch_id") != receipt.batch_id:
        raise VerificationError("the anchor is for another batch (batch_id)")
    if not isinstance(payload.get("root"), str) or not hmac.compare_digest(
        payload["root"].encode("ascii", errors="replace"), root.hex().encode("ascii")
    ):
        raise ProofError("the event's batch proof does not lead to the anchored root")
    if payload.get("count") != receipt.size:
        raise VerificationError("the batch size is not the anchored count")
    if tx.sender != receipt.event.node:
        raise VerificationError("the batch was anchored by another node than the one that decided")
    first, last = payload.get("first_time_ms"), payload.get("last_time_ms")
    if not (
        isinstance(first, int) and isinstance(last, int) and first <= receipt.event.time_ms <= last
    ):
        raise VerificationError("the event's time is outside the anchored batch's time range")


def verify_event_receipt(
    data: bytes,
    verifier: NoteVerifier,
    limits: EventReceiptLimits | None = None,
    *,
    origin: str | None = None,
) -> AccessEvent:
    """Check a receipt offline against the log key ``verifier``; return its verified event.

    ``origin`` is the log's origin; by default the verifier's key name (a medledger log
    signer is named after its origin). Raises ``VerificationError`` (malformed receipt,
    anchor that is not this batch's), ``ProofError`` (an inclusion that does not hold) or
    ``SignatureError`` (checkpoint or transaction signature); never returns a bare False.

    1. parse the receipt (``parse_event_receipt``);
    2. RFC 9162 §2.1.3.2: the event's leaf hash, ``SHA-256(0x00 || leaf bytes)``, with the
       batch proof at ``index`` in a tree of ``size`` gives the batch root R;
    3. tlog-proof: open the anchor's checkpoint with ``verifier`` (origin checked) and check
       the inclusion of its ``extra`` entry (``core.receipt.verify_receipt``);
    4. the entry records a transaction that committed ok (``_anchor_transaction``);
    5. RFC 8032: that transaction's signature verifies under its sender's did:key;
    6. it is ``access.batch`` with ``batch_id``, ``root == R``, ``count == size``, sent by the
       event's ``node``, with the event's time in its time range.
    """
    limits = limits or EventReceiptLimits()
    # 1.
    try:
        receipt = parse_event_receipt(data, limits)
    except InvalidInputError as e:
        raise VerificationError(f"the receipt is malformed: {e}") from e
    # 2.
    leaf = leaf_hash(receipt.event.leaf_bytes())
    root = root_from_inclusion_proof(leaf, receipt.index, receipt.size, receipt.proof)
    # 3.
    try:
        anchor = parse_receipt(receipt.anchor, limits.log)
    except InvalidInputError as e:
        raise VerificationError(f"the anchor is not a tlog-proof receipt: {e}") from e
    if anchor.extra is None:
        raise VerificationError("the anchor does not carry its log entry (extra line)")
    try:
        verify_receipt(
            anchor,
            entry=anchor.extra,
            origin=origin if origin is not None else verifier.name,
            verifiers=[verifier],
            limits=limits.log,
        )
    except InvalidInputError as e:  # a malformed checkpoint note
        raise VerificationError(f"the anchor's checkpoint is malformed: {e}") from e
    # 4.
    stx = _anchor_transaction(anchor.extra, limits.tx)
    # 5.
    verify_transaction_signature(stx)
    # 6.
    _check_anchor_payload(stx, receipt, root)
    return receipt.event
