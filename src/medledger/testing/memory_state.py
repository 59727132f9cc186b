"""The state tree in memory: a dict ``NodeStore`` and a contract state on top of it.

``MemoryNodeStore`` holds the current tree's nodes by position and applies an
``UpdateResult``; ``MemoryState`` mirrors ``medledger.adapters.sqlite_state.SqliteState``
(``get``, ``root``, ``stage``, ``write_staged``, ``prove``) so the core and the ledger can be
tested with no disk. Not thread-safe; nothing is durable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medledger.core.state.smt import (
    EMPTY_STATE_ROOT,
    Node,
    NodeKey,
    StateProof,
    UpdateResult,
    hash_key,
    hash_value,
    prove,
    update,
)
from medledger.errors import ConflictError


class MemoryNodeStore:
    """A ``NodeStore`` over a dict; ``reads`` counts the positions asked for."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, Node] = {}
        self.root = EMPTY_STATE_ROOT
        self.reads = 0

    def get(self, key: NodeKey) -> Node | None:
        self.reads += 1
        return self.nodes.get(key)

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, Node]:
        self.reads += len(keys)
        nodes = self.nodes
        return {k: nodes[k] for k in keys if k in nodes}

    def apply(self, result: UpdateResult) -> None:
        """Write what ``update`` computed: delete, then put, then move the root."""
        for key in result.deletes:
            del self.nodes[key]
        self.nodes.update(result.puts)
        self.root = result.root


class MemoryState:
    """Contract state ``str -> bytes`` with its state tree, staged then written like SQLite."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.tree = MemoryNodeStore()
        self._staged: tuple[bytes, dict[str, bytes | None], UpdateResult] | None = None

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def root(self) -> bytes:
        return self.tree.root

    def stage(self, writes: Mapping[str, bytes | None]) -> bytes:
        """Compute the root after ``writes`` without applying them; return it."""
        changes = {hash_key(k): None if v is None else hash_value(v) for k, v in writes.items()}
        result = update(self.tree, self.tree.root, changes)
        self._staged = (self.tree.root, dict(writes), result)
        return result.root

    def write_staged(self) -> Mapping[str, bytes | None]:
        """Apply what the last ``stage`` computed; return the writes."""
        if self._staged is None:
            raise ConflictError("nothing is staged")
        base, writes, result = self._staged
        self._staged = None
        if base != self.tree.root:
            raise ConflictError("the state changed since it was staged: stage again")
        for key, value in writes.items():
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
        self.tree.apply(result)
        return writes

    def prove(self, key: str) -> tuple[bytes | None, StateProof]:
        return self.values.get(key), prove(self.tree, self.tree.root, hash_key(key))
