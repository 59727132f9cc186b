"""Off-chain records over HTTP: the custodian's write, and signed requests to read, release a
key or erase.

A request to read, release or erase is a signed envelope (the transaction wire format, with
type ``request.read`` / ``request.key_release`` / ``request.erase``) from the requester's
did:key: the signature proves who asks, the network and a short expiry bind it, and a nonce
seen before is refused (no replay). Requests are never put on the ledger; the decision each
one gets is recorded as an access event.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from medledger.core.access.custodial import AccessRequest, Action
from medledger.core.cid import is_cid
from medledger.core.crypto.record_cipher import MAX_RECORD_PLAINTEXT
from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import canonical_document
from medledger.core.ledger.envelope import (
    TxLimits,
    check_intake,
    decode_transaction,
    replayed_nonce_error,
)
from medledger.core.ledger.tx import SignedTransaction
from medledger.entrypoints.http.ledger_routes import read_body
from medledger.errors import InvalidInputError, OverloadedError
from medledger.ports import BlobStore
from medledger.services.records import RecordService

REQUEST_TYPES = frozenset({"request.read", "request.key_release", "request.erase"})
REQUEST_TTL_S = 300
MAX_REPLAY_ENTRIES = 100_000
_RECORD_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_PURPOSE = re.compile(r"[A-Z][A-Z0-9\-]{1,31}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_ACTIONS: dict[str, Action] = {
    "request.read": "read",
    "request.key_release": "key-release",
    "request.erase": "erase",
}


class ReplayGuard:
    """Nonces of signed requests seen within their validity window (bounded memory)."""

    def __init__(self, max_entries: int = MAX_REPLAY_ENTRIES) -> None:
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def check_and_remember(self, stx: SignedTransaction, now_s: int) -> None:
        key = f"{stx.tx.sender}/{stx.tx.nonce}"
        with self._lock:
            if len(self._seen) >= self._max:
                self._seen = {k: e for k, e in self._seen.items() if e > now_s}
                if len(self._seen) >= self._max:
                    raise OverloadedError("too many requests in flight: try again shortly")
            expires = self._seen.get(key)
            if expires is not None and expires > now_s:
                raise replayed_nonce_error()
            self._seen[key] = stx.tx.expires


def _field(payload: Any, name: str, pattern: re.Pattern[str]) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInputError(f"{name} is missing or malformed", parameter=name)
    return value


def _patient(payload: Any) -> str:
    value = payload.get("patient")
    if not isinstance(value, str) or not is_did_key(value):
        raise InvalidInputError("patient must be an Ed25519 did:key", parameter="patient")
    return value


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
    network: str,
    authorize: Callable[[Request], None],
    limits: TxLimits | None = None,
) -> APIRouter:
    limits = limits or TxLimits()
    guard = ReplayGuard()
    r = APIRouter(tags=["records"], dependencies=[Depends(authorize)])

    async def signed(
        request: Request, kind: Literal["request.read", "request.key_release", "request.erase"]
    ) -> tuple[AccessRequest, Any]:
        raw = await read_body(request, limits.max_tx_bytes)
        stx = decode_transaction(raw, limits)
        now = int(time.time())
        check_intake(stx, network=network, now_s=now, known_types=REQUEST_TYPES, limits=limits)
        if stx.tx.type != kind:
            raise InvalidInputError(f"this endpoint takes a {kind} request", parameter="type")
        if stx.tx.expires > now + REQUEST_TTL_S:
            raise InvalidInputError(
                f"a request must expire within {REQUEST_TTL_S} s", parameter="expires"
            )
        guard.check_and_remember(stx, now)
        payload = stx.tx.payload
        access = AccessRequest(
            requester=stx.tx.sender,
            patient=_patient(payload),
            record_id=_field(payload, "record_id", _RECORD_ID),
            action=_ACTIONS[kind],
            purpose=_field(payload, "purpose", _PURPOSE),
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
                patient=_patient(body),
                record_id=_field(body, "record_id", _RECORD_ID),
                resource_type=_field(body, "resource_type", _RESOURCE_TYPE),
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
        session_key = bytes.fromhex(_field(payload, "session_key", _HEX32))
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
