"""Key release on one core: the pure decision and key wrapping, and the served call.

Over records anchored beforehand by ``RecordService.put`` (``records_put``), the practitioner
``dr-house`` (of the hospital, the custodian; not the custodian itself, so consent decides) asks
for the latest version's data key (``action="key-release"``, purpose ``TREAT``). Each patient
holds 100 active consents on the ledger (``records_consents``); the practitioner's own
``permit_to`` grant is the one that permits (basis ``consent``). After ``release_warmup_s`` of
untimed pure releases (a server releasing thousands of keys a second is a warm one):

1. **pure**, the calling thread pinned to one CPU, in 5 equal chunks (total and median chunk):
   ``evaluate_access`` with the patient's ``ConsentIndex`` (built once from the ledger's
   consents, as ``AccessService`` caches it) over the participant records it reads (copied from
   the ledger into a ``DictState``: no I/O), then ``unwrap_key`` of the node's wrap and
   ``wrap_key`` to the requester's session key -- the floor of a release;
2. **served, one caller**: ``RecordService.release_key`` on the running node, one call after
   another: ledger state and vault reads, the decision, its access event handed to
   ``AuditService.record`` and -- a permit -- waited for until its batch is durable (sealed
   every ``batch_interval_ms``), unwrap, wrap; so bounded by the sealing interval, not the CPU.
   Before it, one release is checked to open, with the session's private key, to the record's
   data key (basis ``consent``);
3. **served, concurrent**: for each count in ``release_threads``, that many callers at once,
   every thread of the process (callers, block builder, audit sealer/writer/anchor) pinned to
   one CPU: events of concurrent releases share a batch (group commit), so this is the
   one-core throughput of the served path;
4. **split**: the steps of (2), as ``RecordService._authorised_version``,
   ``AccessService.require`` and ``release_key`` take them, each timed on its own, one
   caller, so their sum can be set against (2); again back to back, the tickets waited for
   at the end (the CPU steps warm, as on a busy server: their sum bounds what (3) can reach
   on one core); and, outside the sums, ``evaluate_access`` alone and a ``ConsentIndex`` build.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, thread_time, time

from benchmarks.records_setup import BenchNode
from benchmarks.timing import Rate
from medledger.core.access.facts import ResourceFacts
from medledger.core.access.gate import AccessRequest, RecordFacts, evaluate_access
from medledger.core.consent.index import ConsentIndex
from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, wrap_key
from medledger.core.ledger.contracts.consent import active_consents
from medledger.core.ledger.runtime import StateReader
from medledger.ports import KeyedVersion
from medledger.testing.memory_state_reader import DictState

PURPOSE = "TREAT"
CHUNKS = 5
DECIDE = "AccessService.decide: consent index (cached), evaluate_access, event, audit.record"
WAIT = "Ticket.wait_durable: the event's batch sealed and stored (group commit)"
UNWRAP = "unwrap_key (node wrap)"
WRAP = "wrap_key (to the session key)"
SPLIT_STEPS = (
    "record head: ledger state read + JSON",
    "KeyVault.version (SQLite read) + RecordFacts",
    DECIDE,
    WAIT,
    "anchored version: ledger state read + JSON",
    UNWRAP,
    WRAP,
)
EVALUATE_ONLY = "evaluate_access alone (ledger state reads, cached ConsentIndex)"
INDEX_BUILD = "ConsentIndex.build over the patient's consents (a cache miss; median of 21)"


@dataclass(frozen=True, slots=True)
class Chunks:
    """One loop's calls, timed in ``CHUNKS`` equal chunks: the median chunk is robust to a
    burst of other work on the machine, the total is not."""

    rates: list[Rate]
    cpu_seconds: list[float]  # the calling thread's CPU time per chunk (time.thread_time)

    @property
    def median_per_cpu_s(self) -> float:
        """Calls per second of this thread's CPU time: discounts time other tasks held the
        pinned CPU (a shared machine), not their effect on caches."""
        return statistics.median(r.count / c for r, c in zip(self.rates, self.cpu_seconds,
                                                               strict=True) if c > 0)  # fmt: skip

    @property
    def total(self) -> Rate:
        return Rate(sum(r.count for r in self.rates), sum(r.seconds for r in self.rates))

    @property
    def median_per_s(self) -> float:
        return statistics.median(r.per_s for r in self.rates)

    def as_json(self) -> dict[str, object]:
        return {
            **self.total.as_json(),
            "median_chunk_per_s": round(self.median_per_s, 1),
            "median_chunk_per_cpu_s": round(self.median_per_cpu_s, 1),
            "chunks_per_s": [round(r.per_s, 1) for r in self.rates],
        }


@dataclass(frozen=True, slots=True)
class Served:
    """Releases through the running node's ``RecordService``: rate and per-call latency."""

    threads: int
    rate: Rate
    latencies_ms: list[float]
    batches: int  # access-event batches the audit service stored meanwhile

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_json(self) -> dict[str, object]:
        return {
            "threads": self.threads,
            **self.rate.as_json(),
            "latency_ms": {
                "median": round(self.latency(0.5), 2),
                "p99": round(self.latency(0.99), 2),
                "max": round(max(self.latencies_ms), 2),
            },
            "event_batches": self.batches,
        }


