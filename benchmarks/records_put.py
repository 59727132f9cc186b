"""``RecordService.put`` end to end, ledger anchor included: records/s, bounded by block commits.

A put returns once its ``record.anchor`` transaction committed in a block (``LedgerNode.wait``),
so its cost is the block builder's cut (``block_interval_ms`` after the first transaction) plus
a block commit, not the cryptography. Measured on the running node:

1. **sequential**: one put after another, per record size, each a new record;
2. **concurrent**: ``put_threads`` threads, each putting its own new records (the smallest size),
   released together by a barrier;
3. **diagnostic, not a supported configuration**: (2) again through a second ``RecordService``
   over the same node, ledger, vault and blob store, whose service-wide put lock is replaced by
   a no-op. Every thread puts its own records, so this is what a per-record lock would allow:
   the cost of serialising every put behind one lock held across the anchor's wait.
"""

from __future__ import annotations

import secrets
import statistics
import threading
from dataclasses import dataclass
from time import perf_counter, time
from types import TracebackType

from benchmarks.records_setup import BenchNode
from benchmarks.timing import Rate
from medledger.services.records import RecordService

RESOURCE_TYPE = "Observation"


@dataclass(frozen=True, slots=True)
class PutRun:
    label: str
    size: int
    threads: int
    rate: Rate
    latencies_ms: list[float]

    def as_json(self) -> dict[str, object]:
        lat = self.latencies_ms
        return {
            "label": self.label,
            "size": self.size,
            "threads": self.threads,
            **self.rate.as_json(),
            "latency_ms": {"median": round(statistics.median(lat), 1), "max": round(max(lat), 1)},
        }


class _NoLock:
    """Stands in for the put lock in the diagnostic (3)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class Putter:
    """Puts new records through a ``RecordService``; remembers which (for key release)."""

    def __init__(self, bench: BenchNode) -> None:
        self.bench = bench
        self.put_records: list[tuple[str, str]] = []  # (patient did, record id)
        self._lock = threading.Lock()

    def _one(self, service: RecordService, size: int, label: str) -> float:
        patient = secrets.choice(self.bench.patients)
        record_id = f"put-{label}-{secrets.token_hex(6)}"
        start = perf_counter()
        service.put(
            patient=patient,
            record_id=record_id,
            resource_type=RESOURCE_TYPE,
            content=secrets.token_bytes(size),
            now_s=int(time()),
        )
        seconds = perf_counter() - start
        with self._lock:
            self.put_records.append((patient, record_id))
        return seconds

    def sequential(self, size: int, n: int) -> PutRun:
        service = self.bench.node.records
        start = perf_counter()
        latencies = [self._one(service, size, "seq") * 1000 for _ in range(n)]
        return PutRun("sequential", size, 1, Rate(n, perf_counter() - start), latencies)

    def concurrent(self, size: int, threads: int, per_thread: int, *, unlocked: bool) -> PutRun:
        service = self.bench.node.records
        if unlocked:
            node = self.bench.node
            service = RecordService(
                ledger=node.ledger,
                vault=node.vault,
                blobs=node.blobs,
                node_key=node.key,
                node_encryption=self.bench.node_encryption,
                random_bytes=secrets.token_bytes,
            )
            service._put_lock = _NoLock()  # type: ignore[assignment]
        latencies: list[float] = []
        failures: list[BaseException] = []
        barrier = threading.Barrier(threads + 1)

        def worker() -> None:
            barrier.wait()
            try:
                for _ in range(per_thread):
                    ms = self._one(service, size, "par") * 1000
                    with self._lock:
                        latencies.append(ms)
            except Exception as e:  # noqa: BLE001 - re-raised on the calling thread
                failures.append(e)

        pool = [threading.Thread(target=worker, name=f"put-{i}") for i in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        start = perf_counter()
        for t in pool:
            t.join()
        seconds = perf_counter() - start
        if failures:
            raise failures[0]
        label = "concurrent, no put lock (diagnostic)" if unlocked else "concurrent"
        return PutRun(label, size, threads, Rate(threads * per_thread, seconds), latencies)
