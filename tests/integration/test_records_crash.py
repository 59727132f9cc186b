"""A kill -9 during a record put leaves the old state or the new one, never a mix.

A writer process (``records_put_writer.py``) opens a demo node and puts record versions in a
loop, printing ``PUT <record_id> <version>`` after each put returned. The test SIGKILLs it at a
random moment -- while Python starts or the node starts and reconciles, in the middle of a put
(encrypting, writing the blob, saving the keys, waiting for the anchor's block, marking it
anchored), or right after an acknowledgement -- then reopens the home (``open_node`` +
``Node.start``, which reconciles) and checks, every cycle:

1. every acknowledged put is readable by its patient, with its exact content;
2. every version the ledger holds has its anchored key material and ciphertext in the node,
   and the vault holds nothing the ledger does not: no pending versions, no extra versions;
3. every blob file on disk is referenced by an anchored vault version, or is collected by
   ``garbage_collect`` (with no grace period) -- and nothing referenced is collected.

After the last cycle the chain verifies from genesis. The kill schedule comes from a fixed seed,
so a failure names a cycle that can be replayed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from medledger.bootstrap import BLOBS_DIR, KEYS_DB_FILE, Node, open_node
from medledger.client import new_transaction
from medledger.core.access.gate import AccessRequest
from medledger.entrypoints.cli.demo import DEMO_PASSPHRASE, create_demo_home, load_demo_keys

WRITER = Path(__file__).with_name("records_put_writer.py")
SEED = 20251
CYCLES = 10
PATIENTS = ("patient-1", "patient-2")

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture


def _load_record_content() -> Callable[[str, int], bytes]:
    """The writer's ``record_content``, loaded from the script itself: one definition."""
    spec = importlib.util.spec_from_file_location("records_put_writer", WRITER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    record_content: Callable[[str, int], bytes] = module.record_content
    return record_content


record_content = _load_record_content()


# --- one crash ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KillPlan:
    """When to SIGKILL the writer: ``delay_s`` after it was started (``after_start``) or after
    it said ``START``; or ``delay_s`` after its ``after_puts``-th acknowledgement."""

    name: str
    delay_s: float
    after_puts: int = 0
    after_start: bool = False

    @staticmethod
    def draw(rng: random.Random) -> KillPlan:
        roll = rng.random()
        if roll < 0.2:  # while Python imports, open_node runs or start() reconciles
            return KillPlan("during startup", rng.uniform(0.0, 0.8), after_start=True)
        if roll < 0.6:  # inside the next put, at a random point of its ~0.2 s
            n = rng.randint(1, 5)
            return KillPlan(f"inside put {n + 1}", rng.uniform(0.0, 0.25), after_puts=n)
        return KillPlan("while putting", rng.uniform(0.05, 1.2))


@dataclass
class WriterReport:
    started: bool = False
    puts: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def parse(cls, lines: list[str]) -> WriterReport:
        report = cls()
        for line in lines:
            if not line.endswith("\n"):
                continue  # a line cut by the kill was never acknowledged
            word, *rest = line.split()
            if word == "START":
                report.started = True
            elif word == "PUT":
                report.puts.append((rest[0], int(rest[1])))
            else:
                raise AssertionError(f"writer printed an unknown line {line!r}")
        return report


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for_lines(lines: queue.Queue[str | None], seen: list[str], count: int) -> None:
    """Collect the writer's lines until ``count`` of them; fail if it dies or stalls first."""
    while len(seen) < count:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"the writer stalled for 30 s; it said {seen!r}") from None
        if line is None:
            lines.put(None)  # keep the end-of-output mark for the final drain
            raise AssertionError(f"the writer died before being killed; it said {seen!r}")
        seen.append(line)


def run_and_kill(
    home: Path, seed: int, patients: list[str], plan: KillPlan, stderr_path: Path
) -> WriterReport:
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(WRITER), str(home), str(seed), *patients],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as writer,
    ):
        assert writer.stdout is not None
        reader = threading.Thread(target=_pump, args=(writer.stdout, lines), daemon=True)
        reader.start()
        try:
            if not plan.after_start:
                _wait_for_lines(lines, seen, 1 + plan.after_puts)  # START, then n PUTs
            with contextlib.suppress(subprocess.TimeoutExpired):
                writer.wait(timeout=plan.delay_s)  # the one deliberate pause: the moment to kill
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


# --- what must hold after each crash -------------------------------------------------------
def _patient_of(record_id: str, patients: list[str]) -> str:
    return patients[int(record_id.split("-")[1])]


