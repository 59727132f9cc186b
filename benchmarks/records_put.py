"""``RecordService.put`` end to end, ledger anchor included: records/s, bounded by block commits.

A put returns once its ``record.anchor`` transaction committed in a block (``LedgerNode.wait``),
so its cost is the block builder's cut (``block_interval_ms`` after the first transaction) plus
a block commit, not the cryptography. Measured on the running node:

1. **sequential**: one put after another, per record size, each a new record;
2. **concurrent**: ``put_threads`` threads, each putting its own new records (the smallest size),
   released together by a barrier. ``RecordService`` serialises puts per record (striped
   locks), so puts of different records share a block.
"""

from __future__ import annotations

import secrets
import statistics
import threading
from dataclasses import dataclass
from time import perf_counter, time

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

    def concurrent(self, size: int, threads: int, per_thread: int) -> PutRun:
        service = self.bench.node.records
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
        return PutRun("concurrent", size, threads, Rate(threads * per_thread, seconds), latencies)
