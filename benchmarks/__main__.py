"""``python -m benchmarks [--quick] [--only log|ledger|records|consent|audit|fhir]``: run the
log suite, the ledger benchmark, the off-chain records benchmark, the consent decision
benchmark, the access-event benchmark and the FHIR API benchmark; write
results/{log,ledger,records,consent,audit,fhir}.{json,md}."""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from benchmarks import (
    audit_bench,
    consent_bench,
    fhir_bench,
    ledger,
    ledger_targets,
    machine,
    records_bench,
    report,
)
from benchmarks.config import FULL, QUICK
from benchmarks.ledger_config import FULL as LEDGER_FULL
from benchmarks.ledger_config import QUICK as LEDGER_QUICK
from benchmarks.results import SuiteResult
from benchmarks.suite import run_suite
from benchmarks.targets import Target, evaluate

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("log", "ledger", "records", "consent", "audit", "fhir")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="10^4 entries, a few thousand transactions (smoke)"
    )
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        help="run one benchmark (default: all of them)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    return parser.parse_args()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _targets_table(targets: list[Target], where: str) -> Table:
    table = Table("target", "measured", "result", title=f"Targets (details in {where})")
    for t in targets:
        table.add_row(t.goal, t.measured, "[green]met" if t.met else "[red]not met")
    return table


def _run_log(args: argparse.Namespace, console: Console) -> None:
    config = QUICK if args.quick else FULL
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        work = Path(tmp)
        result = SuiteResult(
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            mode="quick" if args.quick else "full",
            config=config,
            machine=machine.describe(work),
        )
        with _progress(console) as progress:
            run_suite(result, progress, work)
    result.wall_seconds = time.monotonic() - began
    result.machine["contention_at_end"] = machine.contention()
    json_path, md_path = report.write(result, args.out)
    console.print(_targets_table(evaluate(result), "log.md"))
    console.print(f"wrote {json_path} and {md_path} ({result.wall_seconds:.0f} s)")


def _run_ledger(args: argparse.Namespace, console: Console) -> None:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medledger-bench-ledger-") as tmp:
        work = Path(tmp)
        result = ledger.new_result(
            LEDGER_QUICK if args.quick else LEDGER_FULL,
            mode="quick" if args.quick else "full",
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            work=work,
        )
        ledger.run_ledger(result, work, console.print)
    result.wall_seconds = time.monotonic() - began
    result.machine["contention_at_end"] = machine.contention()
    json_path, md_path = ledger.write(result, args.out)
    console.print(_targets_table(ledger_targets.evaluate(result), "ledger.md"))
    console.print(f"wrote {json_path} and {md_path} ({result.wall_seconds:.0f} s)")


def main() -> None:
    args = _parse_args()
    console = Console()
    if args.only in (None, "log"):
        _run_log(args, console)
    if args.only in (None, "ledger"):
        _run_ledger(args, console)
    if args.only in (None, "records"):
        records_bench.run_and_write(quick=args.quick, out=args.out, console=console)
    if args.only in (None, "consent"):
        consent_bench.run_and_write(quick=args.quick, out=args.out, console=console)
    if args.only in (None, "audit"):
        audit_bench.run_and_write(quick=args.quick, out=args.out, console=console)
    if args.only in (None, "fhir"):
        fhir_bench.run_and_write(quick=args.quick, out=args.out, console=console)


main()
