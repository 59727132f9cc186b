"""``python -m benchmarks.audit_bench [--quick]``: the access-event benchmark (issue 5).

1. a workload of access events like a hospital's: 10,000 patients, 500 practitioners of 20
   organizations, mostly permitted reads, some denials and searches, 1% break-glass (with a
   written justification), drawn from a seeded generator (``Workload``);
2. ingest (``ingest``): every event through ``AuditService.record`` on a real node in a temp
   dir (``init_home`` + ``open_node`` + ``Node.start``: the block builder and the audit
   threads running, SQLite on disk with full fsync), the clock stopped when the LAST event's
   receipt can be had -- so every batch is sealed, stored durably, anchored by its signed
   ``access.batch`` transaction and covered by a signed checkpoint. Twice, each on a fresh
   node: events built before the clock starts (the service's ingest), and built in the loop
   (adding the caller's cost of making each event);
3. the bare limit, in the same run, before and after the ingests (best of the rounds): SHA-256
   of each event's leaf bytes, the RFC 9162 tree over them, and one Ed25519 signature per
   batch, at the batch size the ingest produced -- plain ``hashlib`` and ``cryptography``;
4. receipt latency at the default settings (``latency``): events at a steady rate on the node
   of run 2, each timed from ``record`` until its receipt can be had; a sample verified
   offline with ``verify_event_receipt``;
5. diagnostics: per-event cost of building an event, sealing (hashing) and storing (SQLite),
   each on its own.

Writes ``results/audit.json`` (every figure) and ``results/audit.md`` (the summary). Targets
are reported as met / not met, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Queue
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from benchmarks import machine
from benchmarks.machine import medledger_source
from benchmarks.targets import Target
from medledger.adapters.sqlite_audit import SqliteAuditStore
from medledger.bootstrap import Node, init_home, open_node
from medledger.core.audit.batch import seal_batch
from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.identity.did_key import did_from_public_key
from medledger.errors import OverloadedError
from medledger.services.audit import AuditSettings

RESULTS = Path(__file__).resolve().parent / "results"
PASSPHRASE = "benchmark passphrase"
TARGET_EVENTS_PER_S = 100_000
TARGET_RECEIPT_S = 1.0


@dataclass(frozen=True, slots=True)
class Config:
    events: int
    bare_rounds: int
    latency_events: int
    latency_rate_per_s: int
    verify_sample: int
    diagnostic_events: int


FULL = Config(1_000_000, 3, 1_000, 200, 200, 100_000)
QUICK = Config(100_000, 2, 200, 200, 50, 20_000)


# --- 1. the workload --------------------------------------------------------------------------
class Workload:
    """Seeded access events. ``specs`` are the constructor arguments but the node's did."""

    PURPOSES = (("TREAT", 80), ("HPAYMT", 5), ("HOPERAT", 5), ("PATRQT", 5), ("ETREAT", 5))
    ACTIONS = (("read", 60), ("key-release", 20), ("search", 15), ("list-audit", 5))

    def __init__(self, count: int, seed: int = 5) -> None:
        rng = random.Random(seed)
        dids = lambda n: [did_from_public_key(rng.randbytes(32)) for _ in range(n)]  # noqa: E731
        patients, orgs = dids(10_000), dids(20)
        actors = [(did, orgs[i % 20]) for i, did in enumerate(dids(500))]
        purposes = rng.choices([p for p, _ in self.PURPOSES], [w for _, w in self.PURPOSES],
                               k=count)  # fmt: skip
        actions = rng.choices([a for a, _ in self.ACTIONS], [w for _, w in self.ACTIONS], k=count)
        self.specs: list[tuple[Any, ...]] = []
        now = int(time.time() * 1000)
        for i in range(count):
            actor, org = actors[rng.randrange(500)]
            action, roll = actions[i], rng.random()
            record = action in {"read", "key-release"}
            decision, reasons, justification = "permit", ("consent-permit",), None
            if roll < 0.09:
                decision, reasons = "deny", ("no-consent",)
            elif roll < 0.10:
                decision, reasons = "break-glass", ("break-glass", "no-consent")
                justification = "Patient unresponsive in the emergency department"
            self.specs.append((
                new_event_id(rng.randbytes(16)), now + i // 100, actor, org,
                patients[rng.randrange(10_000)], action, "Observation" if action != "list-audit"
                else None, f"obs-{rng.randrange(10**6)}" if record else None,
                rng.randrange(1, 5) if record else None, purposes[i], decision, reasons,
                ("consent-1",) if decision == "permit" else (), justification,
            ))  # fmt: skip

    @staticmethod
    def build(node_did: str, spec: tuple[Any, ...]) -> AccessEvent:
        (event_id, time_ms, actor, org, patient, action, resource_type, record_id, version,
         purpose, decision, reasons, consents, justification) = spec  # fmt: skip
        return AccessEvent(event_id, time_ms, node_did, actor, org, patient, action,
                           resource_type, record_id, version, purpose, decision, reasons,
                           consents, justification)  # fmt: skip


