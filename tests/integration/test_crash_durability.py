"""A kill -9 at any moment leaves a log that verifies and holds every acknowledged entry.

A writer process (``crash_writer.py``) appends random-size batches to a real node home and
reports each ``append`` and checkpoint after it returns. The test SIGKILLs it at a random
moment -- while it starts and opens the database, while it appends, or right after it
acknowledged something -- then reopens the same home and checks, every cycle:

1. the log holds at least every acknowledged entry, each with its exact bytes, and every
   stored entry is one the writer wrote (nothing torn, nothing invented);
2. ``verify_stored_log`` re-derives tiles, compact range and roots and finds no inconsistency;
3. the newest signed checkpoint is at least as large as every acknowledged one;
4. the log still appends and signs after the crash.

The kill schedule comes from a fixed seed, so a failure names a cycle that can be replayed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from medledger.bootstrap import PASSPHRASE_ENV, Node, init_home, open_node
from medledger.services.log_audit import verify_stored_log

WRITER = Path(__file__).with_name("crash_writer.py")
ORIGIN = "crash.medledger.test/log"
SEED = 9162
PASSPHRASE = "crash-test-passphrase"

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture


def _load_entry_bytes() -> Callable[[int], bytes]:
    """The writer's ``entry_bytes``, loaded from the script itself: one definition of content."""
    spec = importlib.util.spec_from_file_location("crash_writer", WRITER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry_bytes: Callable[[int], bytes] = module.entry_bytes
    return entry_bytes


entry_bytes = _load_entry_bytes()


# --- one crash ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KillPlan:
    """When to SIGKILL the writer: ``delay_s`` after it started (``after_start``) or after it
    said ``START``; or, with ``after_events``, right after reading that many ACK/CKPT lines."""

    name: str
    delay_s: float = 0.0
    after_events: int = 0
    after_start: bool = False

    @staticmethod
    def draw(rng: random.Random) -> KillPlan:
        roll = rng.random()
        if roll < 0.15:  # while Python starts, or while open_node recovers the WAL
            return KillPlan("during startup", delay_s=rng.uniform(0.0, 0.1), after_start=True)
        if roll < 0.55:  # right after an acknowledgement: in the next append or signing
            n = rng.randint(1, 25)
            return KillPlan(f"right after event {n}", after_events=n)
        return KillPlan("while appending", delay_s=rng.uniform(0.02, 0.15))


@dataclass
class WriterReport:
    """What the killed writer said before it died."""

    start: int | None = None
    acked: list[tuple[int, int]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)

    @property
    def acked_end(self) -> int:
        return max((first + count for first, count in self.acked), default=0)

    @classmethod
    def parse(cls, lines: list[str]) -> WriterReport:
        report = cls()
        for line in lines:
            if not line.endswith("\n"):
                continue  # a line cut by the kill was never acknowledged
            word, *numbers = line.split()
            values = [int(n) for n in numbers]
            if word == "START":
                report.start = values[0]
            elif word == "ACK":
                report.acked.append((values[0], values[1]))
            elif word == "CKPT":
                report.checkpoints.append(values[0])
            else:
                raise AssertionError(f"writer printed an unknown line {line!r}")
        return report


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_and_kill(home: Path, seed: int, plan: KillPlan, stderr_path: Path) -> WriterReport:
    """Start the writer, SIGKILL it as ``plan`` says, and return every line it got out."""
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(WRITER), str(home), str(seed)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, PASSPHRASE_ENV: PASSPHRASE},
        ) as writer,
    ):
        assert writer.stdout is not None
        reader = threading.Thread(target=_pump, args=(writer.stdout, lines), daemon=True)
        reader.start()
        try:
            _wait_for_kill_moment(writer, plan, lines, seen)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            reader.join(timeout=30)
        assert not reader.is_alive(), "the writer's stdout did not close after SIGKILL"
    while (line := lines.get_nowait()) is not None:
        seen.append(line)
    if writer.returncode != -signal.SIGKILL:
        raise AssertionError(
            f"the writer exited by itself ({writer.returncode}):\n{stderr_path.read_text()}"
        )
    return WriterReport.parse(seen)


def _wait_for_kill_moment(
    writer: subprocess.Popen[str], plan: KillPlan, lines: queue.Queue[str | None], seen: list[str]
) -> None:
    if not plan.after_start:
        _wait_for_lines(lines, seen, lambda: any(s.startswith("START") for s in seen))
    if plan.after_events:
        _wait_for_lines(
            lines, seen, lambda: sum(not s.startswith("START") for s in seen) >= plan.after_events
        )
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        writer.wait(timeout=plan.delay_s)  # the one deliberate pause: the moment to kill


