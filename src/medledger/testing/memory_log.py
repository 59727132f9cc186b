"""An in-memory log for tests of the Merkle core: it keeps every node the compact range's
visitor reports and resolves proof plans from them (no storage, no tiles)."""

from __future__ import annotations

from collections.abc import Sequence

from medledger.core.merkle import (
    CompactRange,
    NodeId,
    ProofPlan,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    root_plan,
)
from medledger.core.merkle.plan import root_from_hashes


class NodeStore:
    """Every complete node by id; a node reported twice is an error (the visitor's contract)."""

    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        self.range = CompactRange()
        self.nodes: dict[NodeId, bytes] = {}
        for entry in entries:
            self.append(entry)

    def append(self, entry: bytes) -> None:
        self.range.append(leaf_hash(entry), self._visit)

    def _visit(self, level: int, index: int, node: bytes) -> None:
        node_id = NodeId(level, index)
        if node_id in self.nodes:
            raise AssertionError(f"{node_id} reported twice")
        self.nodes[node_id] = node

    def fetch(self, plan: ProofPlan) -> list[bytes]:
        return plan.assemble([self.nodes[n] for n in plan.nodes])

    def root(self, size: int) -> bytes:
        return root_from_hashes([self.nodes[n] for n in root_plan(size).nodes])

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.fetch(inclusion_plan(index, size))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return self.fetch(consistency_plan(size1, size2))
