"""The ledger benchmark (issue 3), phase by phase; ``python -m benchmarks --only ledger``.

1. Sign every transaction of (b) beforehand (``ledger_workload``); take the first ones as the
   sample of the limit (a), single-core Ed25519 verifications/s (``ledger_limit``), sampled
   before and after every phase.
2. (b) a node home on disk, the setup committed, then the signed mix pushed through
   ``LedgerNode.submit`` with the block builder running: maximum committed tx/s.
3. (e) ``chain verify``'s replay over the chain (b) built.
4. (c) the same node reopened, open-loop submission at half of (b)'s rate: latency.
5. (d) a fresh home served by ``medledger serve``, the mix over HTTP from a few clients.
6. Where the time goes: the sequential intake/build split and cProfile on a fresh home, and
   the split again on a copy of the home (b) and (c) filled.

``write`` puts every figure in ``results/ledger.json`` and the summary in ``results/ledger.md``.
Not handled here: asserting targets (``ledger_targets`` reports met / not met).
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import ledger_http, machine
from benchmarks.ledger_config import LedgerConfig
from benchmarks.ledger_limit import LimitSample, VerifyLimit
from benchmarks.ledger_markdown import render
from benchmarks.ledger_node import PASSPHRASE, create_home, open_loop, push, running_node
from benchmarks.ledger_profile import profile
from benchmarks.ledger_replay import replay
from benchmarks.ledger_results import HttpPhase, LedgerResult, NodePhase, ReplayPhase
from benchmarks.ledger_split import settle, split
from benchmarks.ledger_targets import evaluate
from benchmarks.ledger_workload import Cast, Workload
from benchmarks.machine import medledger_source
from medledger.bootstrap import open_node
from medledger.core.ledger.envelope import signed_bytes

Say = Callable[[str], object]


def _out_of_gc() -> None:
    """The pre-signed transactions are the benchmark's, not the node's: move what is alive now
    into the collector's permanent generation (``gc.freeze``) so its collections never walk them
    (holding 30,000 of them otherwise costs the node ~10% of its build time)."""
    gc.collect()
    gc.freeze()


class _Phases:
    """The run's shared state: the cast, the limit and its samples, the result."""

    def __init__(self, result: LedgerResult, work: Path, say: Say) -> None:
        c = result.config
        self.config, self.result, self.work, self.say = c, result, work, say
        self.cast = Cast.create(
            c.seed, c.organizations, c.practitioners_per_org, c.pool_patients_per_org
        )
        self.limit: VerifyLimit | None = None
        self.last_sample: LimitSample | None = None

    def workload(self, seed_offset: int) -> Workload:
        c = self.config
        mix = (c.patient_registrations, c.record_anchors)
        return Workload(self.cast, c.seed + seed_offset, c.ttl_s, mix)

    def sample(self, label: str) -> tuple[LimitSample, float]:
        """A limit sample; and the limit of the phase that ended (mean with the previous)."""
        assert self.limit is not None
        before, sample = self.last_sample, self.limit.sample(label)
        self.result.samples.append(sample)
        self.last_sample = sample
        return sample, self.limit.around(before or sample, sample)

    def throughput_and_replay(self) -> Workload:
        c, home = self.config, self.work / "node"
        workload = self.workload(0)
        self.say(f"signing {c.throughput_txs:,} transactions (setup first)")
        setup, timed = workload.setup(), workload.next(c.throughput_txs)
        self._describe(workload, timed)
        self.limit = VerifyLimit(timed[: c.verify_sample])
        _out_of_gc()
        create_home(home, self.cast, c)
        with running_node(home) as node:
            push(node, setup)
            self.sample("before (b) in-process maximum")
            self.say(f"(b) pushing {len(timed):,} transactions through the in-process node")
            run = push(node, timed)
            _, limit = self.sample("after (b) / before (e)")
        self.result.throughput = b = NodePhase.of(run, limit)
        self.say(f"    {b.per_s:,.0f} tx/s = {b.ratio:.2f}x the limit {limit:,.0f}/s")
        self.say("(e) replaying the chain (chain verify)")
        replayed = replay(home)
        _, limit = self.sample("after (e) / before (c)")
        self.result.replay = e = ReplayPhase(replayed, limit)
        self.say(f"    {e.per_s:,.0f} tx/s = {e.ratio:.2f}x the limit {limit:,.0f}/s")
        return workload

    def half_load(self, workload: Workload) -> None:
        assert self.result.throughput is not None
        c, rate = self.config, self.result.throughput.per_s / 2
        txs = workload.next(max(1, round(rate * c.latency_seconds)))
        _out_of_gc()
        self.say(f"(c) open loop at {rate:,.0f}/s for {c.latency_seconds:.0f} s")
        with running_node(self.work / "node") as node:
            self.sample("before (c) half load")
            run = open_loop(node, txs, rate)
            _, limit = self.sample("after (c) half load")
        self.result.latency = p = NodePhase.of(run, limit, offered_per_s=rate)
        self.say(f"    p50 {p.latency.p50_ms:,.1f} ms, p99 {p.latency.p99_ms:,.1f} ms")

    def http(self) -> None:
        c, home = self.config, self.work / "served"
        workload = self.workload(1)
        setup, timed = workload.setup(), workload.next(c.http_txs)
        _out_of_gc()
        port = ledger_http.free_port()
        create_home(home, self.cast, c, port=port)
        self.say(f"(d) {len(timed):,} transactions over HTTP, {c.http_clients} clients")
        with ledger_http.served_node(home, port, self.work / "serve.log") as base:
            ledger_http.submit_in_order(base, setup)
            self.sample("before (d) HTTP")
            run = ledger_http.submit_concurrently(base, timed, c.http_clients)
            _, limit = self.sample("after (d) HTTP")
        outcomes = ledger_http.read_outcomes(home, timed)
        self.result.http = d = HttpPhase.of(run, outcomes, limit)
        self.say(f"    {d.per_s:,.0f} tx/s = {d.ratio:.2f}x the limit {limit:,.0f}/s")

    def profile(self) -> None:
        c, home = self.config, self.work / "profiled"
        workload = self.workload(2)
        setup = workload.setup()
        timed, profiled = workload.next(c.profile_txs), workload.next(c.profile_txs)
        _out_of_gc()
        create_home(home, self.cast, c)
        self.say(f"profiling intake and block building ({c.profile_txs:,} transactions)")
        node = open_node(home, passphrase=PASSPHRASE)
        try:
            node.ledger.start(int(time.time() * 1000))
            settle(node, setup)
            self.result.profile = profile(node, timed, profiled)
        finally:
            node.close()

    def grown(self, workload: Workload) -> None:
        """The split again, on a copy of the home (b) and (c) filled: blocks cost more as the
        state grows."""
        assert self.result.profile is not None
        home = self.work / "grown"
        shutil.copytree(self.work / "node", home)
        self.say("splitting intake and block building on the grown state")
        node = open_node(home, passphrase=PASSPHRASE)
        try:
            node.ledger.start(int(time.time() * 1000))
            txs = workload.next(self.config.profile_txs)
            _out_of_gc()
            self.result.profile.grown = split(node, txs)
        finally:
            node.close()

    def _describe(self, workload: Workload, timed: list[Any]) -> None:
        by_type: dict[str, int] = {}
        for stx in timed:
            by_type[stx.tx.type] = by_type.get(stx.tx.type, 0) + 1
        self.result.workload = {
            "senders": self.cast.senders,
            "setup_by_type": {
                k: v - by_type.get(k, 0)
                for k, v in workload.counts().items()
                if v > by_type.get(k, 0)
            },
            "timed_by_type": by_type,
            "wire_bytes": round(sum(len(s.wire) for s in timed) / len(timed), 1),
            "signed_bytes": round(sum(len(signed_bytes(s.tx)) for s in timed) / len(timed), 1),
        }


