"""The embedded node under load, in this process: a real home on disk, the real block builder.

A node home is made with ``init_home`` (genesis: the cast's authority, the run's block limits)
and opened with ``open_node``; ``Node.start`` runs the block builder on its own thread, exactly
as ``medledger serve`` does. Transactions go in through ``LedgerNode.submit(wire, now_s)`` --
intake: decode, checks, one signature verification, replay checks, hand-off to ordering -- the
call the HTTP route makes; a ``CommitWatcher`` stamps their commits.

- ``push``: every transaction as fast as intake takes them (the maximum throughput);
- ``open_loop``: one transaction every ``1/rate`` seconds on a fixed schedule, whatever the
  node does (open loop: a slow commit never delays the next submission).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from benchmarks.ledger_commits import Commits, CommitWatcher
from benchmarks.ledger_config import LedgerConfig
from benchmarks.ledger_workload import Cast
from medledger.bootstrap import Node, init_home, open_node
from medledger.core.ledger.tx import SignedTransaction

PASSPHRASE = "bench-ledger-passphrase"
ORIGIN = "bench.medledger.example/ledger"


def create_home(home: Path, cast: Cast, config: LedgerConfig, *, port: int = 8000) -> None:
    genesis = cast.genesis(config.block_max_txs, config.block_interval_ms)
    init_home(
        home,
        passphrase=PASSPHRASE,
        origin=ORIGIN,
        port=port,
        genesis=genesis,
        node_key=cast.authority,
    )


@contextlib.contextmanager
def running_node(home: Path) -> Iterator[Node]:
    """The node of ``home`` with its block builder running; closed on exit."""
    node = open_node(home, passphrase=PASSPHRASE)
    try:
        node.start()
        yield node
    finally:
        node.close()


@dataclass(frozen=True, slots=True)
class Run:
    """One phase's submissions and what became of them."""

    txs: int
    started: float  # perf_counter() of the first submission
    intake_seconds: float  # first submission to the return of the last one
    commits: Commits
    behind_schedule_ms: float = 0.0  # open loop: the latest a submission started, vs plan

    @property
    def seconds(self) -> float:
        """First submission to the last commit."""
        return self.commits.last_commit - self.started


def push(node: Node, txs: Sequence[SignedTransaction]) -> Run:
    """Submit every transaction back to back; return when all committed."""
    watcher = CommitWatcher(node.ledger)
    submit = node.ledger.submit
    started = perf_counter()
    for stx in txs:
        at = perf_counter()
        status = submit(stx.wire, int(time.time()))
        watcher.submitted(status.tx_id, at)
    intake = perf_counter() - started
    return Run(len(txs), started, intake, watcher.finish())


def open_loop(node: Node, txs: Sequence[SignedTransaction], rate_per_s: float) -> Run:
    """Submit transaction i at ``start + i / rate_per_s``; return when all committed."""
    watcher = CommitWatcher(node.ledger)
    submit = node.ledger.submit
    behind = 0.0
    started = perf_counter()
    for i, stx in enumerate(txs):
        planned = started + i / rate_per_s
        delay = planned - perf_counter()
        if delay > 0:
            time.sleep(delay)
        at = perf_counter()
        behind = max(behind, at - planned)
        status = submit(stx.wire, int(time.time()))
        watcher.submitted(status.tx_id, at)
    intake = perf_counter() - started
    return Run(len(txs), started, intake, watcher.finish(), behind_schedule_ms=behind * 1000)
