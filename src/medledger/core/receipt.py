"""C2SP transparency log proofs, c2sp.org/tlog-proof@v1: offline-verifiable receipts.

A receipt says "entry ``index`` is in the log" and carries everything needed to check it
offline against the log's origin and trusted keys (tlog-proof, introduction)::

    c2sp.org/tlog-proof@v1
    extra <base64 opaque data>          (optional)
    index <decimal>
    <base64 inclusion proof hash>       (zero or more, leaf's sibling first)

    <the signed checkpoint note, verbatim>

What this module handles: the ``Receipt`` value, formatting and parsing that text (§Format),
and ``verify_receipt``: open the checkpoint note, then check RFC 9162 inclusion of the leaf.

Not handled here: trusting the ``extra`` data (§Format: "Applications MUST NOT implicitly trust
the extra data"), cosignature quorums (``medledger.core.cosignature.open_cosignatures`` on
``receipt.checkpoint_note``), building proofs from storage, reading files. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medledger.config import Limits
from medledger.core.checkpoint import MAX_TREE_SIZE, Checkpoint, open_checkpoint, parse_decimal
from medledger.core.merkle import HASH_SIZE, verify_inclusion
from medledger.core.merkle import leaf_hash as rfc9162_leaf_hash
from medledger.core.note import NoteVerifier, b64decode_strict, b64encode
from medledger.errors import InvalidInputError, TooLargeError

#: §Format: "The first line MUST be the string c2sp.org/tlog-proof@v1."
RECEIPT_HEADER = b"c2sp.org/tlog-proof@v1"
_EXTRA_PREFIX = b"extra "
_INDEX_PREFIX = b"index "


@dataclass(frozen=True, slots=True)
class Receipt:
    """A tlog-proof@v1 receipt. ``checkpoint_note`` is opaque until ``verify_receipt`` opens it.

    ``extra`` is ``None`` when the extra line is absent; it is unauthenticated (§Format).
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not 0 <= self.index < MAX_TREE_SIZE:
            raise InvalidInputError(f"index must be in 0..{MAX_TREE_SIZE - 1}", parameter="index")
        object.__setattr__(self, "proof", tuple(self.proof))
        if any(len(h) != HASH_SIZE for h in self.proof):
            raise InvalidInputError("every proof hash must be 32 bytes", parameter="proof")
        if not self.checkpoint_note:
            raise InvalidInputError("checkpoint note must not be empty", parameter="checkpoint")


def format_receipt(receipt: Receipt) -> bytes:
    """§Format: header, optional ``extra`` line, ``index`` line, proof hashes, empty line, note."""
    lines = [RECEIPT_HEADER]
    if receipt.extra is not None:
        lines.append(_EXTRA_PREFIX + b64encode(receipt.extra).encode("ascii"))
    lines.append(_INDEX_PREFIX + str(receipt.index).encode("ascii"))
    lines.extend(b64encode(h).encode("ascii") for h in receipt.proof)
    return b"".join(line + b"\n" for line in lines) + b"\n" + receipt.checkpoint_note


