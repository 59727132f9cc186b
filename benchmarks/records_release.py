"""Key release on one thread: the pure decision and key wrapping, and the full service call.

Over records anchored beforehand by ``RecordService.put`` (``records_put``), a practitioner of
the author organization asks for the latest version's data key (``action="key-release"``,
purpose ``TREAT``); the basis is ``custodian``. Three loops, one after the other, the calling
thread pinned to one CPU (``RecordsConfig.pin_release_cpu``), after ``release_warmup_s`` of
untimed pure releases (a server releasing thousands of keys a second is a warm one); loops (1)
and (2) run in 5 equal chunks, reported as the total and the median chunk:

1. **pure**: ``evaluate_custodial_access`` over the two participant records in a ``DictState``
   (copied from the ledger, so no I/O), then ``unwrap_key`` of the node's wrap and
   ``wrap_key`` to the requester's session key -- the floor of a release;
2. **full**: ``RecordService.release_key`` end to end, in process: the record head and the
   anchored version read from the ledger state (SQLite), the decision, its access event
   committed to the key vault (SQLite, ``synchronous=FULL``), the vault's version row, unwrap,
   wrap; one release is checked to open with the session's private key;
3. **split**: the steps of (2), as ``RecordService._authorised_version`` and ``release_key``
   take them, each timed on its own, so their sum can be set against (2).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from time import perf_counter, time

from benchmarks.records_setup import BenchNode
from benchmarks.timing import Rate
from medledger.core.access.custodial import (
    AccessEvent,
    AccessRequest,
    evaluate_custodial_access,
)
from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, wrap_key
from medledger.ports import KeyedVersion
from medledger.testing.memory_state_reader import DictState

PURPOSE = "TREAT"
CHUNKS = 5
SPLIT_STEPS = (
    "record head: ledger state read + JSON",
    "evaluate_custodial_access (2 participant reads)",
    "KeyVault.record_event (SQLite commit, fsync)",
    "anchored version: ledger state read + JSON",
    "KeyVault.version (SQLite read)",
    "unwrap_key (node wrap)",
    "wrap_key (to the session key)",
)


@dataclass(frozen=True, slots=True)
class Chunks:
    """One loop's calls, timed in ``CHUNKS`` equal chunks: the median chunk is robust to a
    burst of other work on the machine, the total is not."""

    rates: list[Rate]

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
            "chunks_per_s": [round(r.per_s, 1) for r in self.rates],
        }


@dataclass(frozen=True, slots=True)
class ReleaseRun:
    pure: Chunks
    full: Chunks
    split_us: dict[str, float]
    cpu: int | None  # the CPU the thread was pinned to

    def as_json(self) -> dict[str, object]:
        return {
            "pure": self.pure.as_json(),
            "full": self.full.as_json(),
            "split_us": {k: round(v, 1) for k, v in self.split_us.items()},
            "pinned_cpu": self.cpu,
        }


@contextlib.contextmanager
def _pinned(pin: bool) -> Iterator[int | None]:
    """This thread on one CPU (the last one it may use) while inside; restored after."""
    if not pin:
        yield None
        return
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)


def _chunks(n: int, loop: Callable[[int], Rate]) -> Chunks:
    return Chunks([loop(max(1, n // CHUNKS)) for _ in range(CHUNKS)])


def _loop(n: int, call: Callable[[int], object]) -> Rate:
    start = perf_counter()
    for i in range(n):
        call(i)
    return Rate(n, perf_counter() - start)


class _Releases:
    def __init__(self, bench: BenchNode, records: list[tuple[str, str]]) -> None:
        self.bench, self.node = bench, bench.node
        self.requests = [
            AccessRequest(bench.practitioner, patient, record_id, "key-release", PURPOSE)
            for patient, record_id in records
        ]
        self.stored = [self._stored(r) for r in self.requests]
        self.author_org = self.node.key.did

    def _stored(self, r: AccessRequest) -> KeyedVersion:
        head = json.loads(self.node.ledger.state_get(f"record/{r.patient}/{r.record_id}") or "{}")
        stored = self.node.vault.version(r.patient, r.record_id, int(head["version"]))
        if stored is None:
            raise RuntimeError("a record put for the release benchmark is not in the vault")
        return stored

    def request(self, i: int) -> tuple[AccessRequest, KeyedVersion]:
        k = i % len(self.requests)
        return self.requests[k], self.stored[k]

    def pure(self, n: int) -> Rate:
        state = DictState({
            f"participant/{did}": self.node.ledger.state_get(f"participant/{did}") or b""
            for did in (self.bench.practitioner, self.author_org)
        })  # fmt: skip
        enc, node_id = self.bench.node_encryption, self.node.key.did
        session = self.bench.session_public

        def release(i: int) -> None:
            request, stored = self.request(i)
            decision = evaluate_custodial_access(request, self.author_org, state)
            info = WrapInfo(request.record_id, stored.version, node_id, "custodian")
            data_key = unwrap_key(stored.node_wrap, enc.private_key, info)
            grant = decision.basis or "unknown"
            wrap_key(data_key, session, WrapInfo(request.record_id, stored.version,
                                                 request.requester, grant))  # fmt: skip

        return _loop(n, release)

    def full(self, n: int) -> Rate:
        records, session = self.node.records, self.bench.session_public
        release = records.release_key
        rate = _loop(n, lambda i: release(self.request(i)[0], None, session, int(time() * 1000)))
        request, stored = self.request(0)
        got = release(request, None, session, int(time() * 1000))
        info = WrapInfo(request.record_id, stored.version, request.requester, got.grant)
        priv = self.bench.session_private.private_bytes_raw()
        node_info = WrapInfo(request.record_id, stored.version, self.node.key.did, "custodian")
        data_key = unwrap_key(stored.node_wrap, self.bench.node_encryption.private_key, node_info)
        if unwrap_key(got.wrap, priv, info) != data_key or got.grant != "custodian":
            raise RuntimeError("a released key does not open to the record's data key")
        return rate

    def split(self, n: int) -> dict[str, float]:
        ledger, vault, enc = self.node.ledger, self.node.vault, self.bench.node_encryption
        seconds = dict.fromkeys(SPLIT_STEPS, 0.0)
        for i in range(n):
            r, _ = self.request(i)
            t0 = perf_counter()
            head = json.loads(ledger.state_get(f"record/{r.patient}/{r.record_id}") or "{}")
            t1 = perf_counter()
            decision = evaluate_custodial_access(r, head.get("author_org"), ledger.state_reader())
            t2 = perf_counter()
            vault.record_event(AccessEvent(int(time() * 1000), r.requester, r.patient,
                                           r.record_id, None, r.action, r.purpose,
                                           decision.permit, decision.reasons))  # fmt: skip
            t3 = perf_counter()
            number = int(head["version"])
            json.loads(ledger.state_get(f"record/{r.patient}/{r.record_id}/{number}") or "{}")
            t4 = perf_counter()
            stored = vault.version(r.patient, r.record_id, number)
            t5 = perf_counter()
            assert stored is not None
            info = WrapInfo(r.record_id, stored.version, self.node.key.did, "custodian")
            data_key = unwrap_key(stored.node_wrap, enc.private_key, info)
            t6 = perf_counter()
            grant = decision.basis or "unknown"
            release = WrapInfo(r.record_id, stored.version, r.requester, grant)
            wrap_key(data_key, self.bench.session_public, release)
            t7 = perf_counter()
            marks = (t0, t1, t2, t3, t4, t5, t6, t7)
            for step, (a, b) in zip(SPLIT_STEPS, itertools.pairwise(marks), strict=True):
                seconds[step] += b - a
        return {step: s / n * 1e6 for step, s in seconds.items()}


def _warm_up(releases: _Releases, seconds: float) -> None:
    """Pure releases, untimed, for ``seconds``: the first half second of CPU-bound work after
    the idle put phase runs ~40% slower on this kind of VM (measured: ~265 vs ~180 us)."""
    end = perf_counter() + seconds
    while perf_counter() < end:
        releases.pure(100)


def measure_release(
    bench: BenchNode, records: list[tuple[str, str]], *, pure: int, full: int, split: int,
    pin: bool, warmup_s: float,
) -> ReleaseRun:  # fmt: skip
    """Key releases over ``records`` (patient did, record id), anchored and held by the node."""
    releases = _Releases(bench, records)
    with _pinned(pin) as cpu:
        _warm_up(releases, warmup_s)
        pure_rate = _chunks(pure, releases.pure)
        releases.full(min(full, 100))  # warm-up of the SQLite statement caches
        full_rate = _chunks(full, releases.full)
        split_us = releases.split(split)
    return ReleaseRun(pure_rate, full_rate, split_us, cpu)
