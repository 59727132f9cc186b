"""The ledger API: submit signed transactions, read transactions, blocks and contract state.

Transactions are self-authenticating (signed by their sender's did:key), so submission needs
no token; reads go through the same authorization hook as the log.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.envelope import OversizeError, TxLimits
from medledger.core.state.smt import StateProof
from medledger.entrypoints.http.log_routes import parse_index
from medledger.errors import InvalidInputError, NotFoundError
from medledger.ports import BlockRecord, TxRecord
from medledger.services.ledger import LedgerNode, TxStatus
from medledger.services.log import TransparencyLog

_TX_ID = re.compile(r"[0-9a-f]{64}")
_RECORD_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_\-]{8,64}")
_EVENT_ID = re.compile(r"[a-z2-7]{26}")
MAX_WAIT_S = 30.0
#: State proofs are served for public keys only (ADR 0024): a record's head, which the portal
#: proves is the latest version. Other prefixes (nonces, consents, escrows ...) are refused.
STATE_PROOF_PREFIXES = ("record/",)
MAX_STATE_KEY_CHARS = 512
_STATE_KEY = re.compile(r"[\x21-\x7e]+")


def _tx_id(value: str) -> bytes:
    if not _TX_ID.fullmatch(value):
        raise InvalidInputError("tx id must be 64 lowercase hex digits", parameter="tx_id")
    return bytes.fromhex(value)


def _did(value: str, parameter: str) -> str:
    if not is_did_key(value):
        raise InvalidInputError(f"{parameter} must be an Ed25519 did:key", parameter=parameter)
    return value


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise OversizeError(f"the body exceeds {limit} bytes", parameter="transaction")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OversizeError(f"the body exceeds {limit} bytes", parameter="transaction")
    return bytes(body)


def status_json(status: TxStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"tx_id": status.tx_id.hex(), "status": status.status}
    if status.status == "committed":
        out.update(
            height=status.height,
            index=status.index,
            ok=status.ok,
            reason=status.reason,
            message=status.message,
            log_index=status.log_index,
        )
    return out


def block_json(block: BlockRecord, txs: list[TxRecord]) -> dict[str, Any]:
    return {
        "height": block.height,
        "hash": block.hash.hex(),
        "header": json.loads(block.header),
        "signature": block.signature.hex(),
        "transactions": [
            {"tx_id": t.tx_id.hex(), "ok": t.ok, "reason": t.reason, "log_index": t.log_index}
            for t in txs
        ],
    }


def _state_value(raw: bytes | None, what: str) -> dict[str, Any]:
    if raw is None:
        raise NotFoundError(f"no such {what}")
    value = json.loads(raw)
    return value if isinstance(value, dict) else {"value": value}


def _record_heads(
    state_scan: Callable[[str, str, int], list[tuple[str, bytes]]],
    prefix: str,
    after: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` record heads under ``prefix`` after the record id ``after``.

    A record's version keys sort right after its head, so the scan goes on past them until
    it has ``limit`` heads or reaches the end: a fixed window would end the listing early at a
    record with a long history.
    """
    heads: list[dict[str, Any]] = []
    start, window = (prefix + after if after else ""), limit * 64
    while len(heads) < limit:
        rows = state_scan(prefix, start, window)
        heads += [json.loads(v) for k, v in rows if "/" not in k[len(prefix) :]]
        if len(rows) < window:
            break
        start = rows[-1][0]
    return heads[:limit]


def _record(
    state_get: Callable[[str], bytes | None],
    block_txs: Callable[[int], Sequence[TxRecord]],
    patient: str,
    record_id: str,
) -> dict[str, Any]:
    """One record's head, its versions' states, and where each version's anchor is."""
    key = f"record/{patient}/{record_id}"
    head = _state_value(state_get(key), "record")
    versions = []
    for v in range(1, int(head.get("version", 0)) + 1):
        raw = state_get(f"{key}/{v}")
        if raw is not None:
            versions.append(json.loads(raw))
    anchors = _anchor_positions(block_txs, patient, record_id, versions)
    return {"head": head, "versions": versions, "anchors": anchors}


