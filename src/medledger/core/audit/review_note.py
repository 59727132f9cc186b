"""The privacy officer's review note: free text kept off the ledger, committed to on it.

A break-glass review (``access.review``, ``core/ledger/contracts/review.py``) may carry a note
explaining the ruling. A note is free text an officer writes about an emergency, so it is
PHI-prone and never goes on the ledger (ADR 0022). The review carries only
``note_commitment``, a salted, domain-separated SHA-256 over the note; the note and its salt
go to the node holding the event in a signed ``request.review_note``, which keeps them off-chain
and shows them with the review. Anyone given the note and the salt recomputes the commitment
and compares it with the one on the ledger.

Handled here (pure): the note's and salt's limits, and the commitment::

    note_commitment = hex(SHA-256("medledger/review-note/v1\\0" ||
                                  JCS({"event_id": ..., "note": ..., "salt": hex(salt)})))

The 32-byte random salt keeps a short or guessable note ("ok", "justified, see chart") from
being found by hashing candidates against the public commitment; the event id binds a note to
one review. Not handled here: who may attach a note, where it is stored (``services/
review_notes.py``, ``adapters/sqlite_review_notes.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from medledger.core.ledger.canonical import canonical
from medledger.errors import InvalidInputError

DOMAIN: Final = b"medledger/review-note/v1\0"
MIN_NOTE_CHARS: Final = 1
#: Unicode code points (a browser counts them with ``[...note].length``), not UTF-16 units.
MAX_NOTE_CHARS: Final = 2000
SALT_BYTES: Final = 32
COMMITMENT: Final = re.compile(r"[0-9a-f]{64}")
SALT: Final = re.compile(r"[0-9a-f]{64}")
#: Line breaks and tabs are text; other control characters (and lone surrogates) are not.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def parse_note(value: object) -> str:
    """The note as written: a string of 1-2,000 code points, not only white space, without
    control characters other than line breaks and tabs. Never normalised: the commitment is
    over these exact characters."""
    if not isinstance(value, str):
        raise InvalidInputError("note must be a string", parameter="note")
    if not MIN_NOTE_CHARS <= len(value) <= MAX_NOTE_CHARS or not value.strip():
        raise InvalidInputError(
            f"note must be {MIN_NOTE_CHARS}-{MAX_NOTE_CHARS} characters of text",
            parameter="note",
        )
    if _CONTROL.search(value):
        raise InvalidInputError(
            "note must not hold control characters (line breaks and tabs are fine)",
            parameter="note",
        )
    return value


def parse_salt(value: object) -> bytes:
    """The salt: 32 bytes as 64 lowercase hex digits."""
    if not isinstance(value, str) or not SALT.fullmatch(value):
        raise InvalidInputError(
            f"salt must be {SALT_BYTES} bytes as lowercase hex", parameter="salt"
        )
    return bytes.fromhex(value)


def note_commitment(event_id: str, note: str, salt: bytes) -> str:
    """The commitment a review carries for ``note`` about ``event_id`` (lowercase hex)."""
    if len(salt) != SALT_BYTES:
        raise InvalidInputError(f"salt must be {SALT_BYTES} bytes", parameter="salt")
    body = canonical({"event_id": event_id, "note": note, "salt": salt.hex()})
    return hashlib.sha256(DOMAIN + body).hexdigest()


def is_note_committed(commitment: str, event_id: str, note: str, salt: bytes) -> bool:
    """Whether ``note`` and ``salt`` open ``commitment`` for ``event_id``."""
    return hmac.compare_digest(note_commitment(event_id, note, salt), commitment)
