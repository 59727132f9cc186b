"""The node's ASGI app: wires routes, the error table, the authorization hook and the
background work (signing checkpoints on schedule) to one ``Node``."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from medledger import __version__
from medledger.bootstrap import Node
from medledger.entrypoints.http import errors, ledger_routes, log_routes, records_routes
from medledger.entrypoints.http.home import render_home
from medledger.errors import AccessDeniedError, MedledgerError

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
    routers: Sequence[APIRouter] = (),
    wait_final: Callable[[int, float], bool] | None = None,
) -> FastAPI:
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
        records_routes.router(
            records=node.records,
            blobs=node.blobs,
            network=node.genesis.network,
            authorize=authorize,
        )
    )

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