def _anchor_positions(
    block_txs: Callable[[int], Sequence[TxRecord]],
    patient: str,
    record_id: str,
    versions: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Where each version's committed ``record.anchor`` sits: ``{version, tx_id, log_index}``.

    The version states stay byte for byte what the contract wrote (their hashes chain), so
    these positions go beside them. They are hints, not proofs: a reader fetches the log
    receipt at ``log_index`` and checks the anchoring transaction in it (ADR 0019).
    """
    anchors: list[dict[str, Any]] = []
    txs_at: dict[int, Sequence[TxRecord]] = {}
    for v in versions:
        height, number = v.get("height"), v.get("version")
        if not isinstance(height, int) or not isinstance(number, int):
            continue
        if height not in txs_at:
            txs_at[height] = block_txs(height)
        for t in txs_at[height]:
            if t.ok and _anchors(t.wire, patient, record_id, number):
                anchors.append(
                    {"version": number, "tx_id": t.tx_id.hex(), "log_index": t.log_index}
                )
                break
    return anchors


def _anchors(wire: bytes, patient: str, record_id: str, version: int) -> bool:
    """Whether a committed transaction's wire bytes are the anchor of this record version."""
    tx = json.loads(wire)
    payload = tx.get("payload")
    return (
        tx.get("type") == "record.anchor"
        and isinstance(payload, dict)
        and (payload.get("patient"), payload.get("record_id"), payload.get("version"))
        == (patient, record_id, version)
    )


def _state_key(key: str) -> str:
    """A key the state-proof route serves: printable ASCII, bounded, under a public prefix."""
    if len(key) > MAX_STATE_KEY_CHARS or not _STATE_KEY.fullmatch(key):
        raise InvalidInputError(
            f"key must be 1-{MAX_STATE_KEY_CHARS} printable ASCII characters", parameter="key"
        )
    if not key.startswith(STATE_PROOF_PREFIXES):
        raise InvalidInputError("no state proofs are served for this key", parameter="key")
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def state_proof_json(
    key: str, block: BlockRecord, value: bytes | None, proof: StateProof
) -> dict[str, Any]:
    """``GET /ledger/state-proof``'s answer: the value, its proof, and the block it is against."""
    leaf = proof.leaf
    return {
        "key": key,
        "value": None if value is None else _b64(value),
        "proof": {
            "siblings": [_b64(s) for s in proof.siblings],
            "leaf": None
            if leaf is None
            else {"key_hash": _b64(leaf.key_hash), "value_hash": _b64(leaf.value_hash)},
        },
        "block": {
            "height": block.height,
            "hash": block.hash.hex(),
            "header": json.loads(block.header),
            "signature": block.signature.hex(),
        },
    }


async def _finality(
    wait: str, status: TxStatus, wait_final: Callable[[int, float], bool] | None, timeout: float
) -> dict[str, bool]:
    """``{"final": ...}`` when the caller asked for ``wait=final`` (ADR 0016)."""
    if wait != "final" or status.height is None:
        return {}
    if wait_final is None:
        return {"final": True}
    return {"final": await run_in_threadpool(wait_final, status.height, timeout)}


def router(
    *,
    ledger: LedgerNode,
    log: TransparencyLog,
    state_get: Callable[[str], bytes | None],
    state_scan: Callable[[str, str, int], list[tuple[str, bytes]]],
    authorize: Callable[[Request], None],
    limits: TxLimits | None = None,
    wait_final: Callable[[int, float], bool] | None = None,
) -> APIRouter:
    # wait_final(height, timeout_s): a consortium's finality (ADR 0016); without it, a
    # committed block is final (a solo node is the one authority).
    limits = limits or TxLimits()
    r = APIRouter(prefix="/ledger", tags=["ledger"], dependencies=[Depends(authorize)])

    @r.post("/transactions", summary="Submit a signed transaction", status_code=202)
    async def submit(
        request: Request,
        wait: Annotated[Literal["none", "commit", "final"], Query()] = "none",
        timeout: Annotated[float, Query(gt=0, le=MAX_WAIT_S)] = 10.0,
    ) -> JSONResponse:
        raw = await read_body(request, limits.max_tx_bytes)
        status = await run_in_threadpool(ledger.submit, raw, int(time.time()))
        if wait in ("commit", "final"):
            status = await run_in_threadpool(ledger.wait, status.tx_id, timeout)
        body = {**status_json(status), **await _finality(wait, status, wait_final, timeout)}
        if status.status == "committed" and status.log_index is not None:
            receipt = await run_in_threadpool(log.receipt, status.log_index)
            body["receipt"] = receipt.decode()
            return JSONResponse(body, status_code=200)
        return JSONResponse(body, status_code=202)

    @r.get("/transactions/{tx_id}", summary="A transaction's status and body")
    async def transaction(tx_id: str) -> dict[str, Any]:
        status = await run_in_threadpool(ledger.status, _tx_id(tx_id))
        body = status_json(status)
        if status.height is not None:
            txs = await run_in_threadpool(ledger.block_txs, status.height)
            body["transaction"] = json.loads(txs[status.index or 0].wire)
        return body

    @r.get("/blocks/latest", summary="The latest block")
    async def latest() -> dict[str, Any]:
        block = await run_in_threadpool(ledger.latest_block)
        return block_json(block, list(await run_in_threadpool(ledger.block_txs, block.height)))

    @r.get("/blocks/{height}", summary="A block by height")
    async def block(height: str) -> dict[str, Any]:
        h = parse_index(height, "height")
        found = await run_in_threadpool(ledger.block, h)
        return block_json(found, list(await run_in_threadpool(ledger.block_txs, h)))

    @r.get("/participants/{did}", summary="A registered participant")
    async def participant(did: str) -> dict[str, Any]:
        key = f"participant/{_did(did, 'did')}"
        return _state_value(await run_in_threadpool(state_get, key), "participant")

    @r.get("/participants", summary="Registered participants, paged by DID")
    async def participants(
        after: Annotated[str, Query(max_length=64)] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        start = f"participant/{after}" if after else ""
        rows = await run_in_threadpool(state_scan, "participant/", start, limit)
        items = [json.loads(v) for _, v in rows]
        return {"items": items, "next": items[-1]["did"] if len(items) == limit else None}

    @r.get("/records/{patient}", summary="A patient's anchored records (latest versions)")
    async def records(
        patient: str,
        after: Annotated[str, Query(max_length=64)] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        prefix = f"record/{_did(patient, 'patient')}/"
        heads = await run_in_threadpool(_record_heads, state_scan, prefix, after, limit)
        return {"items": heads, "next": heads[-1]["record_id"] if len(heads) == limit else None}

    @r.get("/records/{patient}/{record_id}", summary="One record: head and versions")
    async def record(patient: str, record_id: str) -> dict[str, Any]:
        if not _RECORD_ID.fullmatch(record_id):
            raise InvalidInputError("record_id is malformed", parameter="record_id")
        patient = _did(patient, "patient")
        return await run_in_threadpool(_record, state_get, ledger.block_txs, patient, record_id)

    @r.get("/escrows/{escrow_id}", summary="An organization's key escrow")
    async def escrow(escrow_id: str) -> dict[str, Any]:
        if not _BATCH_ID.fullmatch(escrow_id):
            raise InvalidInputError("escrow_id is malformed", parameter="escrow_id")
        return _state_value(await run_in_threadpool(state_get, f"escrow/{escrow_id}"), "escrow")

    @r.get("/escrows/{escrow_id}/requests/{request_id}", summary="An escrow release request")
    async def escrow_request(escrow_id: str, request_id: str) -> dict[str, Any]:
        for name, value in (("escrow_id", escrow_id), ("request_id", request_id)):
            if not _BATCH_ID.fullmatch(value):
                raise InvalidInputError(f"{name} is malformed", parameter=name)
        key = f"escrow-request/{escrow_id}/{request_id}"
        return _state_value(await run_in_threadpool(state_get, key), "escrow request")

    @r.get("/access-batches/{batch_id}", summary="An anchored access-event batch")
    async def access_batch(batch_id: str) -> dict[str, Any]:
        if not _BATCH_ID.fullmatch(batch_id):
            raise InvalidInputError("batch_id is malformed", parameter="batch_id")
        return _state_value(await run_in_threadpool(state_get, f"access-batch/{batch_id}"), "batch")

    @r.get("/reviews/{event_id}", summary="A break-glass review (ruling, note commitment)")
    async def access_review(event_id: str) -> dict[str, Any]:
        if not _EVENT_ID.fullmatch(event_id):
            raise InvalidInputError("event_id is malformed", parameter="event_id")
        return _state_value(await run_in_threadpool(state_get, f"review/{event_id}"), "review")

    _state_proof_routes(r, ledger)
    return r


def _state_proof_routes(r: APIRouter, ledger: LedgerNode) -> None:
    """What a browser needs to prove a record's head against a signed header (ADR 0024)."""

    @r.get("/genesis", summary="The genesis document as stored (canonical JSON)")
    async def genesis() -> Response:
        stored = await run_in_threadpool(ledger.genesis_document)
        return Response(stored, media_type="application/json")

    @r.get("/state-proof", summary="A state key's value and proof against the latest block")
    async def state_proof(key: str) -> dict[str, Any]:
        checked = _state_key(key)
        block, value, proof = await run_in_threadpool(ledger.prove_state, checked)
        return state_proof_json(checked, block, value, proof)
