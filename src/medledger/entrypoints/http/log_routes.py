"""Read endpoints of the transparency log, including C2SP tlog-tiles.

Every route depends on one authorization hook (``authorize_log_read``), so who may read the log
in a network is decided in one place. Parameters are parsed by us, not coerced, so a malformed
value gets a 400 naming it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from medledger.core.note import format_verifier_key
from medledger.core.tiles import MAX_TILE_PATH_LENGTH, parse_tile_path
from medledger.errors import InvalidInputError
from medledger.services.log import TransparencyLog

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
TEXT = "text/plain; charset=utf-8"
OCTETS = "application/octet-stream"


def parse_index(value: str, parameter: str) -> int:
    """A canonical non-negative decimal below 2**63; anything else names ``parameter``."""
    if not _DECIMAL.fullmatch(value):
        raise InvalidInputError(
            f"{parameter} must be a non-negative decimal integer without leading zeros",
            parameter=parameter,
        )
    n = int(value)
    if n >= 1 << 63:
        raise InvalidInputError(f"{parameter} is too large", parameter=parameter)
    return n


def router(log: TransparencyLog, authorize: Callable[[Request], None]) -> APIRouter:
    """The /log routes bound to one node's log."""
    r = APIRouter(prefix="/log", tags=["transparency log"], dependencies=[Depends(authorize)])

    @r.get("/checkpoint", response_class=Response, summary="Latest signed checkpoint")
    async def checkpoint() -> Response:
        signed = await run_in_threadpool(log.latest_checkpoint)
        return Response(signed.note, media_type=TEXT, headers={"Cache-Control": "no-cache"})

    @r.get("/verifier-key", response_class=Response, summary="Signed-note verifier key")
    async def verifier_key() -> Response:
        return Response(format_verifier_key(log.verifier) + "\n", media_type=TEXT)

    @r.get("/entries/{index}", response_class=Response, summary="Exact bytes of one entry")
    async def entry(index: str) -> Response:
        data = await run_in_threadpool(log.entry, parse_index(index, "index"))
        return Response(data, media_type=OCTETS, headers={"Cache-Control": "immutable"})

    @r.get("/proof/inclusion", summary="RFC 9162 inclusion proof")
    async def inclusion(
        index: Annotated[str, Query(max_length=20)], size: Annotated[str, Query(max_length=20)]
    ) -> dict[str, object]:
        i, n = parse_index(index, "index"), parse_index(size, "size")
        proof = await run_in_threadpool(log.inclusion_proof, i, n)
        return {"index": i, "size": n, "hashes": [base64.b64encode(h).decode() for h in proof]}

    @r.get("/proof/consistency", summary="RFC 9162 consistency proof")
    async def consistency(
        from_: Annotated[str, Query(alias="from", max_length=20)],
        to: Annotated[str, Query(max_length=20)],
    ) -> dict[str, object]:
        m, n = parse_index(from_, "from"), parse_index(to, "to")
        proof = await run_in_threadpool(log.consistency_proof, m, n)
        return {"from": m, "to": n, "hashes": [base64.b64encode(h).decode() for h in proof]}

    @r.get("/receipt/{index}", response_class=Response, summary="C2SP tlog-proof@v1 receipt")
    async def receipt(index: str) -> Response:
        text = await run_in_threadpool(log.receipt, parse_index(index, "index"))
        return Response(text, media_type=TEXT)

    @r.get("/tile/{path:path}", response_class=Response, summary="C2SP tlog-tiles tile")
    async def tile(path: str) -> Response:
        if len(path) > MAX_TILE_PATH_LENGTH:
            raise InvalidInputError("tile path is too long", parameter="path")
        tile_id = parse_tile_path("tile/" + path)
        data = await run_in_threadpool(log.tile, tile_id)
        cache = "no-cache" if tile_id.is_partial else "public, max-age=31536000, immutable"
        return Response(data, media_type=OCTETS, headers={"Cache-Control": cache})

    return r
