"""Compact range over [0, size): append a leaf in O(log n), root in O(log n).

The range holds one hash per set bit of ``size``: the roots of the perfect subtrees that the
binary decomposition of ``size`` yields, largest (leftmost) first. Appending merges equal-sized
neighbours like a binary counter carry. Every node that becomes complete is reported to an
optional visitor as ``(level, index, hash)`` -- that is how a store learns the hashes it keeps
(tile rows) without re-hashing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from medledger.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE, node_hash
from medledger.errors import InvalidInputError

Visitor = Callable[[int, int, bytes], None]


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
