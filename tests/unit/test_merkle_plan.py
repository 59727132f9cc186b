"""Proof plans and compact ranges: invalid inputs, shapes and the O(log n) cost of a proof.

Plans are pure (no fetching), so their size can be checked for trees of up to 2**40 leaves
without building one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from medledger.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    NodeId,
    ProofPlan,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    root_plan,
)
from medledger.core.merkle.plan import MAX_LEVEL, range_nodes, root_from_hashes
from medledger.errors import InvalidInputError

H = bytes(HASH_SIZE)

# Sizes around powers of two up to 2**40, and a few with scattered bits.
BIG_SIZES = sorted(
    {1, 2, 3, 5, 7}
    | {2**k + d for k in (4, 10, 20, 31, 32, 39, 40) for d in (-1, 0, 1)}
    | {0b1011_0110_1101, 0xDEAD_BEEF, 0xAB_CDEF_0123, 2**40 - 2**20 + 5}
)


def _indices(size: int) -> list[int]:
    return sorted({i for i in (0, 1, size // 3, size // 2, size - 2, size - 1) if 0 <= i < size})


def _log_bound(size: int) -> float:
    return 2 * math.log2(size) + 2


# --- NodeId ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("level", "index"),
    [(-1, 0), (MAX_LEVEL + 1, 0), (0, -1), (-1, -1), (100, 0)],
    ids=["level-1", "level-64", "index-1", "both-negative", "level-100"],
)
def test_node_id_rejects_out_of_range(level: int, index: int) -> None:
    with pytest.raises(InvalidInputError):
        NodeId(level, index)


def test_node_id_covers_an_aligned_range() -> None:
    assert (NodeId(0, 5).begin, NodeId(0, 5).end) == (5, 6)
    assert (NodeId(3, 2).begin, NodeId(3, 2).end) == (16, 24)
    assert NodeId(MAX_LEVEL, 0).end == 2**MAX_LEVEL


def test_node_id_is_frozen_and_ordered() -> None:
    node = NodeId(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.level = 2  # type: ignore[misc]
    assert sorted([NodeId(1, 0), NodeId(0, 3), NodeId(0, 1)]) == [
        NodeId(0, 1),
        NodeId(0, 3),
        NodeId(1, 0),
    ]


# --- ProofPlan -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nodes", "spans"),
    [
        ((NodeId(0, 0),), ()),
        ((), (1,)),
        ((NodeId(0, 0), NodeId(0, 1)), (1,)),
        ((NodeId(0, 0),), (2,)),
        ((NodeId(0, 0),), (1, 0)),
        ((NodeId(0, 0), NodeId(0, 1)), (3, -1)),
    ],
    ids=["no-spans", "no-nodes", "spans-too-short", "spans-too-long", "zero-span", "negative"],
)
def test_proof_plan_spans_must_partition_nodes(
    nodes: tuple[NodeId, ...], spans: tuple[int, ...]
) -> None:
    with pytest.raises(InvalidInputError):
        ProofPlan(nodes, spans)


def test_empty_plan_assembles_an_empty_proof() -> None:
    assert ProofPlan((), ()).assemble([]) == []


@pytest.mark.parametrize(
    "hashes",
    [[], [H], [H, H, H, H], [H, H, H[:-1]], [H, H, H + b"\x00"]],
    ids=["none", "too-few", "too-many", "short-hash", "long-hash"],
)
def test_assemble_needs_one_32_byte_hash_per_node(hashes: list[bytes]) -> None:
    plan = inclusion_plan(0, 5)  # three proof elements, three nodes
    assert len(plan.nodes) == 3
    with pytest.raises(InvalidInputError):
        plan.assemble(hashes)


# --- range_nodes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("begin", "end"),
    [(0, 0), (5, 5), (5, 3), (-1, 4), (-4, -1)],
    ids=["empty-at-0", "empty", "reversed", "negative-begin", "negative"],
)
def test_range_nodes_rejects_empty_or_negative_ranges(begin: int, end: int) -> None:
    with pytest.raises(InvalidInputError):
        range_nodes(begin, end)


def test_range_nodes_tile_the_range_with_aligned_perfect_subtrees() -> None:
    for begin in range(70):
        for end in range(begin + 1, 70):
            nodes = range_nodes(begin, end)
            assert nodes[0].begin == begin
            assert nodes[-1].end == end
            assert all(a.end == b.begin for a, b in itertools.pairwise(nodes))
            assert len(nodes) <= _log_bound(end - begin)


def test_range_nodes_of_a_tree_prefix_are_its_compact_range() -> None:
    for size in range(1, 70):
        levels = [n.level for n in range_nodes(0, size)]
        assert levels == [b for b in reversed(range(size.bit_length())) if size >> b & 1]


# --- planning invalid proofs -----------------------------------------------------------------
def test_root_plan_rejects_a_negative_size() -> None:
    with pytest.raises(InvalidInputError) as raised:
        root_plan(-1)
    assert raised.value.parameter == "size"


def test_root_plan_of_the_empty_tree_is_empty() -> None:
    plan = root_plan(0)
    assert (plan.nodes, plan.spans) == ((), ())
    assert root_from_hashes([]) == EMPTY_ROOT


@pytest.mark.parametrize(
    ("index", "size"),
    [(0, 0), (-1, 5), (5, 5), (6, 5), (0, -1), (2**40, 2**40)],
    ids=["empty-tree", "negative-index", "index-equals-size", "index-past-size", "neg-size", "big"],
)
def test_inclusion_plan_rejects_an_index_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(InvalidInputError) as raised:
        inclusion_plan(index, size)
    assert raised.value.parameter == "index"


@pytest.mark.parametrize(
    ("size1", "size2"),
    [(-1, 3), (4, 3), (1, 0), (-2, -1), (2**40 + 1, 2**40)],
    ids=["negative", "shrinking", "to-empty", "both-negative", "big-shrinking"],
)
def test_consistency_plan_rejects_sizes_out_of_order(size1: int, size2: int) -> None:
    with pytest.raises(InvalidInputError) as raised:
        consistency_plan(size1, size2)
    assert raised.value.parameter == "from"


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 7), (7, 7), (2**40, 2**40)])
def test_trivial_consistency_plans_are_empty(size1: int, size2: int) -> None:
    plan = consistency_plan(size1, size2)
    assert (plan.nodes, plan.spans) == ((), ())


def test_single_leaf_tree_has_an_empty_inclusion_plan() -> None:
    plan = inclusion_plan(0, 1)
    assert (plan.nodes, plan.spans) == ((), ())


# --- O(log n) --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", BIG_SIZES, ids=lambda n: f"n={n}")
def test_inclusion_plans_read_o_log_n_nodes(size: int) -> None:
    for index in _indices(size):
        plan = inclusion_plan(index, size)
        assert len(plan.nodes) <= _log_bound(size)
        assert len(plan.spans) <= math.ceil(math.log2(size))  # the path length
        assert all(node.end <= size for node in plan.nodes)
        assert not any(node.begin <= index < node.end for node in plan.nodes)


@pytest.mark.parametrize("size2", [n for n in BIG_SIZES if n > 1], ids=lambda n: f"n={n}")
def test_consistency_plans_read_o_log_n_nodes(size2: int) -> None:
    for size1 in [i for i in _indices(size2) if i > 0]:
        plan = consistency_plan(size1, size2)
        assert len(plan.nodes) <= _log_bound(size2)
        assert all(node.end <= size2 for node in plan.nodes)


@pytest.mark.parametrize("size", BIG_SIZES, ids=lambda n: f"n={n}")
def test_root_plan_is_the_compact_range(size: int) -> None:
    assert len(root_plan(size).nodes) == size.bit_count()


def test_plans_are_pure_values() -> None:
    assert inclusion_plan(123_456, 2**40) == inclusion_plan(123_456, 2**40)
    assert consistency_plan(2**39 + 3, 2**40 - 1) == consistency_plan(2**39 + 3, 2**40 - 1)


# --- CompactRange constructor ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "hashes", "parameter"),
    [
        (-1, (), "size"),
        (1, (), "hashes"),
        (0, (H,), "hashes"),
        (3, (H,), "hashes"),
        (4, (H, H), "hashes"),
        (3, (H, H[:-1]), "hashes"),
        (1, (H + b"\x00",), "hashes"),
        (1, (b"",), "hashes"),
    ],
    ids=[
        "negative-size",
        "missing-hash",
        "hash-for-empty",
        "too-few",
        "too-many",
        "short-hash",
        "long-hash",
        "empty-hash",
    ],
)
def test_compact_range_rejects_inconsistent_state(
    size: int, hashes: tuple[bytes, ...], parameter: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        CompactRange(size, hashes)
    assert raised.value.parameter == parameter


def test_compact_range_accepts_one_hash_per_set_bit() -> None:
    size = 2**40 + 2**20 + 1
    compact = CompactRange(size, [H, H, H])
    assert (compact.size, compact.hashes) == (size, (H, H, H))


def test_compact_range_copy_is_independent() -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(bytes([i])) for i in range(5))
    copy = compact.copy()
    copy.append(leaf_hash(b"more"))
    assert compact.size == 5
    assert copy.size == 6
    assert compact.root() != copy.root()


def test_compact_range_does_not_alias_the_callers_hashes() -> None:
    hashes = [H]
    compact = CompactRange(1, hashes)
    hashes.append(H)
    assert compact.hashes == (H,)
