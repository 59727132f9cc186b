"""The patient's pages: who looked at my data, consent, my records.

Shells only: each page is a template and an ES module that calls the node's public API signed
in the browser with the patient's key (``request.list_audit``, ``request.read``,
``request.erase``, ``consent.grant`` / ``consent.revoke`` transactions, a SMART token for
``$everything``) and verifies receipts there against the log key pinned at sign-in (ADR 0020).
The server renders no patient data: it has none it would give a page without a signature.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from medledger.entrypoints.portal.app import PortalContext
from medledger.entrypoints.portal.templating import render


def router(context: PortalContext) -> APIRouter:
    r = APIRouter(prefix="/portal", include_in_schema=False)

    @r.get("/timeline", response_class=HTMLResponse)
    async def timeline() -> HTMLResponse:
        return render(context, "timeline.html", title="Who looked at my data", section="timeline")

    @r.get("/consent", response_class=HTMLResponse)
    async def consent() -> HTMLResponse:
        return render(context, "consent.html", title="Who can see my data", section="consent")

    @r.get("/records", response_class=HTMLResponse)
    async def records() -> HTMLResponse:
        return render(context, "records.html", title="My records", section="records")

    return r
