"""A transaction's cost, split: intake, then block building part by part, on one thread.

On a node whose ledger is started but whose builder thread is not: submit N transactions
(``LedgerNode.submit``, timed), then cut and build blocks of ``block_max_txs`` until the queue
is empty (``next_batch`` + ``build_block``, timed). During the build, the node's own objects
are wrapped (instance attributes, removed afterwards) to time its parts:

- the sparse Merkle update: ``SqliteState.stage``;
- the state and tree rows: ``SqliteState.write_staged``;
- the rest of ``SqliteLedger.commit_block``: block and transaction rows, COMMIT, fsync;
- the transparency log: ``TransparencyLog.preview`` + ``append``;
- everything else: contracts and their state reads, roots, the header and its signature.

Intake + build per transaction bounds the throughput of a node whose intake and block
builder share one GIL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from medledger.bootstrap import Node
from medledger.core.ledger.tx import SignedTransaction

SMT = "sparse Merkle update (`SqliteState.stage`)"
ROWS = "state + tree rows (`SqliteState.write_staged`)"
COMMIT = "rest of `commit_block` (block + tx rows, COMMIT, fsync)"
LOG = "transparency log (`preview` + `append`)"
REST = "the rest (contracts + state reads, roots, header, signature)"


def intake(node: Node, txs: Sequence[SignedTransaction]) -> None:
    for stx in txs:
        node.ledger.submit(stx.wire, int(time.time()))


def build(node: Node) -> int:
    """Build blocks until the ordering queue is empty; the number of blocks."""
    blocks = 0
    while batch := node.ordering.next_batch(node.genesis.block_max_txs, 0.0):
        node.ledger.build_block(batch, int(time.time() * 1000))
        blocks += 1
    return blocks


def settle(node: Node, txs: Sequence[SignedTransaction]) -> None:
    """Submit and build ``txs`` (the setup) on a node without the builder thread."""
    intake(node, txs)
    build(node)


@dataclass(frozen=True, slots=True)
class Split:
    state_keys: int  # before the transactions
    txs: int
    blocks: int
    intake_us: float  # per transaction
    build_us: float
    parts_us: dict[str, float]  # of the build, per transaction

    @property
    def bound_per_s(self) -> float:
        """The throughput if intake and building ran back to back on one core."""
        return 1e6 / (self.intake_us + self.build_us)

    def as_json(self) -> dict[str, Any]:
        return {
            "state_keys": self.state_keys,
            "txs": self.txs,
            "blocks": self.blocks,
            "intake_us_per_tx": round(self.intake_us, 1),
            "build_us_per_tx": round(self.build_us, 1),
            "build_parts_us_per_tx": {k: round(v, 1) for k, v in self.parts_us.items()},
            "bound_per_s": round(self.bound_per_s, 1),
        }


@contextlib.contextmanager
def _timing(targets: dict[str, list[tuple[object, str]]]) -> Iterator[dict[str, float]]:
    """Wrap ``obj.method`` for each (obj, method) under a label; yield the seconds per label."""
    seconds = dict.fromkeys(targets, 0.0)

    def wrap(label: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[label] += perf_counter() - began

        return timed

    wrapped = [(obj, name) for pairs in targets.values() for obj, name in pairs]
    for label, pairs in targets.items():
        for obj, name in pairs:
            setattr(obj, name, wrap(label, getattr(obj, name)))
    try:
        yield seconds
    finally:
        for obj, name in wrapped:
            delattr(obj, name)


def split(node: Node, txs: Sequence[SignedTransaction]) -> Split:
    n = len(txs)
    keys = sum(1 for _ in node.ledger_store.iter_state())
    began = perf_counter()
    intake(node, txs)
    intake_s = perf_counter() - began
    state, store, log = node.ledger_store.state, node.ledger_store, node.log
    targets: dict[str, list[tuple[object, str]]] = {
        SMT: [(state, "stage")],
        ROWS: [(state, "write_staged")],
        COMMIT: [(store, "commit_block")],
        LOG: [(log, "preview"), (log, "append")],
    }
    with _timing(targets) as seconds:
        began = perf_counter()
        blocks = build(node)
        build_s = perf_counter() - began
    seconds[COMMIT] -= seconds[ROWS]  # write_staged runs inside commit_block
    seconds[REST] = build_s - sum(seconds.values())
    return Split(
        state_keys=keys,
        txs=n,
        blocks=blocks,
        intake_us=intake_s / n * 1e6,
        build_us=build_s / n * 1e6,
        parts_us={k: v / n * 1e6 for k, v in seconds.items()},
    )