@dataclass(frozen=True, slots=True)
class ReleaseRun:
    pure: Chunks
    sequential: Served
    concurrent: list[Served]  # by number of callers
    split_us: dict[str, float]  # one caller, as served
    split_warm_us: dict[str, float]  # back to back, tickets waited for at the end
    diagnostics_us: dict[str, float]  # outside the split's sum
    consents_per_patient: int
    cpu: int | None  # the CPU the thread (or, for concurrent, the process) was pinned to

    @property
    def best_concurrent(self) -> Served:
        return max(self.concurrent, key=lambda s: s.rate.per_s)

    def as_json(self) -> dict[str, object]:
        return {
            "consents_per_patient": self.consents_per_patient,
            "pure": self.pure.as_json(),
            "served_one_caller": self.sequential.as_json(),
            "served_concurrent": [c.as_json() for c in self.concurrent],
            "split_us": {k: round(v, 1) for k, v in self.split_us.items()},
            "split_back_to_back_us": {k: round(v, 1) for k, v in self.split_warm_us.items()},
            "diagnostics_us": {k: round(v, 1) for k, v in self.diagnostics_us.items()},
            "pinned_cpu": self.cpu,
        }


def _tasks() -> list[int]:
    return [int(t.name) for t in Path("/proc/self/task").iterdir()]


@contextlib.contextmanager
def _pinned(pin: bool, *, process: bool = False) -> Iterator[int | None]:
    """This thread (``process``: every thread of the process, and so the threads they start)
    on one CPU, the last one it may use, while inside; restored after."""
    if not pin:
        yield None
        return
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    tasks = _tasks() if process else [0]
    for task in tasks:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(task, {cpu})
    try:
        yield cpu
    finally:
        for task in _tasks() if process else [0]:
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(task, allowed)


def _loop(n: int, call: Callable[[int], object]) -> Rate:
    start = perf_counter()
    for i in range(n):
        call(i)
    return Rate(n, perf_counter() - start)


class _Recording:
    """A ``StateReader`` that remembers what it was asked (to copy it into a ``DictState``)."""

    def __init__(self, inner: StateReader) -> None:
        self.inner, self.seen = inner, dict[str, bytes]()

    def get(self, key: str) -> bytes | None:
        value = self.inner.get(key)
        if value is not None:
            self.seen[key] = value
        return value


