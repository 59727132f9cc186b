"""The node's ASGI app: wires routes, the error table, the authorization hook and the
background work (signing checkpoints on schedule) to one ``Node``."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from medledger import __version__
from medledger.bootstrap import Node
from medledger.core.ledger.contracts.review import review_key
from medledger.core.ledger.envelope import TxLimits
from medledger.entrypoints.fhir import routes as fhir_routes
from medledger.entrypoints.http import (
    audit_routes,
    auth_routes,
    consent_routes,
    errors,
    ledger_routes,
    log_routes,
    officer_api,
    records_routes,
    review_note_routes,
)
from medledger.entrypoints.http.bearer import make_bearer_dependency
from medledger.entrypoints.http.home import render_home
from medledger.entrypoints.http.lane import PrefixLane
from medledger.entrypoints.http.signed import SignedRequests
from medledger.entrypoints.portal import PortalContext, mount_portal, portal_context
from medledger.errors import AccessDeniedError, MedledgerError
from medledger.services.fhir_consent import FhirConsentService
from medledger.services.tokens import TokenService

log = logging.getLogger("medledger.node")

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]


def open_on_loopback(request: Request) -> None:
    """The embedded demo's read policy: anyone on this machine, nobody else (deny by default).

    Later issues replace this hook with token- and consent-based decisions.
    """
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise AccessDeniedError("the log is readable from this machine only")


def checkpointer(node: Node) -> BackgroundTask:
    """Sign a checkpoint every ``checkpoint_interval_s`` while entries arrive."""

    async def run() -> None:
        interval = node.settings.checkpoint_interval_s
        while True:
            try:
                await run_in_threadpool(node.log.checkpoint_if_grown)
            except MedledgerError as e:
                log.error("checkpoint not signed: %s", e)
            await asyncio.sleep(interval)

    return run


def create_app(
    node: Node,
    *,
    authorize: Callable[[Request], None] = open_on_loopback,
    background: Sequence[BackgroundTask] = (),
    base_url: str | None = None,
    fhir_principal: fhir_routes.PrincipalDependency | None = None,
    routers: Sequence[APIRouter] = (),
    wait_final: Callable[[int, float], bool] | None = None,
    portal: PortalContext | None = None,
) -> FastAPI:
    """The node's app. ``base_url`` is the URL clients reach it at (default from node.toml's
    host and port): the token endpoint's ``aud`` and the FHIR base (``{base_url}/fhir``) that
    access tokens are issued for derive from it, never from a request's Host header. The FHIR
    API authenticates with those bearer tokens unless ``fhir_principal`` says otherwise."""
    tasks = [checkpointer(node), *background]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        running = [asyncio.create_task(t()) for t in tasks]
        try:
            yield
        finally:
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    app = FastAPI(
        title="medledger node",
        version=__version__,
        description="A permissioned, FHIR-native ledger for medical records.",
        lifespan=lifespan,
    )
    errors.install(app)
    # First: Starlette tries routes in order, so the FHIR API (its paths all under /fhir,
    # the busiest routes) is matched before the rest of the node's routes, not after them.
    # SMART authorization (issue 6, ADR 0017): the token endpoint, and the FHIR routes'
    # authentication, ``await app.state.bearer(request) -> Principal``, for tokens issued for
    # ``app.state.fhir_base``.
    base = (base_url or f"http://{node.settings.host}:{node.settings.port}").rstrip("/")
    app.state.fhir_base = f"{base}/fhir"
    tokens = TokenService(
        node_key=node.key,
        state_get=node.ledger_store.state_get,
        token_endpoint=f"{base}/auth/token",
        audience=app.state.fhir_base,
        random_bytes=secrets.token_bytes,
        seen=node.seen_requests,
    )
    auth_router = auth_routes.router(tokens)
    app.state.bearer = make_bearer_dependency(node.key.public_key, app.state.fhir_base, time.time)
    consents = FhirConsentService(
        ledger=node.ledger,
        documents=node.records,
        access=node.access,
        audit=node.audit,
        index=node.fhir_index,
        node_did=node.key.did,
        node_name=next(
            (a.name for a in node.genesis.authorities if a.did == node.key.did), node.key.did
        ),
    )
    fhir_router = fhir_routes.router(
        fhir=node.fhir,
        consents=consents,
        # SMART bearer tokens (ADR 0017); tests of the FHIR layer alone may pass another
        principal=fhir_principal or app.state.bearer,
    )
    # The FHIR requests' fast lane (``lane.py``: the same route, a fraction of the matching),
    # right before the routers it serves, in their order: the token endpoint's router first
    # (its GET /fhir/.well-known/smart-configuration wins over the FHIR read route), then the
    # FHIR API. Both stay included, for OpenAPI and what the lane leaves to them.
    app.router.routes.append(PrefixLane("/fhir", [*auth_router.routes, *fhir_router.routes]))
    app.include_router(auth_router)
    app.include_router(fhir_router)

    app.include_router(log_routes.router(node.log, authorize))
    app.include_router(
        ledger_routes.router(
            ledger=node.ledger,
            log=node.log,
            state_get=node.ledger_store.state_get,
            state_scan=lambda prefix, after, limit: node.ledger_store.state_scan(
                prefix, after=after, limit=limit
            ),
            authorize=authorize,
            wait_final=wait_final,
        )
    )
    for extra in routers:  # e.g. the consortium's peer API
        app.include_router(extra)

    app.include_router(
        consent_routes.router(
            state_get=node.ledger_store.state_get,
            state_scan=lambda prefix, after, limit: node.ledger_store.state_scan(
                prefix, after=after, limit=limit
            ),
            authorize=authorize,
        )
    )
    signed = SignedRequests(
        network=node.genesis.network,
        types=records_routes.REQUEST_TYPES
        | audit_routes.REQUEST_TYPES
        | officer_api.REQUEST_TYPES
        | review_note_routes.REQUEST_TYPES,
        limits=TxLimits(),
        seen=node.seen_requests,
    )
    app.include_router(
        records_routes.router(
            records=node.records, blobs=node.blobs, signed_requests=signed, authorize=authorize
        )
    )
    app.include_router(
        audit_routes.router(
            access=node.access,
            audit=node.audit,
            node_did=node.key.did,
            node_name=next(
                (a.name for a in node.genesis.authorities if a.did == node.key.did), node.key.did
            ),
            is_reviewed=lambda event_id: (
                node.ledger_store.state_get(review_key(event_id)) is not None
            ),
            reviews=node.review_notes,
            signed_requests=signed,
            authorize=authorize,
        )
    )

    app.include_router(
        review_note_routes.router(
            reviews=node.review_notes, signed_requests=signed, authorize=authorize
        )
    )
    app.include_router(
        officer_api.router(
            access=node.access,
            audit=node.audit,
            checkpoints=node.store,
            node_did=node.key.did,
            signed_requests=signed,
            authorize=authorize,
        )
    )

    # The patient portal and privacy officer's console (issue 8, ADR 0020): a signed-API client.
    mount_portal(app, portal or portal_context(node, base_url=base))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        authorize(request)
        return HTMLResponse(await run_in_threadpool(render_home, node))

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, object]:
        latest = node.ledger_store.latest()
        return {
            "status": "ok",
            "network": node.genesis.network,
            "height": None if latest is None else latest.height,
            "log_size": node.log.size(),
        }

    return app
