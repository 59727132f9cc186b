"""The patient's audit trail over HTTP: who tried to see their data, with a receipt per line.

``POST /audit/events`` takes a signed ``request.list_audit`` from the patient, their delegate or
a privacy officer of this node's organization (the access gate decides, and the listing is
itself an access event). Each event comes with its receipt (``medledger receipt verify`` checks
it offline) once its batch is anchored and covered by a signed checkpoint; ``wait_ms`` waits up
to 2 s for receipts still pending. Pages go oldest first by default, on ``after`` the last
event id seen; ``order: "newest"`` lists newest first, on ``before`` the last event id seen.
``format: "fhir"`` returns the events as a FHIR R4 Bundle of IHE BALP ``AuditEvent``s instead.

``POST /audit/reviews`` takes a signed ``request.review_queue`` from a privacy officer: this
node's break-glass events nobody has reviewed yet, or with ``reviewed: true`` those reviewed,
each with its review (ruling from the ledger, note from this node). A review is an
``access.review`` transaction, submitted like any other.

Break-glass rows of ``/audit/events`` carry their review, with its note when this node holds
one, as ``review`` (ADR 0022; the note arrives by ``review_note_routes``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from medledger.core.access.gate import AccessRequest, RecordFacts
from medledger.core.audit.event import AccessEvent
from medledger.core.audit.fhir import to_audit_events
from medledger.core.audit.query import OLDEST, check_paging
from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.entrypoints.http.signed import (
    PURPOSE,
    SignedRequests,
    did_field,
    optional_int,
    optional_text,
    text_field,
)
from medledger.errors import InvalidInputError, NotFoundError
from medledger.services.access import AccessService
from medledger.services.audit import AuditService
from medledger.services.review_notes import ReviewNoteService

LIST_AUDIT = "request.list_audit"
REVIEW_QUEUE = "request.review_queue"
REQUEST_TYPES = frozenset({LIST_AUDIT, REVIEW_QUEUE})
MAX_REVIEWED = 100
MAX_LIST = 1000
MAX_WAIT_MS = 2000
_EVENT_ID = re.compile(r"[a-z2-7]{26}")
_DECISION = re.compile(r"permit|deny|break-glass")


def _optional_did(payload: Any, name: str) -> str | None:
    return None if payload.get(name) is None else did_field(payload, name)


def _format(payload: Any) -> str:
    value = payload.get("format", "json")
    if value not in ("json", "fhir"):
        raise InvalidInputError("format must be json or fhir", parameter="format")
    return str(value)


def reviewed_rows(
    audit: AuditService, reviews: ReviewNoteService, node_did: str
) -> list[dict[str, Any]]:
    """The latest ``MAX_REVIEWED`` reviewed break-glass events of this node, oldest first,
    each with its review (``ReviewNoteService.review_of``), scanned 100 events a page."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = audit.break_glass_events(node_did, limit=100, after_event_id=after)
        for event in page:
            review = reviews.review_of(event.event_id)
            if review is not None:
                found.append({"event": event.to_json(), "review": review})
        if len(page) < 100:
            return found[-MAX_REVIEWED:]
        found = found[-MAX_REVIEWED:]
        after = page[-1].event_id


def _dumps(value: dict[str, Any]) -> str:
    """JSON as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _order(payload: Any) -> str:
    """``oldest`` (the default) or ``newest``; the cursor must be the order's own."""
    order = payload.get("order", OLDEST)
    check_paging(order, payload.get("after"), payload.get("before"))
    return str(order)


def _filters(payload: Any) -> dict[str, Any]:
    """The listing's filters and cursor, each checked (400 naming the field)."""
    return {
        "since_ms": optional_int(payload, "since_ms", 0, MAX_SAFE_INTEGER),
        "until_ms": optional_int(payload, "until_ms", 0, MAX_SAFE_INTEGER),
        "actor": _optional_did(payload, "actor"),
        "decision": optional_text(payload, "decision", _DECISION),
        "purpose": optional_text(payload, "filter_purpose", PURPOSE),
        "after_event_id": optional_text(payload, "after", _EVENT_ID),
        "before_event_id": optional_text(payload, "before", _EVENT_ID),
        "order": _order(payload),
        "others_only": _flag(payload, "others_only"),
    }


def _flag(payload: Any, name: str) -> bool:
    value = payload.get(name, False)
    if type(value) is not bool:
        raise InvalidInputError(f"{name} must be true or false", parameter=name)
    return value