def _wait_for_lines(
    lines: queue.Queue[str | None], seen: list[str], done: Callable[[], bool]
) -> None:
    """Collect the writer's lines until ``done()``; fail if it dies or stalls first."""
    while not done():
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"the writer stalled for 30 s; it said {seen!r}") from None
        if line is None:
            lines.put(None)  # keep the end-of-output mark for the final drain
            raise AssertionError(f"the writer died before being killed; it said {seen!r}")
        seen.append(line)


# --- what must hold after each crash -------------------------------------------------------
@dataclass
class Expectations:
    """What the writers acknowledged so far, across all cycles."""

    size: int = 0  # the log size the parent left behind after the previous cycle
    acked_end: int = 0
    acked_checkpoint: int = 0


def check_after_crash(
    node: Node, report: WriterReport, expect: Expectations, *, audit: bool
) -> None:
    if report.start is not None:
        assert report.start == expect.size, (
            f"the writer opened a log of size {report.start}, it was left at {expect.size}"
        )
    expect.acked_end = max(expect.acked_end, report.acked_end)
    expect.acked_checkpoint = max([expect.acked_checkpoint, *report.checkpoints])

    # 1. Every acknowledged entry survived, and every stored entry is one the writer wrote.
    size = node.log.size()
    assert size >= expect.acked_end, f"acknowledged up to {expect.acked_end}, log holds {size}"
    for index, data in node.store.iter_entries(expect.size):
        assert data == entry_bytes(index), f"entry {index} has the wrong bytes"
    # 2. Everything stored re-derives from the entries.
    if audit:
        verify_stored_log(node.store, node.settings.origin, node.log.verifier)
    # 3. An acknowledged checkpoint is never lost.
    latest = node.store.latest_checkpoint()
    signed = latest.size if latest is not None else 0
    assert signed >= expect.acked_checkpoint, (
        f"checkpoint {expect.acked_checkpoint} was acknowledged, the newest stored is {signed}"
    )
    # 4. The log appends and signs again, consistently with what was signed before the crash.
    assert node.log.append([entry_bytes(size)]) == size
    checkpoint = node.log.checkpoint_if_grown()
    assert checkpoint is not None
    assert checkpoint.size == size + 1
    expect.size = size + 1


def run_crash_cycles(home: Path, tmp: Path, *, cycles: int, audit_every: int) -> Expectations:
    rng = random.Random(SEED)
    expect = Expectations()
    for cycle in range(cycles):
        plan = KillPlan.draw(rng)
        seed = rng.randrange(2**32)
        report = run_and_kill(home, seed, plan, tmp / "writer.stderr")
        node = open_node(home, passphrase=PASSPHRASE)
        try:
            audit = (cycle + 1) % audit_every == 0 or cycle == cycles - 1
            check_after_crash(node, report, expect, audit=audit)
        except Exception as e:
            raise AssertionError(
                f"cycle {cycle} (kill {plan.name}, writer seed {seed}): {e}"
            ) from e
        finally:
            node.close()
    return expect


# --- the tests ------------------------------------------------------------------------------
def _check_final_log(home: Path, expect: Expectations, medledger_cli: MedledgerCli) -> None:
    node = open_node(home, passphrase=PASSPHRASE)
    try:
        assert node.log.size() == expect.size
        for index, data in node.store.iter_entries():
            assert data == entry_bytes(index), f"entry {index} has the wrong bytes"
    finally:
        node.close()
    result = medledger_cli("log", "verify", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert f"OK {expect.size} entries" in result.stdout


def test_kill_9_at_any_moment_loses_no_acknowledged_entry(
    tmp_path: Path, medledger_cli: MedledgerCli
) -> None:
    home = tmp_path / "home"
    init_home(home, origin=ORIGIN, passphrase=PASSPHRASE)
    expect = run_crash_cycles(home, tmp_path, cycles=25, audit_every=1)
    assert expect.acked_end > 0, "no kill landed after an acknowledged append"
    _check_final_log(home, expect, medledger_cli)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kill_9_soak_loses_no_acknowledged_entry(
    tmp_path: Path, medledger_cli: MedledgerCli
) -> None:
    home = tmp_path / "home"
    init_home(home, origin=ORIGIN, passphrase=PASSPHRASE)
    # A full audit every cycle would be quadratic in the growing log; the cheap checks
    # (acknowledged entries, their bytes, checkpoints, append after reopen) run every cycle.
    expect = run_crash_cycles(home, tmp_path, cycles=300, audit_every=10)
    _check_final_log(home, expect, medledger_cli)
