"""``python -m benchmarks [--quick]``: run the suite, write results/log.json and results/log.md."""

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

from benchmarks import machine, report
from benchmarks.config import FULL, QUICK
from benchmarks.results import SuiteResult
from benchmarks.suite import run_suite
from benchmarks.targets import evaluate

RESULTS = Path(__file__).resolve().parent / "results"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^4 entries only (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where log.json/log.md go")
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


def _targets_table(result: SuiteResult) -> Table:
    table = Table("target", "measured", "result", title="Targets (details in log.md)")
    for t in evaluate(result):
        table.add_row(t.goal, t.measured, "[green]met" if t.met else "[red]not met")
    return table


def main() -> None:
    args = _parse_args()
    console = Console()
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
    console.print(_targets_table(result))
    console.print(f"wrote {json_path} and {md_path} ({result.wall_seconds:.0f} s)")


main()