class _Releases:
    def __init__(self, bench: BenchNode, records: list[tuple[str, str]]) -> None:
        self.bench, self.node = bench, bench.node
        self.requests = [
            AccessRequest(bench.practitioner, patient, record_id, "key-release", PURPOSE)
            for patient, record_id in records
        ]
        self.heads = [self._head(r) for r in self.requests]
        self.stored = [self._stored(r, h) for r, h in zip(self.requests, self.heads, strict=True)]
        self.facts = [self._facts(h, s) for h, s in zip(self.heads, self.stored, strict=True)]
        state = self.node.ledger.state_reader()
        patients = {r.patient for r in self.requests}
        self.indexes = {p: ConsentIndex.build(active_consents(state, p)) for p in patients}

    def _head(self, r: AccessRequest) -> dict[str, object]:
        head = json.loads(self.node.ledger.state_get(f"record/{r.patient}/{r.record_id}") or "{}")
        assert isinstance(head, dict)
        return head

    def _stored(self, r: AccessRequest, head: dict[str, object]) -> KeyedVersion:
        assert r.record_id is not None
        stored = self.node.vault.version(r.patient, r.record_id, int(str(head["version"])))
        if stored is None:
            raise RuntimeError("a record put for the release benchmark is not in the vault")
        return stored

    @staticmethod
    def _facts(head: dict[str, object], stored: KeyedVersion) -> RecordFacts:
        """As ``RecordService._facts``: custodian and type from the ledger, the rest stored."""
        known = ResourceFacts.from_bytes(stored.facts)
        custodian, resource_type = head.get("author_org"), head.get("resource_type")
        return RecordFacts(
            custodian=custodian if isinstance(custodian, str) else None,
            resource_type=resource_type if isinstance(resource_type, str) else None,
            security_labels=known.security_labels, codes=known.codes,
            data_time_ms=known.data_time_ms,
        )  # fmt: skip

    def _memory_state(self) -> DictState:
        """The state keys the gate reads for these requests, copied into memory."""
        recording = _Recording(self.node.ledger.state_reader())
        now_ms = int(time() * 1000)
        for k, r in enumerate(self.requests):
            evaluate_access(r, self.facts[k], recording, self.indexes[r.patient], now_ms)
        return DictState(recording.seen)

    def check_pure(self) -> None:
        """Every request permitted by exactly the practitioner's own consent."""
        state, now_ms = self._memory_state(), int(time() * 1000)
        for k, r in enumerate(self.requests):
            d = evaluate_access(r, self.facts[k], state, self.indexes[r.patient], now_ms)
            if (
                not d.permit
                or d.basis != "consent"
                or d.consents != (self.bench.practitioner_consent,)
            ):
                raise RuntimeError(f"the release benchmark's request is not permitted: {d}")

    def pure(self, n: int) -> Rate:
        state, now_ms = self._memory_state(), int(time() * 1000)
        enc, node_id = self.bench.node_encryption, self.node.key.did
        session = self.bench.session_public
        requests, facts, stored_all, indexes = self.requests, self.facts, self.stored, self.indexes

        def release(i: int) -> None:
            k = i % len(requests)
            request, stored = requests[k], stored_all[k]
            decision = evaluate_access(request, facts[k], state, indexes[request.patient], now_ms)
            if not decision.permit:
                raise RuntimeError("denied")
            assert request.record_id is not None
            info = WrapInfo(request.record_id, stored.version, node_id, "custodian")
            data_key = unwrap_key(stored.node_wrap, enc.private_key, info)
            grant = decision.basis or "unknown"
            wrap_key(data_key, session, WrapInfo(request.record_id, stored.version,
                                                 request.requester, grant))  # fmt: skip

        return _loop(n, release)

    def _release_one(self, i: int) -> float:
        """One served release; its latency in ms."""
        request = self.requests[i % len(self.requests)]
        start = perf_counter()
        self.node.records.release_key(request, None, self.bench.session_public,
                                      int(time() * 1000))  # fmt: skip
        return (perf_counter() - start) * 1000

    def sequential(self, n: int) -> Served:
        batches = self.node.audit_store.counts()[1]
        start = perf_counter()
        latencies = [self._release_one(i) for i in range(n)]
        seconds = perf_counter() - start
        return Served(1, Rate(n, seconds), latencies,
                      self.node.audit_store.counts()[1] - batches)  # fmt: skip

    def concurrent(self, threads: int, per_thread: int) -> Served:
        latencies: list[float] = []
        failures: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads + 1)

        def worker(w: int) -> None:
            barrier.wait()
            try:
                mine = [self._release_one(w * per_thread + i) for i in range(per_thread)]
                with lock:
                    latencies.extend(mine)
            except Exception as e:  # noqa: BLE001 - re-raised on the calling thread
                failures.append(e)

        pool = [threading.Thread(target=worker, args=(w,), name=f"release-{w}")
                for w in range(threads)]  # fmt: skip
        for t in pool:
            t.start()
        batches = self.node.audit_store.counts()[1]
        barrier.wait()
        start = perf_counter()
        for t in pool:
            t.join()
        seconds = perf_counter() - start
        if failures:
            raise failures[0]
        return Served(threads, Rate(threads * per_thread, seconds), latencies,
                      self.node.audit_store.counts()[1] - batches)  # fmt: skip

    def check_served(self) -> None:
        """A served release opens, with the session's private key, to the record's data key."""
        request, stored = self.requests[0], self.stored[0]
        assert request.record_id is not None
        got = self.node.records.release_key(request, None, self.bench.session_public,
                                            int(time() * 1000))  # fmt: skip
        info = WrapInfo(request.record_id, stored.version, request.requester, got.grant)
        priv = self.bench.session_private.private_bytes_raw()
        node_info = WrapInfo(request.record_id, stored.version, self.node.key.did, "custodian")
        data_key = unwrap_key(stored.node_wrap, self.bench.node_encryption.private_key, node_info)
        if unwrap_key(got.wrap, priv, info) != data_key or got.grant != "consent":
            raise RuntimeError("a released key does not open to the record's data key")

    def split(self, n: int, *, wait_each: bool) -> dict[str, float]:
        """Microseconds per step. ``wait_each``: as served, each call waits for its event;
        else back to back, the tickets waited for after the loop (the wait row: that final
        wait over ``n``), so the CPU steps run warm, as on a busy server."""
        ledger, vault, access = self.node.ledger, self.node.vault, self.node.access
        enc, session = self.bench.node_encryption, self.bench.session_public
        seconds = dict.fromkeys(SPLIT_STEPS, 0.0)
        tickets = []
        for i in range(n):
            r = self.requests[i % len(self.requests)]
            assert r.record_id is not None
            now_ms = int(time() * 1000)
            t0 = perf_counter()
            head = json.loads(ledger.state_get(f"record/{r.patient}/{r.record_id}") or "{}")
            t1 = perf_counter()
            number = int(head["version"])
            stored = vault.version(r.patient, r.record_id, number)
            assert stored is not None
            facts = self._facts(head, stored)
            t2 = perf_counter()
            decision, ticket = access.decide(r, facts, now_ms, version=number)
            t3 = perf_counter()
            if wait_each:
                ticket.wait_durable(10.0)
            else:
                tickets.append(ticket)
            t4 = perf_counter()
            json.loads(ledger.state_get(f"record/{r.patient}/{r.record_id}/{number}") or "{}")
            t5 = perf_counter()
            info = WrapInfo(r.record_id, stored.version, self.node.key.did, "custodian")
            data_key = unwrap_key(stored.node_wrap, enc.private_key, info)
            t6 = perf_counter()
            grant = decision.basis or "unknown"
            wrap_key(data_key, session, WrapInfo(r.record_id, stored.version, r.requester, grant))
            t7 = perf_counter()
            if not decision.permit:
                raise RuntimeError("a split release was denied")
            marks = (t0, t1, t2, t3, t4, t5, t6, t7)
            for step, (a, b) in zip(SPLIT_STEPS, itertools.pairwise(marks), strict=True):
                seconds[step] += b - a
        start = perf_counter()
        for ticket in tickets:
            ticket.wait_durable(10.0)
        seconds[WAIT] += perf_counter() - start
        return {step: s / n * 1e6 for step, s in seconds.items()}

    def diagnostics(self, n: int) -> dict[str, float]:
        """``evaluate_access`` over the live state, and index builds; us each."""
        state, now_ms = self.node.ledger.state_reader(), int(time() * 1000)
        requests, facts, indexes = self.requests, self.facts, self.indexes

        def evaluate(i: int) -> None:
            k = i % len(requests)
            evaluate_access(requests[k], facts[k], state, indexes[requests[k].patient], now_ms)

        evaluate_us = _loop(n, evaluate).seconds / n * 1e6
        consents = active_consents(state, requests[0].patient)
        builds = [_loop(1, lambda _: ConsentIndex.build(consents)).seconds for _ in range(21)]
        return {EVALUATE_ONLY: evaluate_us, INDEX_BUILD: statistics.median(builds) * 1e6}


