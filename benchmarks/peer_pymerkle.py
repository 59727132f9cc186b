"""The peer library: ``pymerkle`` (PyPI), fed the same batches.

``SqliteTree.append_entries`` stores (entry, leaf hash) rows in one transaction (SQLite's default
rollback journal with ``synchronous=FULL``: durable too) but builds no tree: interior nodes are
computed on demand by ``get_root`` from the leaf hashes, caching subtrees of >= 128 leaves. Our
append returns with the new tree head already computed, so the like-for-like peer figure is
``append_entries`` + ``get_root`` per batch; ``append_entries`` alone is reported beside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter

import pymerkle  # type: ignore[import-untyped]

from benchmarks.timing import Rate, timed_calls


class PymerkleSqliteAppender:
    """``pymerkle.SqliteTree``: append a batch, then compute the new root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = pymerkle.SqliteTree(str(path))
        self.root_seconds = 0.0
        self._root = b""

    def append(self, batch: Sequence[bytes]) -> None:
        self.tree.append_entries(batch)
        start = perf_counter()
        self._root = self.tree.get_root()
        self.root_seconds += perf_counter() - start

    def root(self) -> bytes:
        return self._root

    def sqlite_settings(self) -> dict[str, str]:
        cur = self.tree.con.cursor()
        return {
            "journal_mode": str(cur.execute("PRAGMA journal_mode").fetchone()),
            "synchronous": str(cur.execute("PRAGMA synchronous").fetchone()),
        }

    def disk_bytes(self) -> int:
        return self.path.stat().st_size

    def inclusion_proofs(
        self, size: int, count: int, rng: random.Random, advance: Callable[[int], object]
    ) -> Rate:
        """pymerkle's ``prove_inclusion`` (1-based index) at ``size``, random indices."""
        indices = [rng.randrange(size) + 1 for _ in range(count)]
        return timed_calls(
            indices, lambda i: self.tree.prove_inclusion(i, size), advance, chunk=100
        )

    def close(self) -> None:
        self.tree.close()


class PymerkleInmemoryAppender:
    """``pymerkle.InmemoryTree``: one Python node object per tree node, no durability."""

    def __init__(self) -> None:
        self.tree = pymerkle.InmemoryTree()
        self._root = b""

    def append(self, batch: Sequence[bytes]) -> None:
        self.tree.append_entries(batch)
        self._root = self.tree.get_root()

    def root(self) -> bytes:
        return self._root

    def close(self) -> None:
        self.tree = pymerkle.InmemoryTree()
