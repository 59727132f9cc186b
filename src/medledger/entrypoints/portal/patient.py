"""The patient's pages: who looked at my data, consent, my records."""

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

    return r
