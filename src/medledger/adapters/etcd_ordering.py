"""The ordering port on etcd: a totally ordered log of batches, one submitter at a time.

Keys, under a per-network prefix ``P`` (ADR 0016)::

    P/seq              the last position written, ASCII decimal
    P/log/<pos:020d>   the sealed batch at that position
    P/leader           the elected submitter {"did","url"}, attached to its lease
    P/vote/<h:020d>/<did>   an authority's cosignature vote on block h
    P/applied/<did>    the last position that node applied (for pruning)
    P/floor            positions below this were pruned (a quorum signed them)

What this module handles, following what a trial of etcd 3.4 taught us:
- ``append``: a position-bound compare-and-set transaction (``P/seq`` equals the position we
  read, ``P/leader`` still has our create revision: the fence) that puts ``P/seq`` and
  ``P/log/<n>``; never an etcd lock. After ANY error the outcome is unknown: read position
  n back and look for our batch id; on a lost compare, scan the positions written since.
- ``Election``: one submitter, elected by creating ``P/leader`` under a lease (compare
  create revision 0), kept alive; the others forward to it.
- ``read``: a paginated range read from a position (a catch-up never exceeds the message
  limits), and ``watch_changes``: a watch from the range's revision + 1 that wakes readers.
- ``prune``: delete positions and votes below what a quorum signed, compact, and defragment
  one member at a time.
Not handled here: what a batch means (``medledger.core.consortium``), applying it (service).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from medledger.adapters.etcd_http import (
    EtcdClient,
    KeyValue,
    cmp_created,
    cmp_value,
    op_put,
    prefix_end,
)
from medledger.core.consortium.fence import Fence
from medledger.errors import ConflictError, MedledgerError, NetworkError

log = logging.getLogger("medledger.etcd")
PAGE = 3  # batches per range read: 3 x 1 MiB stays under gRPC's 4 MiB receive limit


class NotLeaderError(ConflictError):
    """This node is not (or no longer) the elected submitter: the fence failed."""


def _pos(n: int) -> bytes:
    return b"%020d" % n


class EtcdLog:
    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/").encode() + b"/"
        self.k_seq = self.prefix + b"seq"
        self.k_log = self.prefix + b"log/"
        self.k_leader = self.prefix + b"leader"
        self.k_vote = self.prefix + b"vote/"
        self.k_applied = self.prefix + b"applied/"
        self.k_floor = self.prefix + b"floor"
        self.stats = {"appends": 0, "cas_lost": 0, "errors": 0, "read_backs_found": 0}

    # --- append ----------------------------------------------------------------------------
    def head(self) -> int:
        kv = self.client.get(self.k_seq)
        return 0 if kv is None else int(kv.value)

    def append(self, batch_id: str, wire: bytes, fence: Fence, *, deadline_s: float = 30.0) -> int:
        """Write ``wire`` at the next position exactly once; return that position."""
        marker = batch_id.encode()
        end = time.monotonic() + deadline_s
        tried: list[int] = []
        while True:
            if time.monotonic() > end:
                raise NetworkError("etcd: could not append the batch before the deadline")
            try:
                n = self.head()
                # A previous attempt may have landed after all (an error is not a failure).
                found = self._find(marker, [p for p in tried if p <= n])
                if found is not None:
                    return found
                compare = [
                    cmp_value(self.k_seq, b"%d" % n) if n else cmp_created(self.k_seq, 0),
                    cmp_created(self.k_leader, fence.revision),
                    cmp_value(self.k_leader, fence.value),
                ]
                tried.append(n + 1)
                result = self.client.txn(
                    compare,
                    [op_put(self.k_seq, b"%d" % (n + 1)), op_put(self.k_log + _pos(n + 1), wire)],
                    [{"request_range": {"key": _b64(self.k_leader)}}],
                )
            except NetworkError as e:
                self.stats["errors"] += 1
                log.warning("append: %s; reading back", e)
                time.sleep(0.05)
                continue
            if result.succeeded:
                self.stats["appends"] += 1
                return n + 1
            self.stats["cas_lost"] += 1
            if not self._still_leader(result.responses, fence):
                raise NotLeaderError("lost the submitter election (fence)")

    def _find(self, marker: bytes, positions: Sequence[int]) -> int | None:
        for p in positions:
            kv = self.client.get(self.k_log + _pos(p))
            if kv is not None and _batch_id_of(kv.value) == marker:
                self.stats["read_backs_found"] += 1
                return p
        return None

    def _still_leader(self, responses: Sequence[dict[str, Any]], fence: Fence) -> bool:
        for r in responses:
            for kv in r.get("response_range", {}).get("kvs", []):
                return int(kv.get("create_revision", 0)) == fence.revision
        return False

    # --- read --------------------------------------------------------------------------------
    def read(self, start: int, limit: int = PAGE) -> tuple[list[tuple[int, bytes]], int]:
        """Up to ``limit`` batches from position ``start``, and the store revision read at."""
        r = self.client.range(self.k_log + _pos(start), prefix_end(self.k_log), limit=limit)
        out = [(int(kv.key[len(self.k_log) :]), kv.value) for kv in r.kvs]
        return out, r.revision

    def floor(self) -> int:
        kv = self.client.get(self.k_floor)
        return 0 if kv is None else int(kv.value)

    def watch_changes(
        self, start_revision: int, wake: Callable[[], None], stop: threading.Event
    ) -> None:
        """Wake readers on any change under the prefix, from ``start_revision``, until stop.
        Reconnects after errors from the latest revision (readers re-range anyway)."""
        revision = start_revision
        while not stop.is_set():

            def on_events(_kvs: list[KeyValue], rev: int) -> None:
                nonlocal revision
                revision = max(revision, rev + 1)
                wake()

            try:
                self.client.watch(self.prefix, prefix_end(self.prefix), revision, on_events, stop)
            except MedledgerError as e:
                if stop.is_set():
                    return
                log.info("watch ended (%s); resuming", e)
                wake()
                stop.wait(0.2)
                try:
                    revision = self.client.range(self.k_seq).revision + 1
                except MedledgerError:
                    continue

    # --- votes -----------------------------------------------------------------------------
    def publish_vote(self, height: int, did: str, vote: bytes) -> None:
        self.client.put(self.k_vote + _pos(height) + b"/" + did.encode(), vote)

    def votes(self, start_height: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        r = self.client.range(
            self.k_vote + _pos(start_height), prefix_end(self.k_vote), limit=limit
        )
        return [(int(kv.key[len(self.k_vote) : len(self.k_vote) + 20]), kv.value) for kv in r.kvs]

    def mark_applied(self, did: str, position: int) -> None:
        self.client.put(self.k_applied + did.encode(), b"%d" % position)

    def applied(self) -> dict[str, int]:
        r = self.client.range(self.k_applied, prefix_end(self.k_applied))
        return {kv.key[len(self.k_applied) :].decode(): int(kv.value) for kv in r.kvs}

    # --- bounded growth ----------------------------------------------------------------------
    def prune(self, below_position: int, below_height: int) -> int:
        """Delete batches below ``below_position`` and votes below ``below_height``, then
        compact the revision history. Returns the store revision compacted to."""
        current = self.floor()
        if below_position <= current:
            return 0
        self.client.delete_range(self.k_log, self.k_log + _pos(below_position))
        self.client.delete_range(self.k_vote, self.k_vote + _pos(below_height))
        revision = self.client.put(self.k_floor, b"%d" % below_position)
        self.client.compact(revision)
        return revision

    def defragment_all(self, endpoints: Sequence[str] | None = None) -> None:
        """Defragment members one at a time (a member is unavailable while it defragments)."""
        for url in endpoints or self.client.endpoints:
            self.client.defragment(url)


class Election:
    """Campaign for ``P/leader`` under a lease; keep the lease alive on a thread."""

    def __init__(self, etcd_log: EtcdLog, value: bytes, *, ttl_s: int = 2) -> None:
        self.log = etcd_log
        self.value = value
        self.ttl_s = ttl_s
        self.fence: Fence | None = None
        self._lock = threading.Lock()

    def leader(self) -> dict[str, str] | None:
        kv = self.log.client.get(self.log.k_leader)
        if kv is None:
            return None
        try:
            value = json.loads(kv.value)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def campaign(self) -> Fence | None:
        """Try once to become the submitter; the fence if elected (or already), else None."""
        with self._lock:
            if self.fence is not None:
                return self.fence
        client = self.log.client
        lease = client.lease_grant(self.ttl_s)
        result = client.txn(
            [cmp_created(self.log.k_leader, 0)],
            [
                op_put(self.log.k_leader, self.value, lease),
                {"request_range": {"key": _b64(self.log.k_leader)}},
            ],
        )
        if not result.succeeded:
            client.lease_revoke(lease)
            return None
        kv = result.responses[1]["response_range"]["kvs"][0]
        fence = Fence(int(kv["create_revision"]), lease, self.value)
        with self._lock:
            self.fence = fence
        log.info("elected submitter (fence revision %d)", fence.revision)
        return fence

    def keepalive(self) -> bool:
        """Refresh our lease; False (and forget the fence) if it expired."""
        with self._lock:
            fence = self.fence
        if fence is None:
            return False
        try:
            ttl = self.log.client.lease_keepalive(fence.lease)
        except MedledgerError:
            return True  # unknown: the append's compare is the real fence
        if ttl <= 0:
            self.lost()
            return False
        return True

    def lost(self) -> None:
        with self._lock:
            self.fence = None

    def resign(self) -> None:
        with self._lock:
            fence, self.fence = self.fence, None
        if fence is not None:
            with contextlib.suppress(MedledgerError):
                self.log.client.lease_revoke(fence.lease)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _batch_id_of(wire: bytes) -> bytes | None:
    """The batch id in a batch's wire bytes, found without parsing the whole batch (JCS puts
    ``batch_id`` first)."""
    start = wire.find(b'"batch_id":"')
    if start < 0:
        return None
    start += len(b'"batch_id":"')
    end = wire.find(b'"', start)
    return wire[start:end] if end > start else None
