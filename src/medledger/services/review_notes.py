"""Review notes: a privacy officer's free-text note on a break-glass review, off the ledger.

The ``access.review`` transaction carries only ``note_commitment`` (ADR 0022); the note and its
salt come afterwards to the node that holds the event, in a signed ``request.review_note``
(the HTTP edge checks the signature and the replay guard). ``attach`` then, in order:

1. parses the note (1-2,000 characters of text) and the salt (32 bytes, hex): 400;
2. the event is held by this node (its access-event store): 404;
3. the event's review is on the ledger (``review/<event_id>``): else 409, commit it first;
4. the requester is the officer who signed that review: 403 for anyone else;
5. the review carries a commitment (409), and the note and salt open it (400: a forged or
   mistyped note, or one meant for another event, is refused);
6. it is stored once (``SqliteReviewNotes``); the same note again is answered as stored,
   and a note erased is never attached again (409).

``erase`` shreds a note's text at the request of the officer who wrote it or the patient.

``review_of`` gives a review as the node shows it: the ruling from the ledger and, when held,
the note with ``note_verified`` -- recomputed on every read against the commitment in the
ledger's state, so a note changed on disk shows as unverified. The receiver can recompute it
too (``note_salt``, ``note_commitment``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from medledger.core.audit.event import AccessEvent
from medledger.core.audit.review_note import (
    is_note_committed,
    parse_note,
    parse_salt,
)
from medledger.core.ledger.contracts.review import EVENT_ID, review_key
from medledger.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TamperError,
)
from medledger.ports import NoteStore, StoredNote


class ReviewNoteService:
    """Attach notes to committed reviews; show reviews with their notes."""

    def __init__(
        self,
        *,
        store: NoteStore,
        state_get: Callable[[str], bytes | None],
        event: Callable[[str], AccessEvent],
    ) -> None:
        self._store = store
        self._state_get = state_get
        self._event = event  # raises NotFoundError for an event this node does not hold

    def _review(self, event_id: str) -> dict[str, Any] | None:
        raw = self._state_get(review_key(event_id))
        if raw is None:
            return None
        value = json.loads(raw)
        if not isinstance(value, dict):  # pragma: no cover - the contract writes objects
            raise TamperError("review state is not an object")
        return value

    def attach(
        self, requester: str, event_id: object, note: object, salt: object, now_ms: int
    ) -> dict[str, Any]:
        """Steps 1-6 above; returns the review with its note as ``review_of`` shows it."""
        # 1. parse
        if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            raise InvalidInputError(
                "event_id: 26 lowercase base32 characters", parameter="event_id"
            )
        text = parse_note(note)
        salt_bytes = parse_salt(salt)
        # 2. the event is held here
        self._event(event_id)
        # 3. its review is on the ledger
        review = self._review(event_id)
        if review is None:
            raise ConflictError("this event has no review on the ledger yet: commit it first")
        # 4. by this requester
        if review.get("reviewer") != requester:
            raise AccessDeniedError("only the officer who signed the review attaches its note")
        # 5. it commits to this note
        commitment = review.get("note_commitment")
        if not isinstance(commitment, str):
            raise ConflictError("the review carries no note commitment: it has no note")
        if not is_note_committed(commitment, event_id, text, salt_bytes):
            raise InvalidInputError(
                "the note and salt do not match the review's note_commitment", parameter="note"
            )
        # 6. once
        stored = self._store.put(
            event_id=event_id, reviewer=requester, commitment=commitment, note=text,
            salt=salt_bytes.hex(), now_ms=now_ms,
        )  # fmt: skip
        if stored.erased_ms is not None:
            raise ConflictError("this review's note was erased: it cannot be attached again")
        shown = self.review_of(event_id)
        if shown is None:  # pragma: no cover - step 3 found it; reviews are never removed
            raise ConflictError("the review vanished")
        return shown

    def review_of(self, event_id: str) -> dict[str, Any] | None:
        """The review of ``event_id`` (None if not reviewed): ``outcome``, ``officer``,
        ``height``, ``time_ms``, and ``note_commitment``, ``note``, ``note_salt``,
        ``note_verified`` (``note`` None until attached, or once erased)."""
        review = self._review(event_id)
        if review is None:
            return None
        commitment = review.get("note_commitment")
        shown: dict[str, Any] = {
            "outcome": review.get("outcome"),
            "officer": review.get("reviewer"),
            "height": review.get("height"),
            "time_ms": review.get("time_ms"),
            "note_commitment": commitment,
            "note": None,
            "note_salt": None,
            "note_verified": False,
        }
        stored = self._store.get(event_id) if isinstance(commitment, str) else None
        if stored is not None and stored.note is not None and stored.salt is not None:
            verified = _opens(commitment, event_id, stored)
            shown.update(note=stored.note, note_salt=stored.salt, note_verified=verified)
        return shown

    def erase(self, requester: str, event_id: object, now_ms: int) -> None:
        """Shred a note's text and salt at the request of the officer who wrote it or the
        patient it is about (GDPR art. 17); the commitment stays on the ledger, opening
        nothing, and the note is never attached again. 404 when there is no note to erase."""
        if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            raise InvalidInputError(
                "event_id: 26 lowercase base32 characters", parameter="event_id"
            )
        event = self._event(event_id)
        stored = self._store.get(event_id)
        if stored is None or stored.erased_ms is not None:
            raise NotFoundError("this event's review has no note to erase")
        if requester not in (stored.reviewer, event.patient):
            raise AccessDeniedError("only the officer who wrote the note or the patient erases it")
        self._store.erase(event_id, now_ms)


def _opens(commitment: object, event_id: str, stored: StoredNote) -> bool:
    if not isinstance(commitment, str) or stored.note is None or stored.salt is None:
        return False
    try:
        return is_note_committed(commitment, event_id, stored.note, bytes.fromhex(stored.salt))
    except (ValueError, InvalidInputError):
        return False
