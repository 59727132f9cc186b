"""Sign-in, and the demo's key files.

``GET /portal`` is the sign-in page: a key file (``medledger-key/v1``) is opened in the browser
with its passphrase, the seed becomes a non-extractable WebCrypto key in IndexedDB, and the log
verifier key shown on the page is pinned beside it. ``GET /portal/demo-keys/{name}`` serves a
demo user's key file, still encrypted, only on a node started by ``medledger demo``.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from medledger.entrypoints.portal.app import PortalContext
from medledger.entrypoints.portal.templating import SECURITY_HEADERS, render
from medledger.errors import NotFoundError

_NAME = re.compile(r"[a-z0-9][a-z0-9\-]{0,39}")
MAX_KEY_FILE_BYTES = 4096


def router(context: PortalContext) -> APIRouter:
    r = APIRouter(prefix="/portal", include_in_schema=False)

    @r.get("", response_class=HTMLResponse)
    async def sign_in() -> HTMLResponse:
        return render(context, "signin.html", title="Sign in", section="signin")

    @r.get("/demo-keys/{name}", response_class=Response)
    async def demo_key(name: str) -> Response:
        known = {u.name for u in context.demo_users}
        if context.demo_keys_dir is None or not _NAME.fullmatch(name) or name not in known:
            raise NotFoundError("no such demo key")
        path = context.demo_keys_dir / f"{name}.key"
        data = await run_in_threadpool(path.read_bytes)
        if len(data) > MAX_KEY_FILE_BYTES:  # pragma: no cover - we wrote these files
            raise NotFoundError("no such demo key")
        return Response(data, media_type="application/json", headers=SECURITY_HEADERS)

    return r