def _vault_rows(home: Path) -> dict[tuple[str, str, int], tuple[str, bool]]:
    """(patient, record id, version) -> (cid, anchored), straight from the vault's file."""
    with contextlib.closing(
        sqlite3.connect(f"file:{home / KEYS_DB_FILE}?mode=ro", uri=True)
    ) as conn:
        rows = conn.execute("SELECT patient, record_id, version, cid, anchored FROM versions")
        return {(p, r, int(v)): (str(c), bool(a)) for p, r, v, c, a in rows.fetchall()}


def _read(node: Node, patient: str, record_id: str, version: int) -> bytes:
    request = AccessRequest(patient, patient, record_id, "read", "PATRQT")
    return node.records.read(request, version, int(time.time() * 1000)).content


def check_after_crash(
    node: Node, home: Path, patients: list[str], acked: set[tuple[str, int]]
) -> None:
    # 1. Every acknowledged put survived, with its exact content.
    for record_id, version in sorted(acked):
        content = _read(node, _patient_of(record_id, patients), record_id, version)
        assert content == record_content(record_id, version), f"{record_id} v{version}"

    # 2. The ledger and the vault agree, version by version; nothing is left pending.
    assert node.vault.pending() == []
    on_ledger: dict[tuple[str, str, int], str] = {}
    for index, patient in enumerate(patients):
        for n in range(3):
            record_id = f"crash-{index}-{n}"
            raw = node.ledger.state_get(f"record/{patient}/{record_id}")
            head = 0 if raw is None else int(json.loads(raw)["version"])
            for version in range(1, head + 1):
                anchored = node.ledger.state_get(f"record/{patient}/{record_id}/{version}")
                assert anchored is not None
                on_ledger[patient, record_id, version] = json.loads(anchored)["cid"]
                content = _read(node, patient, record_id, version)
                assert content == record_content(record_id, version), f"{record_id} v{version}"
    vault = _vault_rows(home)
    assert vault == {key: (cid, True) for key, cid in on_ledger.items()}

    # 3. Blobs: every referenced one is there; everything else is garbage, and collected.
    referenced = {cid for cid, _ in vault.values()}
    stored = set(node.blobs.iter_cids())
    assert referenced <= stored
    deleted = node.blobs.garbage_collect(referenced, older_than_s=0, now=time.time() + 1)
    assert {d for d in deleted if not d.startswith(".")} == stored - referenced
    assert set(node.blobs.iter_cids()) == referenced
    leftovers = [p.name for p in (home / BLOBS_DIR).rglob("*") if p.is_file()]
    assert sorted(leftovers) == sorted(referenced)


def _register_patients(home: Path) -> list[str]:
    keys = load_demo_keys(home)
    node = open_node(home, passphrase=DEMO_PASSPHRASE)
    node.start()
    try:
        for name in PATIENTS:
            now = int(time.time())
            stx = new_transaction(
                keys["hospital"],
                network=node.genesis.network,
                tx_type="participant.register",
                payload={"did": keys[name].did, "kind": "patient"},
                now_s=now,
            )
            node.ledger.submit(stx.wire, now)
            assert node.ledger.wait(stx.tx_id, 10.0).ok
    finally:
        node.close()
    return [keys[name].did for name in PATIENTS]


def test_kill_9_during_puts_leaves_old_or_new_state_never_a_mix(
    tmp_path: Path, medledger_cli: MedledgerCli
):
    home = tmp_path / "home"
    create_demo_home(home, port=8000)
    patients = _register_patients(home)
    rng = random.Random(SEED)
    acked: set[tuple[str, int]] = set()
    plans = []
    for cycle in range(CYCLES):
        plan = KillPlan.draw(rng)
        plans.append(plan.name)
        seed = rng.randrange(2**32)
        report = run_and_kill(home, seed, patients, plan, tmp_path / "writer.stderr")
        acked.update(report.puts)
        node = open_node(home, passphrase=DEMO_PASSPHRASE)
        try:
            node.start()
            check_after_crash(node, home, patients, acked)
        except Exception as e:
            raise AssertionError(
                f"cycle {cycle} (kill {plan.name}, writer seed {seed}): {e}"
            ) from e
        finally:
            node.close()
    assert len(acked) >= 5, f"too few puts were acknowledged to mean much: {plans}"
    result = medledger_cli("chain", "verify", "--home", str(home))
    assert result.returncode == 0, result.stderr
