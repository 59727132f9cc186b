"""When did each submitted transaction commit? A watcher thread, block by block.

The node wakes a transaction's waiters once its block and the block's log entries are durable
(``LedgerNode.wait``). The watcher takes the submitted transaction ids in submission order,
waits for the first one not yet seen committed, stamps the time, and reads that block's
transactions (``LedgerNode.block_txs``): all of them committed at that instant. So it costs one
wait and two small queries per block, not per transaction, and its stamps are late by at most a
thread switch. Ordering is FIFO, so submission order is commit order.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from time import perf_counter

from medledger.services.ledger import LedgerNode

_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class BlockCommit:
    height: int
    txs: int
    at: float  # perf_counter() when the watcher saw it committed


@dataclass(slots=True)
class Commits:
    """What the watcher saw: per transaction, when it was submitted and when it committed."""

    submitted_at: dict[bytes, float] = field(default_factory=dict)
    committed_at: dict[bytes, float] = field(default_factory=dict)
    outcome: dict[bytes, str | None] = field(default_factory=dict)  # None = ok, else reason
    blocks: list[BlockCommit] = field(default_factory=list)
    missing: int = 0  # never committed within the wait

    @property
    def ok(self) -> int:
        return sum(1 for t in self.submitted_at if t in self.outcome and self.outcome[t] is None)

    def failed(self) -> dict[str, int]:
        """Transactions of this phase that committed with ``ok`` false, by reason."""
        out: dict[str, int] = {}
        for t in self.submitted_at:
            reason = self.outcome.get(t)
            if reason is not None:
                out[reason] = out.get(reason, 0) + 1
        return out

    def latencies_ms(self) -> list[float]:
        return sorted(
            (self.committed_at[t] - s) * 1000
            for t, s in self.submitted_at.items()
            if t in self.committed_at
        )

    @property
    def last_commit(self) -> float:
        return max(b.at for b in self.blocks)


class CommitWatcher:
    """Stamps commit times of the transactions handed to ``submitted`` (thread-safe)."""

    def __init__(self, ledger: LedgerNode) -> None:
        self._ledger = ledger
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.commits = Commits()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)
        self._thread.start()

    def submitted(self, tx_id: bytes, at: float) -> None:
        self.commits.submitted_at[tx_id] = at
        self._queue.put(tx_id)

    def finish(self) -> Commits:
        """Wait until every submitted transaction committed (or timed out)."""
        self._queue.put(None)
        self._thread.join()
        return self.commits

    def _run(self) -> None:
        c = self.commits
        while (tx_id := self._queue.get()) is not None:
            if tx_id in c.committed_at:
                continue
            status = self._ledger.wait(tx_id, _WAIT_S)
            at = perf_counter()
            if status.status != "committed" or status.height is None:
                c.missing += 1
                continue
            txs = self._ledger.block_txs(status.height)
            c.blocks.append(BlockCommit(status.height, len(txs), at))
            for t in txs:
                c.committed_at[t.tx_id] = at
                c.outcome[t.tx_id] = None if t.ok else (t.reason or "?")
