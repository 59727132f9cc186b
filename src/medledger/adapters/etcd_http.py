"""An etcd v3 client over etcd's gRPC gateway (JSON over HTTP on ``/v3/*``), with ``httpx``.

The gateway is part of every etcd 3.4 server (``--listen-client-urls`` serves it); see
docs/adr/0016. What this module handles: key/value range (paginated by ``limit``), put,
delete, transactions with compares, leases (grant, keep-alive, revoke), watches (a streamed
response, ``fragment`` set so a large catch-up never exceeds a message limit), compaction,
defragmentation and member status. Keys and values are bytes, base64 on the wire.

Errors: every transport failure or non-2xx answer is a ``NetworkError`` and the client moves
to the next endpoint. An error does NOT mean a write failed: callers that write must read
back (``medledger.adapters.etcd_ordering`` does). Not handled here: TLS client certificates
and etcd authentication tokens (production, see docs/network.md).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from medledger.errors import NetworkError

Json = dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: tuple[KeyValue, ...]
    more: bool
    revision: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: tuple[Json, ...]


def _kv(obj: Json) -> KeyValue:
    return KeyValue(
        key=unb64(obj["key"]),
        value=unb64(obj.get("value", "")),
        create_revision=int(obj.get("create_revision", 0)),
        mod_revision=int(obj.get("mod_revision", 0)),
        version=int(obj.get("version", 0)),
        lease=int(obj.get("lease", 0)),
    )


# --- transaction building blocks (etcdserverpb.Compare / RequestOp as gateway JSON) ---------
def cmp_value(key: bytes, value: bytes) -> Json:
    return {"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}


def cmp_created(key: bytes, create_revision: int) -> Json:
    """``create_revision == r``; ``r = 0`` means the key does not exist."""
    return {
        "key": b64(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(create_revision),
    }


def op_put(key: bytes, value: bytes, lease: int = 0) -> Json:
    put: Json = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def op_get(key: bytes) -> Json:
    return {"request_range": {"key": b64(key)}}


class EtcdClient:
    """A thread-safe client over several endpoints; fails over on transport errors."""

    def __init__(self, endpoints: Sequence[str], *, timeout_s: float = 5.0) -> None:
        if not endpoints:
            raise NetworkError("no etcd endpoints configured")
        self.endpoints = list(endpoints)
        self._at = 0
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, path: str, body: Json, *, endpoint: str | None = None) -> Json:
        with self._lock:
            at = self._at
        url = endpoint or self.endpoints[at % len(self.endpoints)]
        try:
            r = self._http.post(f"{url}{path}", json=body)
        except httpx.HTTPError as e:
            self._fail_over(at)
            raise NetworkError(f"etcd {url}: {type(e).__name__}") from e
        if r.status_code != 200:
            self._fail_over(at)
            raise NetworkError(f"etcd {url}{path}: HTTP {r.status_code} {r.text[:200]}")
        try:
            out: Json = r.json()
        except ValueError as e:
            raise NetworkError(f"etcd {url}{path}: not JSON") from e
        return out

    def _fail_over(self, at: int) -> None:
        with self._lock:
            if self._at == at:
                self._at = at + 1

    # --- kv --------------------------------------------------------------------------------
    def range(
        self, key: bytes, range_end: bytes | None = None, *, limit: int = 0, revision: int = 0
    ) -> RangeResult:
        body: Json = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if limit:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        out = self._call("/v3/kv/range", body)
        return RangeResult(
            tuple(_kv(kv) for kv in out.get("kvs", [])),
            bool(out.get("more", False)),
            int(out["header"]["revision"]),
        )

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.range(key).kvs
        return kvs[0] if kvs else None

    def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: Json = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._call("/v3/kv/put", body)["header"]["revision"])

    def delete_range(self, key: bytes, range_end: bytes | None = None) -> int:
        body: Json = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        return int(self._call("/v3/kv/deleterange", body).get("deleted", 0))

    def txn(
        self, compare: Sequence[Json], success: Sequence[Json], failure: Sequence[Json] = ()
    ) -> TxnResult:
        out = self._call(
            "/v3/kv/txn",
            {"compare": list(compare), "success": list(success), "failure": list(failure)},
        )
        return TxnResult(
            bool(out.get("succeeded", False)),
            int(out["header"]["revision"]),
            tuple(out.get("responses", [])),
        )

    def compact(self, revision: int) -> None:
        self._call("/v3/kv/compaction", {"revision": str(revision), "physical": False})

    # --- leases ----------------------------------------------------------------------------
    def lease_grant(self, ttl_s: int) -> int:
        return int(self._call("/v3/lease/grant", {"TTL": str(ttl_s)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Refresh a lease; return its remaining TTL (0 or less: it has expired)."""
        out = self._call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(out.get("result", {}).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self._call("/v3/lease/revoke", {"ID": str(lease)})

    # --- maintenance -----------------------------------------------------------------------
    def status(self, endpoint: str) -> Json:
        return self._call("/v3/maintenance/status", {}, endpoint=endpoint)

    def defragment(self, endpoint: str) -> None:
        self._call("/v3/maintenance/defragment", {}, endpoint=endpoint)

    # --- watch -----------------------------------------------------------------------------
    def watch(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        on_events: Callable[[list[KeyValue], int], None],
        stop: threading.Event,
    ) -> None:
        """Stream events from ``start_revision`` until ``stop`` or an error (``NetworkError``).

        ``fragment`` is set: etcd splits a large catch-up into several messages, each under
        the gateway's message limits, and marks all but the last ``fragment: true``; this
        joins them before calling ``on_events(kvs, revision)``.
        """
        with self._lock:
            at = self._at
        url = self.endpoints[at % len(self.endpoints)]
        request = {
            "create_request": {
                "key": b64(key),
                "range_end": b64(range_end),
                "start_revision": str(start_revision),
                "fragment": True,
                "progress_notify": True,
            }
        }
        pending: list[KeyValue] = []
        try:
            with self._http.stream(
                "POST", f"{url}/v3/watch", json=request, timeout=httpx.Timeout(5.0, read=None)
            ) as r:
                for line in r.iter_lines():
                    if stop.is_set():
                        return
                    if not line.strip():
                        continue
                    msg = json.loads(line)
                    if "error" in msg:
                        raise NetworkError(f"etcd watch: {msg['error'].get('message')}")
                    result = msg.get("result", {})
                    if result.get("canceled"):
                        raise NetworkError(f"etcd watch canceled: {result.get('cancel_reason')}")
                    pending += [_kv(e["kv"]) for e in result.get("events", []) if "kv" in e]
                    if result.get("fragment"):
                        continue
                    revision = int(result.get("header", {}).get("revision", 0))
                    on_events(pending, revision)
                    pending = []
        except (httpx.HTTPError, ValueError) as e:
            self._fail_over(at)
            raise NetworkError(f"etcd watch on {url}: {type(e).__name__}") from e