def _fhir_bundle(events: list[AccessEvent], node_name: str) -> Response:
    """The events as a searchset Bundle of BALP AuditEvents, each rendered to JSON as
    soon as it is made. (Held together until the end, the ~40 dicts of each of a page's
    ~2,000 resources were walked by the collector again and again, then once more by the
    response model: three times the work; measured at 1,000 events a page.)"""
    # Only the patient, their delegate and privacy officers list: they may read a
    # break-glass justification.
    entries = [
        _dumps({"resource": resource})
        for event in events
        for resource in to_audit_events(event, node_name=node_name, include_justification=True)
    ]
    head = _dumps({"resourceType": "Bundle", "type": "searchset", "total": len(entries)})
    body = f'{head[:-1]},"entry":[{",".join(entries)}]}}'
    return Response(body.encode(), media_type="application/json")


def router(
    *,
    access: AccessService,
    audit: AuditService,
    node_did: str,
    node_name: str,
    is_reviewed: Callable[[str], bool],
    reviews: ReviewNoteService,
    signed_requests: SignedRequests,
    authorize: Callable[[Request], None],
) -> APIRouter:
    r = APIRouter(tags=["audit"], dependencies=[Depends(authorize)])

    def _with_receipts(events: list[AccessEvent], wait_ms: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait_ms / 1000
        rows: list[dict[str, Any]] = []
        for event in events:
            receipt: bytes | None
            try:
                left = max(0.0, deadline - time.monotonic())
                receipt = audit.wait_receipt(event.event_id, left) if left else None
                if receipt is None:
                    receipt = audit.receipt(event.event_id)
            except NotFoundError:
                receipt = None
            review = reviews.review_of(event.event_id) if event.decision == "break-glass" else None
            rows.append(
                {
                    "event": event.to_json(),
                    "reviewed": None if event.decision != "break-glass" else review is not None,
                    "review": review,
                    "receipt": None if receipt is None else receipt.decode(),
                }
            )
        return rows

    @r.post(
        "/audit/events",
        summary="A patient's access events, each with its receipt (signed)",
        response_model=None,
    )
    async def list_events(request: Request) -> dict[str, Any] | Response:
        verified = await signed_requests.verify(request, LIST_AUDIT)
        payload = verified.payload
        patient = did_field(payload, "patient")
        gate_request = AccessRequest(
            requester=verified.sender,
            patient=patient,
            record_id=None,
            action="list-audit",
            purpose=text_field(payload, "purpose", PURPOSE),
        )
        filters = _filters(payload)
        limit = optional_int(payload, "limit", 1, MAX_LIST) or 100
        wait_ms = optional_int(payload, "wait_ms", 0, MAX_WAIT_MS) or 0
        output = _format(payload)
        now_ms = int(time.time() * 1000)
        await run_in_threadpool(
            access.require, gate_request, RecordFacts(custodian=node_did), now_ms
        )
        events = await run_in_threadpool(lambda: audit.list_events(patient, limit=limit, **filters))
        if output == "fhir":
            return await run_in_threadpool(_fhir_bundle, events, node_name)
        rows = await run_in_threadpool(_with_receipts, events, wait_ms)
        return {"patient": patient, "events": rows, "count": len(rows)}

    def _anchored_batch(event_id: str) -> str | None:
        """The event's batch, once anchored (a review names an anchored batch); else None."""
        try:
            receipt = json.loads(audit.receipt(event_id))
        except NotFoundError:
            return None
        return str(receipt["batch"]["batch_id"])

    @r.post("/audit/reviews", summary="Break-glass events awaiting review (privacy officer)")
    async def review_queue(request: Request) -> dict[str, Any]:
        verified = await signed_requests.verify(request, REVIEW_QUEUE)
        if not is_did_key(verified.sender):  # pragma: no cover - the envelope checked it
            raise InvalidInputError("sender must be a did:key", parameter="sender")
        reviewed = verified.payload.get("reviewed", False)
        if not isinstance(reviewed, bool):
            raise InvalidInputError("reviewed must be true or false", parameter="reviewed")
        await run_in_threadpool(access.require_privacy_officer, verified.sender, node_did)
        if reviewed:
            rows = await run_in_threadpool(reviewed_rows, audit, reviews, node_did)
        else:
            events = await run_in_threadpool(
                lambda: audit.break_glass_events(
                    node_did, unreviewed_only=True, is_reviewed=is_reviewed
                )
            )
            rows = [{"event": e.to_json(), "batch_id": _anchored_batch(e.event_id)} for e in events]
        return {"organization": node_did, "events": rows, "count": len(rows)}

    return r
