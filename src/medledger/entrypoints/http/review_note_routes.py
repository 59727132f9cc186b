"""The privacy officer's review note over HTTP (ADR 0022).

``POST /audit/review-notes`` takes a signed ``request.review_note`` ``{event_id, note, salt}``
from the officer who signed the event's ``access.review``: the note's text, which never goes on
the ledger, kept on this node (the one holding the event) if it opens the review's
``note_commitment``. The signature, expiry and replay guard are ``signed.SignedRequests``';
the steps after them, each with its status (400, 403, 404, 409), are
``services.review_notes.ReviewNoteService.attach``. Answers the review with its note, as
``/audit/reviews`` (``reviewed: true``) and the patient's ``/audit/events`` show it.

``POST /audit/review-notes/erase`` takes a signed ``request.erase_review_note`` ``{event_id}``
from the officer who wrote the note or the patient it is about: the note's text and salt are
shredded on this node; the commitment stays on the ledger and opens nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from medledger.entrypoints.http.signed import SignedRequests, text_field
from medledger.errors import InvalidInputError
from medledger.services.review_notes import ReviewNoteService

REVIEW_NOTE = "request.review_note"
ERASE_REVIEW_NOTE = "request.erase_review_note"
REQUEST_TYPES = frozenset({REVIEW_NOTE, ERASE_REVIEW_NOTE})
_EVENT_ID = re.compile(r"[a-z2-7]{26}")
_FIELDS = frozenset({"event_id", "note", "salt"})


def router(
    *,
    reviews: ReviewNoteService,
    signed_requests: SignedRequests,
    authorize: Callable[[Request], None],
) -> APIRouter:
    r = APIRouter(tags=["audit"], dependencies=[Depends(authorize)])

    @r.post("/audit/review-notes", summary="Attach a review's note, off the ledger (officer)")
    async def review_note(request: Request) -> dict[str, Any]:
        verified = await signed_requests.verify(request, REVIEW_NOTE)
        payload = verified.payload
        event_id = text_field(payload, "event_id", _EVENT_ID)
        unknown = set(payload) - _FIELDS
        if unknown:
            raise InvalidInputError(
                f"unknown field {sorted(unknown)[0][:40]!r}", parameter="payload"
            )
        review = await run_in_threadpool(
            reviews.attach,
            verified.sender,
            event_id,
            payload.get("note"),
            payload.get("salt"),
            int(time.time() * 1000),
        )
        return {"event_id": event_id, "review": review}

    @r.post("/audit/review-notes/erase", summary="Erase a review's note (officer or patient)")
    async def erase_review_note(request: Request) -> dict[str, Any]:
        verified = await signed_requests.verify(request, ERASE_REVIEW_NOTE)
        payload = verified.payload
        event_id = text_field(payload, "event_id", _EVENT_ID)
        if set(payload) - {"event_id"}:
            raise InvalidInputError("only event_id is taken", parameter="payload")
        await run_in_threadpool(reviews.erase, verified.sender, event_id, int(time.time() * 1000))
        return {"event_id": event_id, "erased": True}

    return r