# --- 2. ingest --------------------------------------------------------------------------------
@dataclass
class IngestRun:
    label: str
    events: int
    seconds: float = 0.0
    recorded_s: float = 0.0
    durable_s: float = 0.0
    batches: int = 0
    overload_waits: int = 0
    #: CPU seconds of the whole process (every thread) over the run
    cpu_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.events / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_s": round(self.per_s, 1),
                "mean_batch": round(self.events / max(self.batches, 1), 1)}  # fmt: skip


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def running_node(home: Path) -> Node:
    init_home(home, passphrase=PASSPHRASE)
    node = open_node(home, passphrase=PASSPHRASE)
    node.start()
    return node


def ingest(node: Node, workload: Workload, *, prebuilt: bool) -> IngestRun:
    """Record every event; stop the clock when the last one's receipt can be had."""
    me, build, specs = node.key.did, Workload.build, workload.specs
    events = [build(me, s) for s in specs] if prebuilt else None
    run = IngestRun("events built beforehand" if prebuilt else "events built in the loop",
                    len(specs))  # fmt: skip
    record = node.audit.record
    _, batches_before = node.audit_store.counts()
    cpu_began = _cpu_s()
    began = time.perf_counter()
    for i, spec in enumerate(specs):
        event = events[i] if events is not None else build(me, spec)
        while True:
            try:
                ticket = record(event)
                break
            except OverloadedError:  # the bounded queue is full: back off like a caller
                run.overload_waits += 1
                time.sleep(0.002)
    run.recorded_s = time.perf_counter() - began
    ticket.wait_durable(120)
    run.durable_s = time.perf_counter() - began
    node.audit.wait_receipt(ticket.event_id, 120)
    run.seconds = time.perf_counter() - began
    run.cpu_s = _cpu_s() - cpu_began
    run.batches = node.audit_store.counts()[1] - batches_before
    return run


# --- 3. the bare limit ------------------------------------------------------------------------
def bare_limit(leaves: list[bytes], batch_size: int) -> float:
    """Events/s of SHA-256 leaf hashing + an RFC 9162 tree + one Ed25519 signature per batch."""
    key = Ed25519PrivateKey.generate()
    sha256 = hashlib.sha256
    began = time.perf_counter()
    for at in range(0, len(leaves), batch_size):
        level = [sha256(b"\x00" + leaf).digest() for leaf in leaves[at : at + batch_size]]
        while len(level) > 1:
            up = [sha256(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2],
                                                                   strict=False)]  # fmt: skip
            if len(level) & 1:
                up.append(level[-1])
            level = up
        key.sign(level[0])
    return len(leaves) / (time.perf_counter() - began)


# --- 4. receipt latency -----------------------------------------------------------------------
@dataclass
class Latency:
    events: int
    rate_per_s: int
    seconds: list[float] = field(default_factory=list)
    verified: int = 0
    verify_us: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events, "rate_per_s": self.rate_per_s,
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1),
            "max_ms": round(max(self.seconds) * 1000, 1),
            "verified_offline": self.verified, "verify_us_each": round(self.verify_us, 1),
        }  # fmt: skip


