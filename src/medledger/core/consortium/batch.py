"""Ordered batches: what the elected submitter writes at one position of the etcd log.

A batch is ``{"v":1,"network","batch_id","submitter","time_ms","txs":[base64url wire...]}``
signed by the submitter's did:key as ``DOMAIN_BATCH || JCS(body)``; the wire form is
``JCS(body + {"sig": base64url(signature)})`` and decoding accepts only that exact byte string
(one wire form per batch, as for transactions, ADR 0008).

Every node builds block ``n`` from the batch at position ``n`` identically (ADR 0016):
proposer = the submitter, block time = ``max(prev time + 1, time_ms)``. What this module
handles: encoding and signing (``seal_batch``), strict decoding with size limits
(``decode_batch``), and the validity rule every node applies before using a batch
(``verify_batch``: known network, submitter an authority, signature, batch id not seen).
Not handled here: where batches are stored (etcd), the transactions' own checks (the ledger).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from medledger.core.identity.did_key import is_did_key
from medledger.core.identity.keys import verify_signature
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.errors import InvalidInputError, SignatureError, TooLargeError, VerificationError

DOMAIN_BATCH: Final = b"medledger/batch/v1\x00"
BATCH_VERSION: Final = 1
#: gRPC's 4 MiB receive limit and etcd's 1.5 MiB request limit: a batch stays under 1 MiB.
MAX_BATCH_BYTES: Final = 1024 * 1024
MAX_BATCH_TXS: Final = 100_000
_BATCH_ID: Final = re.compile(r"[0-9a-f]{32}")
_FIELDS: Final = frozenset({"v", "network", "batch_id", "submitter", "time_ms", "txs", "sig"})


class BatchRejectedError(VerificationError):
    """An ordered batch that every node leaves out; ``reason`` is a stable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Batch:
    network: str
    batch_id: str
    submitter: str
    time_ms: int
    txs: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not _BATCH_ID.fullmatch(self.batch_id):
            raise InvalidInputError(
                "batch_id must be 32 lowercase hex digits", parameter="batch_id"
            )
        if not is_did_key(self.submitter):
            raise InvalidInputError("submitter must be a did:key", parameter="submitter")
        if isinstance(self.time_ms, bool) or not 0 <= self.time_ms <= MAX_SAFE_INTEGER:
            raise InvalidInputError("time_ms out of range", parameter="time_ms")
        object.__setattr__(self, "txs", tuple(self.txs))
        if len(self.txs) > MAX_BATCH_TXS:
            raise TooLargeError("too many transactions in a batch", parameter="txs")

    def body(self) -> dict[str, Any]:
        return {
            "v": BATCH_VERSION,
            "network": self.network,
            "batch_id": self.batch_id,
            "submitter": self.submitter,
            "time_ms": self.time_ms,
            "txs": [_b64(t) for t in self.txs],
        }

    def signing_bytes(self) -> bytes:
        return DOMAIN_BATCH + canonical(self.body())


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch with its submitter's signature and its exact wire bytes."""

    batch: Batch
    signature: bytes
    wire: bytes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_\-]*", text):
        raise InvalidInputError(f"{what} is not base64url", parameter=what)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise InvalidInputError(f"{what} is not base64url", parameter=what) from e
    if _b64(data) != text:
        raise InvalidInputError(f"{what} is not canonical base64url", parameter=what)
    return data


def seal_batch(batch: Batch, sign: Callable[[bytes], bytes]) -> SealedBatch:
    """Sign a batch (the submitter's key) and give its one wire form."""
    signature = sign(batch.signing_bytes())
    wire = canonical({**batch.body(), "sig": _b64(signature)})
    if len(wire) > MAX_BATCH_BYTES:
        raise TooLargeError(f"a batch is at most {MAX_BATCH_BYTES} bytes", parameter="batch")
    return SealedBatch(batch, signature, wire)


def batch_size(txs: Sequence[bytes]) -> int:
    """An upper bound of the wire size of a batch holding ``txs`` (for cutting batches)."""
    return 512 + sum(4 * (len(t) + 2) // 3 + 3 for t in txs)


def decode_batch(raw: bytes) -> SealedBatch:
    """Parse a batch's wire bytes strictly; ``BatchRejectedError`` (reason ``malformed``) if not."""
    try:
        return _decode(raw)
    except InvalidInputError as e:
        raise BatchRejectedError(f"malformed batch: {e}", reason="malformed") from e


def _decode(raw: bytes) -> SealedBatch:
    if len(raw) > MAX_BATCH_BYTES:
        raise TooLargeError("batch too large", parameter="batch")
    try:
        obj = json.loads(raw.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInputError("batch is not JSON", parameter="batch") from e
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise InvalidInputError("batch has missing or unknown fields", parameter="batch")
    if obj["v"] != BATCH_VERSION:
        raise InvalidInputError("unsupported batch version", parameter="v")
    txs = obj["txs"]
    if not isinstance(txs, list) or not isinstance(obj["network"], str):
        raise InvalidInputError("txs must be a list", parameter="txs")
    if not isinstance(obj["time_ms"], int) or not isinstance(obj["submitter"], str):
        raise InvalidInputError("time_ms and submitter", parameter="batch")
    if not isinstance(obj["batch_id"], str):
        raise InvalidInputError("batch_id must be a string", parameter="batch_id")
    batch = Batch(
        network=obj["network"],
        batch_id=obj["batch_id"],
        submitter=obj["submitter"],
        time_ms=obj["time_ms"],
        txs=tuple(_unb64(t, "txs") for t in txs),
    )
    signature = _unb64(obj["sig"], "sig")
    # One wire form: the bytes received must be the canonical encoding (no malleability).
    if canonical({**batch.body(), "sig": obj["sig"]}) != raw:
        raise InvalidInputError("batch is not in canonical form", parameter="batch")
    return SealedBatch(batch, signature, raw)


def _no_float(token: str) -> Any:
    raise InvalidInputError(f"{token[:20]!r} is not an integer", parameter="batch")


def verify_batch(
    sealed: SealedBatch, *, network: str, authorities: Collection[str], seen: Callable[[str], bool]
) -> None:
    """ADR 0016 batch rule, in order; ``BatchRejectedError`` with a stable ``reason``:

    1. ``wrong_network``: the batch names another network;
    2. ``not_authority``: the submitter is not a current authority;
    3. ``bad_signature``: the submitter's Ed25519 signature does not verify on the batch;
    4. ``duplicate_batch``: a batch with this id was already applied (a retried append).
    """
    batch = sealed.batch
    if batch.network != network:
        raise BatchRejectedError("the batch is for another network", reason="wrong_network")
    if batch.submitter not in authorities:
        raise BatchRejectedError(
            f"the batch submitter {batch.submitter[:24]}... is not an authority",
            reason="not_authority",
        )
    try:
        verify_signature(batch.submitter, batch.signing_bytes(), sealed.signature)
    except SignatureError as e:
        raise BatchRejectedError(
            "the batch signature does not verify", reason="bad_signature"
        ) from e
    if seen(batch.batch_id):
        raise BatchRejectedError(
            f"batch {batch.batch_id} was already applied", reason="duplicate_batch"
        )
