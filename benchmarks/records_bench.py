"""``python -m benchmarks.records_bench [--quick]``: the off-chain records benchmark (issue 4).

1. a demo node home on disk, the node running, its cast registered (``records_setup``);
2. encrypt+store and fetch+verify+decrypt of each record size, medledger and the bare floor
   (AES-GCM + a plain file write with fsync / a file read) interleaved (``records_store``);
3. ``RecordService.put`` with its ledger anchor: records/s, sequential and concurrent
   (``records_put``);
4. key release on one core, decided by the access gate against each patient's 100 consents
   (``records_consents``): the pure part (gate + consent index + HPKE) and
   ``RecordService.release_key`` served by the node (access event durable before the key
   leaves), over the records (3) anchored (``records_release``);
5. diagnostics in hot loops: blob reads, HPKE parts (``records_micro``). Access-event ingest
   (group commit) is ``audit_bench``'s.

Writes ``results/records.json`` (every figure) and ``results/records.md`` (the summary).
Not handled here: asserting targets (``records_targets`` reports met / not met).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from rich.console import Console
from rich.table import Table

from benchmarks import machine, records_micro
from benchmarks.machine import medledger_source
from benchmarks.records_config import FULL, QUICK
from benchmarks.records_markdown import render
from benchmarks.records_put import Putter
from benchmarks.records_release import DECIDE, UNWRAP, WAIT, WRAP, measure_release
from benchmarks.records_results import RecordsResult, to_json
from benchmarks.records_setup import BenchNode, bench_node
from benchmarks.records_store import STORE_STEPS, measure_size
from benchmarks.records_targets import evaluate, size_label

RESULTS = Path(__file__).resolve().parent / "results"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.records_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few hundred records (smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    return parser.parse_args()


def _store_fetch(result: RecordsResult, bench: BenchNode, work: Path, console: Console) -> None:
    c = result.config
    for size, ops, round_ops in zip(c.sizes, c.store_ops, c.round_ops, strict=True):
        console.print(f"store/fetch: {ops:,} records of {size_label(size)}, interleaved")
        run = measure_size(bench, work / f"store-{size}", size, ops, round_ops, c.warmup_ops)
        result.sizes.append(run)
        console.print(f"    store {run.store_ratio:.2f}x, fetch {run.fetch_ratio:.2f}x bare")


def _puts(result: RecordsResult, putter: Putter, console: Console) -> None:
    c = result.config
    for size in c.sizes:
        console.print(f"puts with anchor: {c.put_sequential} sequential, {size_label(size)}")
        result.puts.append(putter.sequential(size, c.put_sequential))
    console.print(f"puts with anchor: {c.put_threads} threads x {c.put_per_thread}")
    result.puts.append(putter.concurrent(c.sizes[0], c.put_threads, c.put_per_thread))
    for p in result.puts:
        console.print(f"    {p.label}, {size_label(p.size)}: {p.rate.per_s:,.1f} records/s")


def _diagnostics(result: RecordsResult, work: Path) -> None:
    sizes = result.config.sizes
    for size in sizes:
        result.micro_reads[size] = records_micro.blob_reads(work, size, 300)
    fresh = subprocess.run(
        [sys.executable, "-m", "benchmarks.records_micro", str(work), *map(str, sizes)],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True,
    )  # fmt: skip
    result.micro_reads_fresh = {int(k): v for k, v in json.loads(fresh.stdout).items()}
    result.micro_wrapping = records_micro.key_wrapping(1_000)


def _notes(result: RecordsResult) -> list[str]:
    notes = []
    r = result.release
    if r is not None:
        steps, warm = r.split_us, r.split_warm_us
        cpu = sum(v for k, v in warm.items() if k != WAIT)
        many = r.best_concurrent
        notes.append(
            f"Key release, one caller: waiting for the access event's batch to be durable is"
            f" {steps[WAIT]:,.0f} of the {sum(steps.values()):,.0f} us the steps add up to (the"
            " audit service seals a batch every batch_interval_ms, 100 ms), so one caller gets"
            f" ~{1e6 / sum(steps.values()):,.0f} releases/s whatever the CPU. Back to back, a"
            f" release costs {cpu:,.0f} us of CPU and I/O besides the wait: the decision"
            f" (AccessService.decide) {warm[DECIDE]:,.0f} us, HPKE (unwrap + wrap)"
            f" {warm[UNWRAP] + warm[WRAP]:,.0f} us, ledger and vault reads the rest. Concurrent"
            f" callers share batches (group commit): best {many.rate.per_s:,.0f}/s with"
            f" {many.threads} callers ({many.rate.count:,} releases in {many.batches} batches,"
            f" median latency {many.latency(0.5):,.0f} ms), against the pure"
            f" {r.pure.median_per_s:,.0f}/s in the same run."
        )
    for run in result.sizes:
        cpu = sum(run.us(run.store_steps[s]) for s in STORE_STEPS if "BlobStore" not in s)
        notes.append(
            f"{size_label(run.size)} store: the ratio is set by fsync latency. A bare store (one"
            f" fsync) took {run.us(run.bare_store):,.0f} us here, the CPU work of a medledger"
            f" store outside its blob put (seal, commitment, two wraps) {cpu:,.0f} us: slower"
            " fsyncs (I/O pressure from other work) raise the ratio, faster ones lower it."
        )
    return notes


def run(*, quick: bool, console: Console) -> RecordsResult:
    config = QUICK if quick else FULL
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-records-") as tmp:
        work = Path(tmp)
        result = RecordsResult(
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            mode="quick" if quick else "full",
            config=config,
            machine={
                **machine.describe(work),
                "cryptography": metadata.version("cryptography"),
                "openssl": openssl_backend.openssl_version_text(),
                "medledger_source": medledger_source(),
            },
        )
        console.print("setting up the demo node")
        with bench_node(work / "home") as bench:
            g = bench.node.genesis
            result.genesis = {"block_max_txs": g.block_max_txs,
                              "block_interval_ms": g.block_interval_ms}  # fmt: skip
            _store_fetch(result, bench, work, console)
            putter = Putter(bench)
            _puts(result, putter, console)
            console.print("key release: pure, served (one caller, concurrent), split")
            result.release = measure_release(
                bench, putter.put_records, pure=config.release_pure_calls,
                sequential=config.release_calls, threads=config.release_threads,
                per_thread=config.release_per_thread, split=config.release_split_calls,
                pin=config.pin_release_cpu, warmup_s=config.release_warmup_s,
            )  # fmt: skip
        console.print("diagnostics")
        _diagnostics(result, work / "micro")
    result.wall_seconds = time.monotonic() - began
    result.machine["contention_at_end"] = machine.contention()
    result.notes.extend(_notes(result))
    return result


def run_and_write(*, quick: bool, out: Path, console: Console) -> RecordsResult:
    """Run, write ``out/records.json`` and ``out/records.md``, print the targets."""
    result = run(quick=quick, console=console)
    targets = evaluate(result)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "records.json", out / "records.md"
    json_path.write_text(json.dumps(to_json(result, targets), indent=2) + "\n")
    md_path.write_text(render(result, targets))
    table = Table("target", "measured", "result", title="Targets (details in records.md)")
    for t in targets:
        table.add_row(t.goal, t.measured, "[green]met" if t.met else "[red]not met")
    console.print(table)
    console.print(f"wrote {json_path} and {md_path} ({result.wall_seconds:.0f} s)")
    return result


def main() -> None:
    args = _parse_args()
    run_and_write(quick=args.quick, out=args.out, console=Console())


if __name__ == "__main__":
    main()
