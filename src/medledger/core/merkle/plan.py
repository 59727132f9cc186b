"""Which stored nodes a root, inclusion proof or consistency proof needs -- not fetching them.

Following transparency-dev/merkle, planning is separated from fetching: a store resolves the
``NodeId``s of a ``ProofPlan`` (perfect, aligned subtrees it has stored once and for all), and
``ProofPlan.assemble`` folds them into the proof hashes. Every proof of RFC 9162 §2.1.3 and
§2.1.4 names at most one subtree on the tree's right edge that is not perfect (an "ephemeral"
node); it is folded from at most log2(n) perfect subtrees, so a proof costs O(log n) node reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medledger.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE, node_hash
from medledger.errors import InvalidInputError

MAX_LEVEL = 63


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """A perfect subtree: covers leaves [index << level, (index + 1) << level)."""

    level: int
    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL or self.index < 0:
            raise InvalidInputError(f"invalid node ({self.level}, {self.index})")

    @property
    def begin(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Proof element ``i`` is the RFC 9162 fold of the next ``spans[i]`` entries of ``nodes``."""

    nodes: tuple[NodeId, ...]
    spans: tuple[int, ...]

    def __post_init__(self) -> None:
        if sum(self.spans) != len(self.nodes) or any(s < 1 for s in self.spans):
            raise InvalidInputError("spans must partition nodes")

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Fold fetched node hashes (in ``nodes`` order) into the proof's hashes."""
        if len(hashes) != len(self.nodes) or any(len(h) != HASH_SIZE for h in hashes):
            raise InvalidInputError("need one 32-byte hash per planned node")
        out: list[bytes] = []
        at = 0
        for span in self.spans:
            out.append(fold(hashes[at : at + span]))
            at += span
        return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a left-balanced range given its perfect subtrees, largest first."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """Decompose [begin, end) into maximal aligned perfect subtrees, left to right.

    For the ranges that occur in RFC 9162 trees (``begin`` aligned to the largest power of two
    below ``end - begin``), the sizes come out strictly decreasing, so ``fold`` gives their MTH.
    """
    if not 0 <= begin < end:
        raise InvalidInputError(f"empty or negative range [{begin}, {end})")
    width = end - begin
    if width & (width - 1) == 0 and begin % width == 0:  # the common case: one perfect node
        level = width.bit_length() - 1
        return [NodeId(level, begin >> level)]
    nodes: list[NodeId] = []
    while begin < end:
        align = (begin & -begin).bit_length() - 1 if begin else MAX_LEVEL
        level = min(align, (end - begin).bit_length() - 1)
        nodes.append(NodeId(level, begin >> level))
        begin += 1 << level
    return nodes


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k (RFC 9162 §2.1.1), for n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def _plan(ranges: Sequence[tuple[int, int]]) -> ProofPlan:
    nodes: list[NodeId] = []
    spans: list[int] = []
    for begin, end in ranges:
        part = range_nodes(begin, end)
        nodes.extend(part)
        spans.append(len(part))
    return ProofPlan(tuple(nodes), tuple(spans))


def root_plan(size: int) -> ProofPlan:
    """The nodes whose fold is MTH(D[0:size]); an empty plan for the empty tree."""
    if size < 0:
        raise InvalidInputError("size must be >= 0", parameter="size")
    return _plan([(0, size)] if size else [])


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf-side element first.

    Computed directly from the bits, as transparency-dev/merkle does: below level
    ``inner = bitlen(index XOR (size - 1))`` the path takes the sibling at every level (only the
    highest of them can reach past ``size``: that one is the ephemeral node, folded from the
    perfect subtrees of ``[begin, size)``); above it, the left sibling at every level where the
    index's bit is set. The property tests check this against the recursive definition.
    """
    if not 0 <= index < size:
        raise InvalidInputError(f"index {index} is not in a tree of size {size}", parameter="index")
    inner = (index ^ (size - 1)).bit_length()
    nodes = [NodeId(level, (index >> level) ^ 1) for level in range(inner - 1)]
    spans = [1] * len(nodes)
    if inner:
        sibling = NodeId(inner - 1, (index >> (inner - 1)) ^ 1)
        part = [sibling] if sibling.end <= size else range_nodes(sibling.begin, size)
        nodes.extend(part)
        spans.append(len(part))
    level, rest = inner, index >> inner
    while rest:
        if rest & 1:
            nodes.append(NodeId(level, rest - 1))
            spans.append(1)
        rest >>= 1
        level += 1
    return ProofPlan(tuple(nodes), tuple(spans))


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1; empty when size1 is 0 or equals size2."""
    if not 0 <= size1 <= size2:
        raise InvalidInputError(
            f"consistency needs 0 <= from <= to, got from={size1} to={size2}", parameter="from"
        )
    if size1 in (0, size2):
        return ProofPlan((), ())
    ranges: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, size2, size1, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                ranges.append((lo, hi))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    ranges.reverse()
    return _plan(ranges)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH from the hashes a ``root_plan`` fetched (EMPTY_ROOT for none)."""
    return fold(hashes) if hashes else EMPTY_ROOT