def latency(node: Node, workload: Workload, config: Config) -> Latency:
    """Events at a steady rate; a waiter takes each receipt in order as soon as it exists
    (receipts come batch by batch, in recording order, so waiting in order loses nothing)."""
    result = Latency(config.latency_events, config.latency_rate_per_s)
    specs = workload.specs[: config.latency_events]
    queue: Queue[tuple[str, float] | None] = Queue()
    receipts: list[bytes] = []

    def waiter() -> None:
        while (item := queue.get()) is not None:
            event_id, began = item
            receipts.append(node.audit.wait_receipt(event_id, 30))
            result.seconds.append(time.monotonic() - began)

    thread = threading.Thread(target=waiter, name="receipt-waiter")
    thread.start()
    gap = 1 / config.latency_rate_per_s
    start = time.monotonic()
    for i, spec in enumerate(specs):
        time.sleep(max(0.0, start + i * gap - time.monotonic()))
        fresh = (new_event_id(random.randbytes(16)), int(time.time() * 1000), *spec[2:])
        event = Workload.build(node.key.did, fresh)
        began = time.monotonic()
        node.audit.record(event)
        queue.put((event.event_id, began))
    queue.put(None)
    thread.join()
    sample = receipts[:: max(1, len(receipts) // config.verify_sample)]
    began = time.perf_counter()
    for receipt in sample:
        verify_event_receipt(receipt, node.log.verifier)
    result.verify_us = (time.perf_counter() - began) / len(sample) * 1e6
    result.verified = len(sample)
    return result


# --- 5. diagnostics ---------------------------------------------------------------------------
def diagnostics(workload: Workload, work: Path, count: int, batch: int) -> dict[str, float]:
    """Microseconds per event of each step, alone: build, seal (hash), store (SQLite)."""
    node_did = did_from_public_key(bytes(32))
    specs = workload.specs[:count]
    out: dict[str, float] = {}

    def per_event(name: str, step: Callable[[], object]) -> object:
        began = time.perf_counter()
        value = step()
        out[name] = round((time.perf_counter() - began) / count * 1e6, 2)
        return value

    events = per_event("build AccessEvent (checks + leaf bytes)",
                       lambda: [Workload.build(node_did, s) for s in specs])  # fmt: skip
    assert isinstance(events, list)
    chunks = [events[i : i + batch] for i in range(0, count, batch)]
    sealed = per_event("seal: leaf hashes + tree",
                       lambda: [seal_batch(new_event_id(random.randbytes(16)), c)
                                for c in chunks])  # fmt: skip
    assert isinstance(sealed, list)
    store = SqliteAuditStore(work / "diagnostic-audit.db")
    try:
        per_event("store: SqliteAuditStore.save_batch (one transaction per batch, fsync)",
                  lambda: [store.save_batch(b, bytes(32)) for b in sealed])  # fmt: skip
    finally:
        store.close()
    return out


# --- the run ----------------------------------------------------------------------------------
@dataclass
class AuditResult:
    date: str
    mode: str
    config: Config
    settings: dict[str, Any]
    machine: dict[str, Any]
    ingests: list[IngestRun] = field(default_factory=list)
    bare_per_s: list[float] = field(default_factory=list)
    latency: Latency | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def bare(self) -> float:
        return max(self.bare_per_s)

    def as_json(self, targets: list[Target]) -> dict[str, Any]:
        return {
            "date": self.date, "mode": self.mode, "config": asdict(self.config),
            "settings": self.settings, "machine": self.machine,
            "ingest": [{**r.as_json(), "ratio_to_bare": round(r.per_s / self.bare, 3)}
                       for r in self.ingests],
            "bare_limit_per_s": {"best": round(self.bare, 1),
                                 "rounds": [round(x, 1) for x in self.bare_per_s]},
            "receipt_latency": None if self.latency is None else self.latency.as_json(),
            "diagnostics_us_per_event": self.diagnostics,
            "targets": [asdict(t) for t in targets], "wall_seconds": round(self.wall_seconds, 1),
        }  # fmt: skip


def evaluate(result: AuditResult) -> list[Target]:
    targets = []
    for run in result.ingests:
        targets.append(Target(
            f"access-event ingest with receipts >= {TARGET_EVENTS_PER_S:,}/s ({run.label})",
            f"{run.per_s:,.0f}/s; {run.per_s / result.bare:.3f}x the bare limit"
            f" ({result.bare:,.0f}/s)", run.per_s >= TARGET_EVENTS_PER_S,
        ))  # fmt: skip
    if (lat := result.latency) is not None:
        targets.append(Target(
            f"receipt within {TARGET_RECEIPT_S:.0f} s at default settings (every event)",
            f"p50 {lat.percentile(50) * 1000:,.0f} ms, p99 {lat.percentile(99) * 1000:,.0f} ms,"
            f" max {max(lat.seconds) * 1000:,.0f} ms", max(lat.seconds) < TARGET_RECEIPT_S,
        ))  # fmt: skip
    return targets


def run(*, quick: bool, console: Console) -> AuditResult:
    config = QUICK if quick else FULL
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-audit-") as tmp:
        work = Path(tmp)
        settings = AuditSettings()
        result = AuditResult(
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            mode="quick" if quick else "full",
            config=config,
            settings={
                "batch_interval_ms": settings.batch_interval_ms,
                "max_batch_events": settings.max_batch_events,
                "max_queued_events": settings.max_queued_events,
            },
            machine={**machine.describe(work), "medledger_source": medledger_source()},
        )
        console.print(f"workload: {config.events:,} events")
        workload = Workload(config.events)
        sample_node = did_from_public_key(bytes(32))
        leaves = [Workload.build(sample_node, s).leaf_bytes() for s in workload.specs]
        batch = settings.max_batch_events
        for prebuilt in (True, False):
            result.bare_per_s.append(bare_limit(leaves, batch))
            console.print(f"bare limit: {result.bare_per_s[-1]:,.0f} events/s")
            node = running_node(work / f"home-{len(result.ingests)}")
            try:
                run_ = ingest(node, workload, prebuilt=prebuilt)
                result.ingests.append(run_)
                console.print(f"ingest, {run_.label}: {run_.per_s:,.0f} events/s"
                              f" ({run_.batches} batches)")  # fmt: skip
                batch = max(1, run_.events // max(run_.batches, 1))
                if not prebuilt:
                    console.print(f"receipt latency: {config.latency_events} events at"
                                  f" {config.latency_rate_per_s}/s")  # fmt: skip
                    result.latency = latency(node, workload, config)
            finally:
                node.close()
        for _ in range(config.bare_rounds - 1):
            result.bare_per_s.append(bare_limit(leaves, batch))
        console.print("diagnostics")
        result.diagnostics = diagnostics(workload, work, config.diagnostic_events, batch)
    result.wall_seconds = time.monotonic() - began
    result.machine["contention_at_end"] = machine.contention()
    return result


def render(result: AuditResult, targets: list[Target]) -> str:
    m = result.machine
    lines = [
        "# Access-event benchmark",
        "",
        f"`python -m benchmarks.audit_bench` ({result.mode} run), {result.date},"
        f" {result.wall_seconds:.0f} s wall time.",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; Python {m['python']}; SQLite"
        f" {m['sqlite']}; temp dirs on {m['temp_dir_filesystem']}. Code measured:"
        f" {m['medledger_source']}.",
        "",
        f"Contention (load averages 1/5/15 min; PSI avg60): at the start"
        f" {m['contention_at_start']}; at the end {m['contention_at_end']}. Other work on the"
        " machine lowers every figure; the bare limit, measured in the same run, shows by how"
        " much.",
        "",
        f"Node: `init_home` + `open_node` + `Node.start` in a temp dir (block builder and audit"
        f" threads; SQLite WAL, synchronous=FULL). Audit settings: {result.settings}."
        f" Workload: {result.config.events:,} events, 10,000 patients, 500 practitioners of 20"
        " organizations; 90% permitted, 9% denied, 1% break-glass.",
        "",
        "## Ingest until the last receipt can be had",
        "",
        "| events | recorded in s | all durable at s | last receipt at s | events/s |"
        " batches (mean size) | overload back-offs | CPU us per event (all threads) |"
        " / bare limit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.ingests:
        lines.append(
            f"| {r.events:,} {r.label} | {r.recorded_s:.2f} | {r.durable_s:.2f} |"
            f" {r.seconds:.2f} | **{r.per_s:,.0f}** | {r.batches}"
            f" ({r.events / max(r.batches, 1):,.0f})"
            f" | {r.overload_waits:,} | {r.cpu_s / r.events * 1e6:,.1f}"
            f" | **{r.per_s / result.bare:.3f}x** |"
        )
    lines += [
        "",
        f"Bare limit (SHA-256 leaf hashes + RFC 9162 tree + one Ed25519 signature per batch,"
        f" over the same leaf bytes, at the ingest's batch size): best"
        f" **{result.bare:,.0f} events/s**; rounds"
        f" {', '.join(f'{x:,.0f}' for x in result.bare_per_s)}.",
        "",
    ]
    if (lat := result.latency) is not None:
        lines += [
            "## Receipt latency at default settings",
            "",
            f"{lat.events} events at {lat.rate_per_s}/s, each timed from `record` until its"
            " receipt can be had (batch sealed and stored, anchor committed, a checkpoint"
            " signed over it).",
            "",
            "| p50 ms | p99 ms | max ms | receipts verified offline | verify us each |",
            "|---|---|---|---|---|",
            f"| {lat.percentile(50) * 1000:,.0f} | {lat.percentile(99) * 1000:,.0f} |"
            f" {max(lat.seconds) * 1000:,.0f} | {lat.verified} | {lat.verify_us:,.0f} |",
            "",
        ]
    lines += ["## Diagnostics: each step alone", "", "| step | us per event |", "|---|---|"]
    lines += [f"| {k} | {v:,.2f} |" for k, v in result.diagnostics.items()]
    lines += ["", "## Targets", "", "| target | measured | result |", "|---|---|---|"]
    lines += [f"| {t.goal} | {t.measured} | {'met' if t.met else 'not met'} |" for t in targets]
    return "\n".join(lines) + "\n"


def run_and_write(*, quick: bool, out: Path, console: Console) -> AuditResult:
    """Run, write ``out/audit.json`` and ``out/audit.md``, print the targets."""
    result = run(quick=quick, console=console)
    targets = evaluate(result)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "audit.json", out / "audit.md"
    json_path.write_text(json.dumps(result.as_json(targets), indent=2) + "\n")
    md_path.write_text(render(result, targets))
    table = Table("target", "measured", "result", title="Targets (details in audit.md)")
    for t in targets:
        table.add_row(t.goal, t.measured, "[green]met" if t.met else "[red]not met")
    console.print(table)
    console.print(f"wrote {json_path} and {md_path} ({result.wall_seconds:.0f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^5 events (smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    args = parser.parse_args()
    run_and_write(quick=args.quick, out=args.out, console=Console())


if __name__ == "__main__":
    main()