def _warm_up(releases: _Releases, seconds: float) -> None:
    """Pure releases, untimed, for ``seconds``: the first half second of CPU-bound work after
    the idle put phase runs ~40% slower on this kind of VM (measured: ~265 vs ~180 us)."""
    end = perf_counter() + seconds
    while perf_counter() < end:
        releases.pure(100)


def measure_release(
    bench: BenchNode, records: list[tuple[str, str]], *, pure: int, sequential: int,
    threads: tuple[int, ...], per_thread: int, split: int, pin: bool, warmup_s: float,
) -> ReleaseRun:  # fmt: skip
    """Key releases over ``records`` (patient did, record id), anchored and held by the node."""
    releases = _Releases(bench, records)
    releases.check_pure()
    consents = len(active_consents(bench.node.ledger.state_reader(), releases.requests[0].patient))
    with _pinned(pin) as cpu:
        _warm_up(releases, warmup_s)
        rates, cpu_seconds = [], []
        for _ in range(CHUNKS):
            cpu_began = thread_time()
            rates.append(releases.pure(max(1, pure // CHUNKS)))
            cpu_seconds.append(thread_time() - cpu_began)
        pure_rate = Chunks(rates, cpu_seconds)
        releases.check_served()
        one = releases.sequential(sequential)
        split_us = releases.split(split, wait_each=True)
        warm_us = releases.split(split, wait_each=False)
        diagnostics = releases.diagnostics(split)
    with _pinned(pin, process=True):
        many = [releases.concurrent(t, per_thread) for t in threads]
    return ReleaseRun(pure_rate, one, many, split_us, warm_us, diagnostics, consents, cpu)
