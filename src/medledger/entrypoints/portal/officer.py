"""The privacy officer's console (break-glass review, charts, ledger status) and the explorer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from medledger.entrypoints.portal.app import PortalContext
from medledger.entrypoints.portal.templating import render


def router(context: PortalContext) -> APIRouter:
    r = APIRouter(prefix="/portal", include_in_schema=False)

    @r.get("/explorer", response_class=HTMLResponse)
    async def explorer() -> HTMLResponse:
        return render(context, "explorer.html", title="Ledger explorer", section="explorer")

    return r
