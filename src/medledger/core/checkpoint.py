"""C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): a signed tree head.

What this module handles: the ``Checkpoint`` value (origin, tree size, root hash, extension
lines) and its note text (§Note text), signing it as a signed note, and opening a received
checkpoint note: the log's signature is verified on the bytes received, then the text is
parsed, then the origin is compared with the one the caller expects.

Not handled here: whether a new checkpoint is consistent with an older one (RFC 9162 §2.1.4,
``medledger.core.merkle.verify_consistency``), witness cosignatures
(``medledger.core.cosignature``), fetching or storing checkpoints. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from medledger.config import Limits
from medledger.core.merkle import HASH_SIZE
from medledger.core.note import (
    NoteSigner,
    NoteVerifier,
    b64decode_strict,
    b64encode,
    check_note_text,
    open_note,
    sign_note,
)
from medledger.errors import InvalidInputError, TooLargeError, VerificationError

#: RFC 9162 trees have at most 2**64 - 1 leaves (tree sizes are uint64).
MAX_TREE_SIZE = 2**64 - 1
# §Note text: "the ASCII decimal representation ... with no leading zeroes (unless ... 0)".
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def parse_decimal(text: str, *, what: str, maximum: int = MAX_TREE_SIZE) -> int:
    """An ASCII decimal without leading zeroes (``0`` alone is allowed), at most ``maximum``.

    Python's ``int()`` would also take ``+1``, ``1_000``, spaces and non-ASCII digits; this
    accepts exactly one spelling per number.
    """
    if not _DECIMAL.fullmatch(text):
        raise InvalidInputError(
            f"{what} must be an ASCII decimal without leading zeroes", parameter=what
        )
    value = int(text)
    if value > maximum:
        raise InvalidInputError(f"{what} must be at most {maximum}", parameter=what)
    return value


def _check_line(value: str, *, what: str) -> None:
    # A line of a note text: non-empty, no newline, and (signed-note §Format) valid UTF-8 without
    # control characters.
    if not value:
        raise InvalidInputError(f"checkpoint {what} must not be empty", parameter=what)
    if any(ch < "\x20" for ch in value):
        raise InvalidInputError(
            f"checkpoint {what} must be one line without control characters", parameter=what
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(f"checkpoint {what} is not valid Unicode", parameter=what) from e


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed tree head: §Note text lines 1-3 and any extension lines (line 4 on).

    The constructor enforces the invariants, so a ``Checkpoint`` that exists has a valid body.
    The origin's SHOULD (a schema-less URL without spaces or ``+``) is not enforced: clients
    "MUST NOT assume that the origin is following this format".
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, what="origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInputError(f"size must be in 0..{MAX_TREE_SIZE}", parameter="size")
        if len(self.root_hash) != HASH_SIZE:
            raise InvalidInputError("root hash must be 32 bytes", parameter="root_hash")
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            # §Note text 4: "Extension lines, if any, MUST be non-empty."
            _check_line(line, what="extension line")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root hash, extension lines, each ending in \\n."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(f"{line}\n" for line in lines).encode("utf-8")


def parse_checkpoint_body(text: bytes, limits: Limits) -> Checkpoint:
    """Parse a checkpoint note text (§Note text), accepting only its canonical form.

    Because sizes and hashes have one spelling each, ``parse_checkpoint_body(t).body() == t``
    for every accepted ``t``: the parsed value describes exactly the bytes that were signed.
    """
    if len(text) > limits.max_checkpoint_bytes:
        raise TooLargeError(
            f"checkpoint is {len(text)} bytes, the limit is {limits.max_checkpoint_bytes}",
            parameter="checkpoint",
        )
    check_note_text(text)
    lines = text[:-1].decode("utf-8").split("\n")
    # §Note text: "a sequence of at least three non-empty lines, separated by newlines".
    if len(lines) < 3:
        raise InvalidInputError(
            "checkpoint needs origin, size and root hash lines", parameter="checkpoint"
        )
    origin, size_text, root_text, *extensions = lines
    size = parse_decimal(size_text, what="tree size")
    root_hash = b64decode_strict(root_text, what="root hash")
    checkpoint = Checkpoint(origin, size, root_hash, tuple(extensions))
    if checkpoint.body() != text:  # unreachable if the checks above are complete
        raise InvalidInputError("checkpoint is not in canonical form", parameter="checkpoint")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """The checkpoint as a signed note (§Signatures). The key name SHOULD match the origin."""
    return sign_note(checkpoint.body(), [signer])


def open_checkpoint(
    note: bytes, origin: str, verifiers: Sequence[NoteVerifier], limits: Limits
) -> Checkpoint:
    """Open a received checkpoint note from the log ``origin`` signed by one of ``verifiers``.

    1. c2sp.org/signed-note: check the note and that a known key signed its text (the bytes
       received); unknown signatures, e.g. witness cosignatures, are ignored (§Signatures).
    2. §Note text: parse the verified text.
    3. §Note text 1: the origin must be the one expected, or the checkpoint is for another log.
    """
    opened = open_note(note, verifiers, limits)
    checkpoint = parse_checkpoint_body(opened.text, limits)
    if checkpoint.origin != origin:
        raise VerificationError("checkpoint is for a different origin than the one expected")
    return checkpoint
