"""Server-rendered page shells: Jinja2 with autoescaping, and the headers every page carries."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from medledger import __version__
from medledger.entrypoints.portal.app import PortalContext

TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)

#: Scripts only from this origin, no inline script, no framing: a page cannot be made to run
#: anyone else's code with the user's key.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def node_info_json(context: PortalContext) -> str:
    """The node facts for ``<script type="application/json">``: ``<`` escaped so no value can
    close the script element."""
    return json.dumps(context.public(), sort_keys=True).replace("<", "\\u003c")


def render(
    context: PortalContext, template: str, *, title: str, section: str, **values: Any
) -> HTMLResponse:
    """A page shell: ``template`` extends ``base.html``; ``section`` marks the nav item."""
    html = _env.get_template(template).render(
        title=title,
        section=section,
        node=context,
        node_info=node_info_json(context),
        version=__version__,
        **values,
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@dataclass(frozen=True, slots=True)
class Page:
    """A page shell: ``GET /portal{path}`` renders ``template`` (which extends base.html)."""

    path: str
    template: str
    title: str
    section: str


def page_router(context: PortalContext, pages: Sequence[Page]) -> APIRouter:
    """The routes of some page shells; what a page shows, its ES module fetches (signed)."""
    r = APIRouter(prefix="/portal", include_in_schema=False)

    def shell(page: Page) -> Callable[[], Awaitable[HTMLResponse]]:
        async def get() -> HTMLResponse:
            return render(context, page.template, title=page.title, section=page.section)

        return get

    for page in pages:
        r.add_api_route(page.path, shell(page), methods=["GET"], response_class=HTMLResponse)
    return r
