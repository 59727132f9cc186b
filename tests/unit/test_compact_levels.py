"""``CompactRange.extend_levels`` against the per-leaf visitor it replaces on the append path.

The per-leaf ``extend`` reports every node a batch completes to a visitor; ``extend_levels``
hashes the batch a level at a time and returns the same nodes grouped into one run per level.
A store writes tile rows from either, so both must report exactly the same (level, index, hash)
nodes, in the same order within a level, and leave the same compact range behind.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.merkle import CompactRange, leaf_hash
from medledger.core.merkle.compact import LevelRun
from medledger.testing import reference_merkle

#: One node a batch completes, as the visitor reports it.
Node = tuple[int, int, bytes]


def entries(seed: bytes, start: int, count: int) -> list[bytes]:
    """Distinct entries [start, start + count) of a log named by ``seed``."""
    return [seed + i.to_bytes(4, "big") for i in range(start, start + count)]


def leaves(seed: bytes, start: int, count: int) -> list[bytes]:
    return [leaf_hash(e) for e in entries(seed, start, count)]


def per_leaf(tree: CompactRange, batch: list[bytes]) -> list[Node]:
    """The oracle: append leaf by leaf, collecting what the visitor reports."""
    visited: list[Node] = []
    tree.extend(batch, lambda level, index, h: visited.append((level, index, h)))
    return visited


def flatten(runs: list[LevelRun]) -> list[Node]:
    """The nodes of ``runs`` one by one, in the order they are listed."""
    return [(level, start + i, h) for level, start, hashes in runs for i, h in enumerate(hashes)]


def by_level(nodes: list[Node]) -> list[Node]:
    """Nodes regrouped by level (lowest first), keeping their order within a level."""
    return sorted(nodes, key=lambda node: node[0])  # sorted() is stable


def check_against_per_leaf(size: int, count: int, seed: bytes = b"log") -> CompactRange:
    """Append ``count`` leaves to a range of ``size`` both ways; assert they agree."""
    start = CompactRange()
    start.extend(leaves(seed, 0, size))
    batch = leaves(seed, size, count)
    expected_tree, tree = start.copy(), start.copy()

    expected = per_leaf(expected_tree, batch)
    runs = tree.extend_levels(batch)

    assert [level for level, _, _ in runs] == list(range(len(runs))), "one run per level"
    assert all(hashes for _, _, hashes in runs), "no empty runs"
    assert flatten(runs) == by_level(expected)
    assert tree.size == expected_tree.size == size + count
    assert tree.hashes == expected_tree.hashes
    assert tree.root() == expected_tree.root()
    return tree


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(0, 5000),
    count=st.integers(0, 3000),
    seed=st.binary(min_size=1, max_size=8),
)
def test_extend_levels_reports_what_the_visitor_reports(size: int, count: int, seed: bytes) -> None:
    check_against_per_leaf(size, count, seed)


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.integers(0, 600), max_size=8))
def test_successive_batches_build_the_reference_tree(batches: list[int]) -> None:
    """Batch after batch, each batch's runs hold every node exactly once; the root is MTH."""
    tree, seen = CompactRange(), set[tuple[int, int]]()
    for count in batches:
        first = tree.size
        nodes = flatten(tree.extend_levels(leaves(b"s", first, count)))
        positions = {(level, index) for level, index, _ in nodes}
        assert len(positions) == len(nodes)
        assert not positions & seen, "a node reported by two batches"
        seen |= positions
    assert tree.root() == reference_merkle.mth(entries(b"s", 0, tree.size))


EDGE_SIZES = sorted(
    {0, 1, 2, 3} | {n for k in (2, 3, 5, 8, 10, 11) for n in (2**k - 1, 2**k, 2**k + 1)}
)
EDGE_BATCHES = [0, 1, 2, 3, 255, 256, 257, 1023, 1024, 1025]


@pytest.mark.parametrize(("size", "count"), list(itertools.product(EDGE_SIZES, EDGE_BATCHES)))
def test_sizes_at_powers_of_two(size: int, count: int) -> None:
    tree = check_against_per_leaf(size, count)
    assert tree.root() == reference_merkle.mth(entries(b"log", 0, size + count))


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_empty_batch_changes_nothing(size: int) -> None:
    tree = CompactRange()
    tree.extend(leaves(b"log", 0, size))
    before = tree.copy()
    assert tree.extend_levels([]) == []
    assert (tree.size, tree.hashes) == (before.size, before.hashes)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_batch_of_one_completes_the_trailing_ones_of_the_size(size: int) -> None:
    """One leaf at index ``size`` completes one node per trailing 1-bit of ``size``."""
    check_against_per_leaf(size, 1)
    trailing_ones = (~size & (size + 1)).bit_length() - 1
    tree = CompactRange()
    tree.extend(leaves(b"log", 0, size))
    runs = tree.extend_levels(leaves(b"log", size, 1))
    assert [(level, first, len(hashes)) for level, first, hashes in runs] == [
        (level, size >> level, 1) for level in range(trailing_ones + 1)
    ]


def test_runs_do_not_alias_the_callers_batch() -> None:
    batch = leaves(b"log", 0, 5)
    runs = CompactRange().extend_levels(batch)
    runs[0][2].clear()
    assert len(batch) == 5


def test_known_answer_for_three_leaves() -> None:
    """Leaves a, b, c: level 0 is [a, b, c], level 1 is [H(a, b)]; c is left pending."""
    a, b, c = (hashlib.sha256(bytes([0, i])).digest() for i in range(3))
    tree = CompactRange()
    runs = tree.extend_levels([a, b, c])
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert runs == [(0, 0, [a, b, c]), (1, 0, [ab])]
    assert tree.hashes == (ab, c)