def run_ledger(result: LedgerResult, work: Path, say: Say) -> LedgerResult:
    """Every phase in order, filling ``result``; a failure propagates (servers are stopped)."""
    phases = _Phases(result, work, say)
    try:
        workload = phases.throughput_and_replay()
        phases.half_load(workload)
        phases.http()
        phases.profile()
        phases.grown(workload)
    finally:
        gc.unfreeze()
    result.notes.extend(_notes(result))
    return result


def _notes(result: LedgerResult) -> list[str]:
    notes = [
        "Ed25519 verification in pyca/cryptography holds the GIL: intake, the block builder and"
        " the commit watcher share one core however many CPUs the machine has.",
    ]
    if result.machine.get("nproc", 0) <= 2:
        notes.append(
            "With 2 CPUs the HTTP phase's clients and server compete for the same cores as the"
            " limit's samples do not: the HTTP ratio is a floor."
        )
    return notes


def to_json(result: LedgerResult) -> dict[str, Any]:
    def opt(x: Any) -> Any:
        return None if x is None else x.as_json()

    return {
        "date": result.date,
        "mode": result.mode,
        "wall_seconds": round(result.wall_seconds, 1),
        "machine": result.machine,
        "config": asdict(result.config),
        "workload": result.workload,
        "limit": {
            "median_per_s": round(result.limit_median(), 1),
            "samples": [s.as_json() for s in result.samples],
        },
        "in_process_max": opt(result.throughput),
        "in_process_half_load": opt(result.latency),
        "http": opt(result.http),
        "chain_verify_replay": opt(result.replay),
        "profile": opt(result.profile),
        "targets": [asdict(t) for t in evaluate(result)],
        "notes": result.notes,
    }


def write(result: LedgerResult, out_dir: Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir``; return their paths (JSON, Markdown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "ledger.json", out_dir / "ledger.md"
    json_path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    md_path.write_text(render(result, evaluate(result)))
    return json_path, md_path


def new_result(config: LedgerConfig, *, mode: str, date: str, work: Path) -> LedgerResult:
    """An empty result, with the machine described (``work``: where the homes will be)."""
    described = {
        **machine.describe(work),
        "cryptography": metadata.version("cryptography"),
        "medledger_source": medledger_source(),
    }
    return LedgerResult(date=date, mode=mode, config=config, machine=described)