class _Lines:
    """Reads the newline-terminated lines of a receipt, counting them for error messages."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self.number = 0

    def next(self, expected: str) -> bytes:
        end = self._data.find(b"\n", self._pos)
        if end < 0:
            raise InvalidInputError(f"receipt ends before {expected}", parameter="receipt")
        line = self._data[self._pos : end]
        self._pos = end + 1
        self.number += 1
        return line

    def peek_startswith(self, prefix: bytes) -> bool:
        return self._data.startswith(prefix, self._pos)

    def rest(self) -> bytes:
        return self._data[self._pos :]


def _ascii(line: bytes, *, what: str) -> str:
    try:
        return line.decode("ascii")
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"receipt {what} is not ASCII", parameter="receipt") from e


def parse_receipt(data: bytes, limits: Limits) -> Receipt:
    """Parse a tlog-proof@v1 receipt (§Format), accepting only its canonical form.

    1. Refuse receipts over ``limits.max_receipt_bytes``.
    2. Line 1 MUST be ``c2sp.org/tlog-proof@v1``.
    3. Line 2 MAY be ``extra `` and base64 data.
    4. The next line MUST be ``index `` and an ASCII decimal with no leading zeroes.
    5. Then zero or more non-empty lines, one base64 SHA-256 hash each (at most
       ``limits.max_proof_hashes``), ended by an empty line.
    6. The rest is the checkpoint note, verbatim (it is verified by ``verify_receipt``).

    Base64 must be canonical and numbers have one spelling, so
    ``format_receipt(parse_receipt(b)) == b``.
    """
    # 1.
    if len(data) > limits.max_receipt_bytes:
        raise TooLargeError(
            f"receipt is {len(data)} bytes, the limit is {limits.max_receipt_bytes}",
            parameter="receipt",
        )
    lines = _Lines(data)
    # 2.
    if lines.next("the header line") != RECEIPT_HEADER:
        raise InvalidInputError(
            "receipt must start with the line c2sp.org/tlog-proof@v1", parameter="receipt"
        )
    # 3.
    extra = None
    if lines.peek_startswith(_EXTRA_PREFIX):
        text = _ascii(lines.next("the extra line")[len(_EXTRA_PREFIX) :], what="extra line")
        extra = b64decode_strict(text, what="extra")
    # 4.
    line = lines.next("the index line")
    if not line.startswith(_INDEX_PREFIX):
        raise InvalidInputError(
            f"receipt line {lines.number} must be 'index <n>'", parameter="receipt"
        )
    index_text = _ascii(line[len(_INDEX_PREFIX) :], what="index")
    index = parse_decimal(index_text, what="index", maximum=MAX_TREE_SIZE - 1)
    # 5.
    proof: list[bytes] = []
    while line := lines.next("the empty line before the checkpoint"):
        if len(proof) == limits.max_proof_hashes:
            raise TooLargeError(
                f"receipt has more than {limits.max_proof_hashes} proof hashes", parameter="proof"
            )
        what = f"proof hash on line {lines.number}"
        digest = b64decode_strict(_ascii(line, what=what), what=what)
        if len(digest) != HASH_SIZE:
            raise InvalidInputError(f"{what} is not 32 bytes", parameter="proof")
        proof.append(digest)
    # 6.
    note = lines.rest()
    if not note:
        raise InvalidInputError(
            "receipt has no checkpoint after the empty line", parameter="checkpoint"
        )
    return Receipt(index, tuple(proof), note, extra)


def verify_receipt(
    receipt: Receipt,
    *,
    entry: bytes | None = None,
    leaf_hash: bytes | None = None,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    limits: Limits,
) -> Checkpoint:
    """Check that the entry (or its leaf hash) is at ``receipt.index`` in a checkpoint of the
    log ``origin`` signed by one of ``verifiers``; return that checkpoint, or raise.

    Give exactly one of ``entry`` (hashed as RFC 9162 §2.1.1 ``SHA-256(0x00 || entry)``) and
    ``leaf_hash``. Never returns a bare False.

    1. tlog-checkpoint: open ``receipt.checkpoint_note`` (the log's signature is verified on
       those bytes, then the origin is compared): ``SignatureError``/``VerificationError``.
    2. RFC 9162 §2.1.3.2: the inclusion proof must lead from the leaf hash at ``index`` to the
       checkpoint's root hash for the checkpoint's tree size: ``ProofError``.
    """
    if entry is not None and leaf_hash is None:
        leaf = rfc9162_leaf_hash(entry)
    elif leaf_hash is not None and entry is None:
        if len(leaf_hash) != HASH_SIZE:
            raise InvalidInputError("leaf hash must be 32 bytes", parameter="leaf_hash")
        leaf = leaf_hash
    else:
        raise InvalidInputError("give exactly one of entry and leaf_hash", parameter="entry")
    if len(receipt.proof) > limits.max_proof_hashes:
        raise TooLargeError(
            f"receipt has more than {limits.max_proof_hashes} proof hashes", parameter="proof"
        )
    # 1.
    checkpoint = open_checkpoint(receipt.checkpoint_note, origin, verifiers, limits)
    # 2.
    verify_inclusion(leaf, receipt.index, checkpoint.size, receipt.proof, checkpoint.root_hash)
    return checkpoint
