"""The privacy officer's console and the explorer over HTTP: aggregates and checkpoint history.

``POST /audit/stats`` takes a signed ``request.access_stats`` from a privacy officer of this
node's organization (checked like ``/audit/reviews``): access decisions per UTC day (permit,
deny, break-glass) and denials by actor, over this node's access events in a bounded window
(``core.audit.stats``: at most 31 days, at most 50,000 events tallied, ``truncated`` past
that). Counts and actors' did:keys only: no patient, record or justification leaves.

``GET /log/checkpoints?before=<size>&limit=<n>`` pages through every checkpoint the log ever
signed, newest first, as the exact signed-note text: a client picks any two and checks a
consistency proof between them against the verifier key it trusts (the portal's explorer does
it in the browser). The notes are signed, so this endpoint needs no more trust than
``/log/checkpoint``, and it sits behind the same read hook.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from medledger.core.audit.stats import MAX_WINDOW_DAYS, StatsWindow
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.entrypoints.http.log_routes import parse_index
from medledger.entrypoints.http.signed import PURPOSE, SignedRequests, optional_int, text_field
from medledger.errors import InvalidInputError
from medledger.ports import SignedCheckpoint
from medledger.services.access import AccessService
from medledger.services.audit import AuditService

ACCESS_STATS = "request.access_stats"
REQUEST_TYPES = frozenset({ACCESS_STATS})
DEFAULT_DAYS = 14
MAX_CHECKPOINTS_PAGE = 100


class CheckpointHistory(Protocol):
    """Signed checkpoints, newest first (``adapters.sqlite_log.SqliteLog``)."""

    def checkpoints_before(self, before: int | None, limit: int) -> list[SignedCheckpoint]: ...


def _window(payload: Any, now_ms: int) -> StatsWindow:
    """``since_ms``/``until_ms`` when given (both), else the last ``days`` UTC days."""
    since = optional_int(payload, "since_ms", 0, MAX_SAFE_INTEGER)
    until = optional_int(payload, "until_ms", 0, MAX_SAFE_INTEGER)
    if since is not None and until is not None:
        return StatsWindow(since, until)
    if since is not None or until is not None:
        raise InvalidInputError("since_ms and until_ms go together", parameter="until_ms")
    days = optional_int(payload, "days", 1, MAX_WINDOW_DAYS) or DEFAULT_DAYS
    return StatsWindow.last_days(days, now_ms)


def router(
    *,
    access: AccessService,
    audit: AuditService,
    checkpoints: CheckpointHistory,
    node_did: str,
    signed_requests: SignedRequests,
    authorize: Callable[[Request], None],
) -> APIRouter:
    r = APIRouter(tags=["privacy officer"], dependencies=[Depends(authorize)])

    @r.post("/audit/stats", summary="Access decisions per day, denials by actor (officer)")
    async def stats(request: Request) -> dict[str, Any]:
        verified = await signed_requests.verify(request, ACCESS_STATS)
        await run_in_threadpool(access.require_privacy_officer, verified.sender, node_did)
        text_field(verified.payload, "purpose", PURPOSE)
        window = _window(verified.payload, int(time.time() * 1000))
        result = await run_in_threadpool(audit.access_stats, window)
        return {"organization": node_did, **result.to_json()}

    @r.get("/log/checkpoints", summary="Signed checkpoints, newest first (paged)")
    async def history(
        before: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_CHECKPOINTS_PAGE)] = 20,
    ) -> dict[str, Any]:
        below = None if before is None else parse_index(before, "before")
        found = await run_in_threadpool(checkpoints.checkpoints_before, below, limit)
        items = [{"size": c.size, "note": c.note.decode()} for c in found]
        return {"items": items, "next": found[-1].size if len(found) == limit else None}

    return r
