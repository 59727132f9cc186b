"""Peer API of a consortium node: forwarded envelopes, status, final certificates, and
blocks with their transactions for a peer that catches up (ADR 0016)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medledger.core.ledger.envelope import IntakeError
from medledger.entrypoints.http.ledger_routes import read_body
from medledger.entrypoints.http.log_routes import parse_index
from medledger.errors import InvalidInputError, NotFoundError
from medledger.services.consortium import ConsortiumNode
from medledger.services.ledger import LedgerNode
from medledger.services.peer_records import PeerRecords

MAX_FORWARD_BYTES = 2 * 1024 * 1024


def router(
    *,
    consortium: ConsortiumNode,
    ledger: LedgerNode,
    peer_records: PeerRecords | None = None,
    authorize: Callable[[Request], None] | None = None,
) -> APIRouter:
    r = APIRouter(prefix="/consortium", tags=["consortium"])
    if peer_records is not None and authorize is not None:
        _records_routes(r, peer_records, authorize)

    @r.post("/forward", summary="Envelopes forwarded to the elected submitter")
    async def forward(request: Request) -> dict[str, Any]:
        raw = await read_body(request, MAX_FORWARD_BYTES)
        try:
            body = json.loads(raw)
            txs = [base64.b64decode(t, validate=True) for t in body["txs"]]
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise InvalidInputError('expected {"txs": [base64...]}', parameter="txs") from e

        def take() -> dict[str, int]:
            now = int(time.time())
            accepted = refused = 0
            for wire in txs:
                try:
                    ledger.submit(wire, now)
                    accepted += 1
                except IntakeError:
                    refused += 1  # already pending or committed here, or no longer valid
            return {"accepted": accepted, "refused": refused}

        return await run_in_threadpool(take)

    @r.get("/status", summary="Height, state root, finality, submitter and alarms")
    async def status() -> dict[str, Any]:
        return await run_in_threadpool(consortium.status)

    @r.get("/certificates/{height}", summary="A final block's C2SP checkpoint with cosignatures")
    async def cert(height: str) -> Response:
        found = await run_in_threadpool(consortium.store.certificate, parse_index(height, "height"))
        if found is None:
            raise NotFoundError(f"block {height} is not final here")
        return Response(found[2], media_type="text/plain; charset=utf-8")

    @r.get("/blocks/{height}", summary="A block, its transactions and its final certificate")
    async def block(height: str) -> dict[str, Any]:
        h = parse_index(height, "height")
        found = await run_in_threadpool(ledger.block, h)
        txs = await run_in_threadpool(ledger.block_txs, h)
        cert = await run_in_threadpool(consortium.store.certificate, h)
        return {
            "height": h,
            "header": found.header.decode(),
            "txs": [base64.b64encode(t.wire).decode("ascii") for t in txs],
            "certificate": None if cert is None else cert[2].decode(),
            "position": None if cert is None else cert[1],
        }

    return r


def _records_routes(
    r: APIRouter, peer_records: PeerRecords, authorize: Callable[[Request], None]
) -> None:
    @r.get("/encryption-key", summary="This node's X25519 key, for key releases to it")
    async def encryption_key() -> dict[str, str]:
        return {"enc_key": peer_records.encryption_key.hex()}

    @r.post(
        "/records/fetch",
        summary="Read a record held by another organization (signed request.key_release to "
        "this node's key)",
        dependencies=[Depends(authorize)],
    )
    async def fetch(request: Request) -> dict[str, Any]:
        raw = await read_body(request, MAX_FORWARD_BYTES)
        found = await run_in_threadpool(peer_records.read, raw)
        return {
            "custodian": found.custodian,
            "version": found.version,
            "resource_type": found.resource_type,
            "cid": found.cid,
            "content": json.loads(found.content),
        }
