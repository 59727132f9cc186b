"""``medledger chain verify``, timed: the replay of a node's chain into a fresh state.

In process, exactly as the CLI command wires it: the ledger and log opened read-only, each in
one read snapshot; a ``ScratchState`` on a new SQLite file in a temp dir; ``verify_chain`` with
the default contracts (every header, proposer signature, transaction signature, contract
outcome, root and log entry); then ``verify_live_state`` (the node's state equals the replay's),
timed apart. The CLI itself is also run once as a subprocess for its wall time (interpreter
start and imports included).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from medledger.adapters.sqlite_ledger import SqliteLedger, iter_state_rows
from medledger.adapters.sqlite_log import SqliteLog
from medledger.adapters.sqlite_state import ScratchState
from medledger.bootstrap import LEDGER_DB_FILE, LOG_DB_FILE, load_genesis
from medledger.core.ledger.contracts import default_contracts
from medledger.core.ledger.runtime import Runtime
from medledger.services.chain_audit import verify_chain, verify_live_state


@dataclass(frozen=True, slots=True)
class ReplayRun:
    blocks: int
    txs: int
    replay_seconds: float  # verify_chain
    live_state_seconds: float  # verify_live_state
    cli_seconds: float  # `medledger chain verify` as a subprocess, wall time


def replay(home: Path) -> ReplayRun:
    genesis = load_genesis(home)
    ledger = SqliteLedger(home / LEDGER_DB_FILE, readonly=True)
    log_store = SqliteLog(home / LOG_DB_FILE, readonly=True)
    try:
        with tempfile.TemporaryDirectory(prefix="medledger-bench-replay-") as scratch_dir:
            conn = sqlite3.connect(Path(scratch_dir) / "replay.db", isolation_level=None)
            try:
                with ledger.snapshot(), log_store.snapshot():
                    began = perf_counter()
                    report = verify_chain(
                        ledger, genesis, Runtime(default_contracts()), ScratchState(conn), log_store
                    )
                    replayed = perf_counter()
                    verify_live_state(
                        ledger.state_root(),
                        ledger.iter_state(),
                        report.state_root,
                        iter_state_rows(conn),
                    )
                    checked = perf_counter()
            finally:
                conn.close()
    finally:
        ledger.close()
        log_store.close()
    return ReplayRun(
        blocks=report.height + 1,
        txs=report.transactions,
        replay_seconds=replayed - began,
        live_state_seconds=checked - replayed,
        cli_seconds=_cli_seconds(home),
    )


def _cli_seconds(home: Path) -> float:
    command = [sys.executable, "-m", "medledger.entrypoints.cli", "chain", "verify",
               "--home", str(home)]  # fmt: skip
    began = perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"medledger chain verify failed: {done.stderr.decode()[-2000:]}")
    return seconds
