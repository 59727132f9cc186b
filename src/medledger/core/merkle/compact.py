"""Compact range over [0, size): append a leaf in O(log n), root in O(log n).

The range holds one hash per set bit of ``size``: the roots of the perfect subtrees that the
binary decomposition of ``size`` yields, largest (leftmost) first. Appending merges equal-sized
neighbours like a binary counter carry. Every node that becomes complete is reported to an
optional visitor as ``(level, index, hash)`` -- that is how a store learns the hashes it keeps
(tile rows) without re-hashing anything. ``extend_levels`` appends a whole batch level by level
and reports the same nodes grouped into one run per level, which a store can write in slices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from medledger.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, node_hash
from medledger.errors import InvalidInputError

Visitor = Callable[[int, int, bytes], None]
#: ``(level, index of the first node, hashes of consecutive nodes)``: one level of a batch.
LevelRun = tuple[int, int, list[bytes]]


class CompactRange:
    """The right edge of an RFC 9162 tree: enough to append and to compute the root."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise InvalidInputError("size must be >= 0", parameter="size")
        if len(hashes) != size.bit_count():
            raise InvalidInputError(
                f"a compact range of size {size} holds {size.bit_count()} hashes, "
                f"got {len(hashes)}",
                parameter="hashes",
            )
        if any(len(h) != HASH_SIZE for h in hashes):
            raise InvalidInputError("every hash must be 32 bytes", parameter="hashes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree roots, largest first (one per set bit of ``size``)."""
        return tuple(self._hashes)

    def append(self, leaf: bytes, visit: Visitor | None = None) -> None:
        """Append one leaf hash; report it and every node it completes to ``visit``."""
        index = self._size
        if visit is not None:
            visit(0, index, leaf)
        h = leaf
        level = 0
        # Each trailing 1-bit of the old size is a perfect subtree of the same height to merge.
        while (index >> level) & 1:
            h = node_hash(self._hashes.pop(), h)
            level += 1
            if visit is not None:
                visit(level, index >> level, h)
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes], visit: Visitor | None = None) -> None:
        for leaf in leaves:
            self.append(leaf, visit)

    def extend_levels(self, leaves: Sequence[bytes]) -> list[LevelRun]:
        """Append a batch of leaf hashes; return the nodes it completes, one run per level.

        The result holds exactly the nodes that ``extend`` would report to a visitor, grouped by
        level (lowest first) and in index order within a level: ``(level, start, hashes)`` means
        nodes ``start, start + 1, ...`` at that level. The batch is hashed a level at a time:

        1. The run at level 0 is the leaves themselves, starting at index ``size``.
        2. If a run starts at an odd index, its left neighbour is complete already and is the
           compact range's hash for that level (the lowest one not consumed yet): carry it in
           front of the run, so that the run pairs up from an even index.
        3. Hash neighbours pairwise into the run one level up, which starts at ``start // 2``.
           A trailing unpaired node is the new range's hash for this level.
        4. Stop at the first empty run; the range's hashes above that level are unchanged.
        """
        sha256 = hashlib.sha256
        edge = self._hashes.copy()  # the range changes only once every level is hashed
        new_edge: list[bytes] = []  # trailing unpaired nodes, lowest level first
        runs: list[LevelRun] = []
        level, start, run = 0, self._size, list(leaves)
        while run:
            runs.append((level, start, run))
            if start & 1:
                run = [edge.pop(), *run]
            if len(run) & 1:
                new_edge.append(run[-1])
            pairs = zip(run[::2], run[1::2], strict=False)  # drops the unpaired node
            # node_hash inlined: one call less per node on the append hot path.
            run = [sha256(NODE_PREFIX + left + right).digest() for left, right in pairs]
            level, start = level + 1, start >> 1
        edge.extend(reversed(new_edge))
        self._hashes = edge
        self._size += len(leaves)
        return runs

    def root(self) -> bytes:
        """MTH over [0, size): fold the perfect subtrees right to left."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)
