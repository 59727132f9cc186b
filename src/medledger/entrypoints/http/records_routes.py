"""Off-chain records over HTTP: the custodian's write, and signed requests to read, release a
key or erase.

A request to read, release or erase is a signed request (``medledger.entrypoints.http.signed``:
type ``request.read`` / ``request.key_release`` / ``request.erase``) from the requester's
did:key. Requests are never put on the ledger; the decision each one gets is recorded as an
access event. A ``justification`` (purpose BTG or ETREAT) asks for break-glass.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from medledger.core.access.gate import AccessRequest, Action
from medledger.core.cid import is_cid
from medledger.core.crypto.record_cipher import MAX_RECORD_PLAINTEXT
from medledger.core.ledger.canonical import canonical_document
from medledger.entrypoints.http.ledger_routes import read_body
from medledger.entrypoints.http.signed import (
    PURPOSE,
    SignedRequests,
    did_field,
    justification,
    text_field,
)
from medledger.errors import InvalidInputError
from medledger.ports import BlobStore
from medledger.services.records import RecordService

_RECORD_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_ACTIONS: dict[str, Action] = {
    "request.read": "read",
    "request.key_release": "key-release",
    "request.erase": "erase",
}
REQUEST_TYPES = frozenset(_ACTIONS)


def _version(payload: Any) -> int | None:
    value = payload.get("version")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError("version must be a positive integer", parameter="version")
    return value


def router(
    *,
    records: RecordService,
    blobs: BlobStore,
    signed_requests: SignedRequests,
    authorize: Callable[[Request], None],
) -> APIRouter:
    r = APIRouter(tags=["records"], dependencies=[Depends(authorize)])

    async def signed(request: Request, kind: str) -> tuple[AccessRequest, Any]:
        verified = await signed_requests.verify(request, kind)
        payload = verified.payload
        access = AccessRequest(
            requester=verified.sender,
            patient=did_field(payload, "patient"),
            record_id=text_field(payload, "record_id", _RECORD_ID),
            action=_ACTIONS[kind],
            purpose=text_field(payload, "purpose", PURPOSE),
            justification=justification(payload),
        )
        return access, payload

    @r.post("/records", summary="Store and anchor a record version (the custodian's write)")
    async def put(request: Request) -> dict[str, Any]:
        raw = await read_body(request, MAX_RECORD_PLAINTEXT + 4096)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:  # nesting beyond any FHIR resource's, too
            raise InvalidInputError("the body is not JSON", parameter="body") from e
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise InvalidInputError("content must be a JSON object", parameter="content")
        result = await run_in_threadpool(
            lambda: records.put(
                patient=did_field(body, "patient"),
                record_id=text_field(body, "record_id", _RECORD_ID),
                resource_type=text_field(body, "resource_type", _RESOURCE_TYPE),
                content=canonical_document(body["content"]),
                now_s=int(time.time()),
            )
        )
        return {
            "patient": result.patient,
            "record_id": result.record_id,
            "version": result.version,
            "cid": result.cid,
            "tx_id": result.tx_id,
            "height": result.height,
            "log_index": result.log_index,
        }

    @r.post("/records/read", summary="Read a record version (signed request.read)")
    async def read(request: Request) -> dict[str, Any]:
        access, payload = await signed(request, "request.read")
        result = await run_in_threadpool(
            records.read, access, _version(payload), int(time.time() * 1000)
        )
        return {
            "version": result.version,
            "resource_type": result.resource_type,
            "cid": result.cid,
            "content": json.loads(result.content),
        }

    @r.post("/records/key-release", summary="Release a data key to a session key (signed)")
    async def key_release(request: Request) -> dict[str, Any]:
        access, payload = await signed(request, "request.key_release")
        session_key = bytes.fromhex(text_field(payload, "session_key", _HEX32))
        release = await run_in_threadpool(
            records.release_key, access, _version(payload), session_key, int(time.time() * 1000)
        )
        return {
            "version": release.version,
            "resource_type": release.resource_type,
            "cid": release.cid,
            "salt": release.salt.hex(),
            "wrap": base64.b64encode(release.wrap).decode(),
            "grant": release.grant,
        }

    @r.post("/records/erase", summary="Erase a record by crypto-shredding (signed)")
    async def erase(request: Request) -> dict[str, Any]:
        access, _ = await signed(request, "request.erase")
        return await run_in_threadpool(records.erase, access, int(time.time() * 1000))

    @r.get("/blobs/{cid}", response_class=Response, summary="A ciphertext, verified by its CID")
    async def blob(cid: str) -> Response:
        if not is_cid(cid):
            raise InvalidInputError("not a CIDv1 raw sha2-256 base32 CID", parameter="cid")
        data = await run_in_threadpool(blobs.get, cid)
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": "immutable"}
        )

    return r
