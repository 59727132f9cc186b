"""The RFC 9162 Merkle core against language-neutral test vectors (tests/vectors/merkle/).

The vectors are transcribed from transparency-dev/merkle (each file and case names its source):
the roots, subtree hashes and compact ranges of its 8-leaf test tree, its known proofs, and its
inclusion/consistency testdata with their mutation cases. On top of those, every proof our
planner produces over that tree is mutated the way transparency-dev's ``corrupt*Proof`` helpers
do -- wrong leaf, index and sizes off by one, truncated, garbage before and after, swapped roots,
a flipped bit in each hash, an empty proof -- and each mutation must raise ``ProofError``.

Proofs are produced the way a log store does it: keep every node ``CompactRange`` reports to its
visitor, resolve the ``NodeId``s of a ``ProofPlan`` and let the plan assemble the proof.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medledger.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    NodeId,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from medledger.errors import ProofError
from medledger.testing import reference_merkle
from medledger.testing.memory_log import NodeStore

VECTORS = Path(__file__).parent.parent / "vectors" / "merkle"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


ROOTS = _load("rfc9162_roots.json")
INCLUSION = _load("inclusion_proofs.json")
CONSISTENCY = _load("consistency_proofs.json")

LEAVES = [bytes.fromhex(h) for h in ROOTS["leaves"]]
KNOWN_ROOTS = {r["size"]: bytes.fromhex(r["root"]) for r in ROOTS["roots"]}
GARBAGE = bytes(range(32))  # 32 bytes, so only the proof's shape can reject it


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


STORE = NodeStore(LEAVES)


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- shapes: which computation a verifier runs for given sizes (RFC 9162 read literally) -------
def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _path_shape(m: int, n: int) -> tuple[str, ...] | None:
    """The side of each PATH(m, D[n]) element, leaf first; None if m is not in the tree."""
    if not 0 <= m < n:
        return None
    if n == 1:
        return ()
    k = _k(n)
    if m < k:
        return (*(_path_shape(m, k) or ()), "right")
    return (*(_path_shape(m - k, n - k) or ()), "left")


def _proof_shape(m: int, n: int) -> tuple[str, ...] | None:
    """The computation of PROOF(m, D[n]) for 0 < m < n (its seed, then sides); None otherwise."""
    if not 0 < m < n:
        return None

    def subproof(m: int, n: int, whole: bool) -> tuple[str, ...]:
        if m == n:
            return ("root1",) if whole else ("seed",)
        k = _k(n)
        if m <= k:
            return (*subproof(m, k, whole), "right")
        return (*subproof(m - k, n - k, False), "left")

    return subproof(m, n, True)


# --- known answers ---------------------------------------------------------------------------
def test_leaf_hashes_are_the_level_0_node_hashes() -> None:
    level0 = [bytes.fromhex(h) for h in ROOTS["node_hashes"]["levels"][0]]
    assert [leaf_hash(e) for e in LEAVES] == level0


@pytest.mark.parametrize("size", sorted(KNOWN_ROOTS), ids=lambda s: f"size{s}")
def test_root_known_answer(size: int) -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(e) for e in LEAVES[:size])
    assert compact.root() == KNOWN_ROOTS[size]
    assert STORE.root(size) == KNOWN_ROOTS[size], "root of a past size from stored nodes"
    assert reference_merkle.mth(LEAVES[:size]) == KNOWN_ROOTS[size]


def test_empty_root_is_the_known_answer() -> None:
    assert KNOWN_ROOTS[0] == EMPTY_ROOT


@pytest.mark.parametrize("case", ROOTS["compact_ranges"]["cases"], ids=lambda c: f"size{c['size']}")
def test_compact_range_hashes_known_answer(case: dict[str, Any]) -> None:
    compact = CompactRange()
    compact.extend(leaf_hash(e) for e in LEAVES[: case["size"]])
    assert compact.size == case["size"]
    assert compact.hashes == tuple(bytes.fromhex(h) for h in case["hashes"])


def test_visitor_reports_every_complete_subtree_exactly_once() -> None:
    levels = ROOTS["node_hashes"]["levels"]
    expected = {
        NodeId(level, index): bytes.fromhex(h)
        for level, row in enumerate(levels)
        for index, h in enumerate(row)
    }
    assert STORE.nodes == expected


@pytest.mark.parametrize(
    "case",
    ROOTS["inclusion_proofs"]["cases"],
    ids=lambda c: f"leaf{c['leaf'] - 1}-of-{c['size']}",
)
def test_inclusion_proof_known_answer(case: dict[str, Any]) -> None:
    index, size = case["leaf"] - 1, case["size"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    assert STORE.inclusion(index, size) == expected
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, expected, KNOWN_ROOTS[size])


@pytest.mark.parametrize(
    "case",
    ROOTS["consistency_proofs"]["cases"],
    ids=lambda c: f"{c['size1']}-to-{c['size2']}",
)
def test_consistency_proof_known_answer(case: dict[str, Any]) -> None:
    size1, size2 = case["size1"], case["size2"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    assert STORE.consistency(size1, size2) == expected
    verify_consistency(size1, size2, expected, KNOWN_ROOTS[size1], KNOWN_ROOTS[size2])


# --- transparency-dev testdata, as transcribed ------------------------------------------------
def _testdata_id(case: dict[str, Any]) -> str:
    source: str = case["source"]
    return source.removeprefix("testdata/").removesuffix(".json")


@pytest.mark.parametrize("case", INCLUSION["cases"], ids=_testdata_id)
def test_inclusion_testdata(case: dict[str, Any]) -> None:
    v = case["vector"]
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    leaf, index, size, proof, root = args
    assert leaf == leaf_hash(LEAVES[index])
    assert root == KNOWN_ROOTS[size]
    assert STORE.inclusion(index, size) == proof


@pytest.mark.parametrize("case", CONSISTENCY["cases"], ids=_testdata_id)
def test_consistency_testdata(case: dict[str, Any]) -> None:
    v = case["vector"]
    size1, size2 = v["size1"], v["size2"]
    proof = [_b64(p) for p in v["proof"] or []]
    root1, root2 = _b64(v["root1"]), _b64(v["root2"])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, root2)
        return
    verify_consistency(size1, size2, proof, root1, root2)
    assert (root1, root2) == (KNOWN_ROOTS[size1], KNOWN_ROOTS[size2])
    assert STORE.consistency(size1, size2) == proof


@pytest.mark.parametrize(
    "case",
    CONSISTENCY["edge_cases"]["cases"],
    ids=lambda c: f"{c['size1']}-to-{c['size2']}-{'bad' if c['wantErr'] else 'ok'}",
)
def test_consistency_edge_cases(case: dict[str, Any]) -> None:
    size1, size2 = case["size1"], case["size2"]
    proof = [_b64(p) for p in case["proof"]]
    root1, root2 = _b64(case["root1"]), _b64(case["root2"])
    if case["wantErr"] or any(len(h) != 32 for h in (root1, root2)):
        # Stricter than the source: roots that are not 32 bytes never verify here.
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, root2)
    else:
        verify_consistency(size1, size2, proof, root1, root2)


def test_two_different_roots_for_the_empty_tree_are_a_fork() -> None:
    """transparency-dev rejects (0, 0) with differing roots; so must we (32-byte roots here)."""
    with pytest.raises(ProofError):
        verify_consistency(0, 0, [], EMPTY_ROOT, GARBAGE)
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


# --- our own proofs over the vector tree, and their mutations ---------------------------------
@dataclass(frozen=True)
class Inclusion:
    leaf: bytes
    index: int
    size: int
    proof: tuple[bytes, ...]
    root: bytes


@dataclass(frozen=True)
class Consistency:
    size1: int
    size2: int
    proof: tuple[bytes, ...]
    root1: bytes
    root2: bytes


def _inclusion_happy() -> list[Inclusion]:
    return [
        Inclusion(leaf_hash(LEAVES[i]), i, n, tuple(STORE.inclusion(i, n)), KNOWN_ROOTS[n])
        for n in range(1, len(LEAVES) + 1)
        for i in range(n)
    ]


def _consistency_happy() -> list[Consistency]:
    return [
        Consistency(m, n, tuple(STORE.consistency(m, n)), KNOWN_ROOTS[m], KNOWN_ROOTS[n])
        for n in range(len(LEAVES) + 1)
        for m in range(n + 1)
    ]


def _flips(proof: tuple[bytes, ...]) -> Iterator[tuple[str, tuple[bytes, ...]]]:
    for i in range(len(proof)):
        for bit in (3, 255):  # bit 3 of the first byte (as transparency-dev), the last bit
            yield (f"flip-proof[{i}]-bit{bit}", (*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]))


def _inclusion_mutations(c: Inclusion) -> Iterator[tuple[str, Inclusion]]:
    p = c.proof
    yield "wrong-leaf", Inclusion(_flip(c.leaf, 0), c.index, c.size, p, c.root)
    yield "leaf-hash-of-another-entry", Inclusion(leaf_hash(b"x"), c.index, c.size, p, c.root)
    if c.leaf != c.root:  # in a tree of one leaf they are the same hash
        yield "swapped-leaf-and-root", Inclusion(c.root, c.index, c.size, p, c.leaf)
    yield "wrong-root", Inclusion(c.leaf, c.index, c.size, p, _flip(c.root, 0))
    yield "empty-tree-root", Inclusion(c.leaf, c.index, c.size, p, EMPTY_ROOT)
    for name, index in (("index+1", c.index + 1), ("index-1", c.index - 1)):
        yield name, Inclusion(c.leaf, index, c.size, p, c.root)
    for name, size in (("size+1", c.size + 1), ("size-1", c.size - 1)):
        # The proof binds the root, not the size: a size with the same path shape still
        # verifies (see test_a_proof_binds_the_root_not_the_size), so it is no mutation.
        if _path_shape(c.index, size) != _path_shape(c.index, c.size):
            yield name, Inclusion(c.leaf, c.index, size, p, c.root)
    if p:
        yield "truncated-proof", Inclusion(c.leaf, c.index, c.size, p[:-1], c.root)
        yield "empty-proof", Inclusion(c.leaf, c.index, c.size, (), c.root)
    if len(p) > 1:
        yield "proof-reversed", Inclusion(c.leaf, c.index, c.size, p[::-1], c.root)
    yield "preceding-garbage", Inclusion(c.leaf, c.index, c.size, (GARBAGE, *p), c.root)
    yield "preceding-empty-hash", Inclusion(c.leaf, c.index, c.size, (b"", *p), c.root)
    yield "preceding-root", Inclusion(c.leaf, c.index, c.size, (c.root, *p), c.root)
    yield "trailing-garbage", Inclusion(c.leaf, c.index, c.size, (*p, GARBAGE), c.root)
    yield "trailing-empty-hash", Inclusion(c.leaf, c.index, c.size, (*p, b""), c.root)
    yield "trailing-root", Inclusion(c.leaf, c.index, c.size, (*p, c.root), c.root)
    for name, proof in _flips(p):
        yield name, Inclusion(c.leaf, c.index, c.size, proof, c.root)


def _consistency_mutations(c: Consistency) -> Iterator[tuple[str, Consistency]]:
    p = c.proof
    m, n = c.size1, c.size2
    yield "swapped-roots", Consistency(m, n, p, c.root2, c.root1)
    yield "wrong-root1", Consistency(m, n, p, _flip(c.root1, 0), c.root2)
    yield "wrong-root2", Consistency(m, n, p, c.root1, _flip(c.root2, 0))
    yield "swapped-sizes", Consistency(n, m, p, c.root1, c.root2)
    sizes = {
        "size1+1": (m + 1, n),
        "size1-1": (m - 1, n),
        "size2+1": (m, n + 1),
        "size2-1": (m, n - 1),
    }
    for name, (m2, n2) in sizes.items():
        # As for inclusion, sizes with the same proof shape are no mutation.
        if _proof_shape(m2, n2) != _proof_shape(m, n):
            yield name, Consistency(m2, n2, p, c.root1, c.root2)
    yield "truncated-proof", Consistency(m, n, p[:-1], c.root1, c.root2)
    yield "empty-proof", Consistency(m, n, (), c.root1, c.root2)
    yield "proof-without-first", Consistency(m, n, p[1:], c.root1, c.root2)
    if len(p) > 1:
        yield "proof-reversed", Consistency(m, n, p[::-1], c.root1, c.root2)
    prefixes = {"garbage": GARBAGE, "empty-hash": b"", "root1": c.root1, "root2": c.root2}
    prefixes["proof[0]"] = p[0]
    for name, extra in prefixes.items():
        yield f"preceding-{name}", Consistency(m, n, (extra, *p), c.root1, c.root2)
        yield f"trailing-{name}", Consistency(m, n, (*p, extra), c.root1, c.root2)
    for name, proof in _flips(p):
        yield name, Consistency(m, n, proof, c.root1, c.root2)


def _inclusion_id(c: Inclusion) -> str:
    return f"leaf{c.index}-of-{c.size}"


def _consistency_id(c: Consistency) -> str:
    return f"{c.size1}-to-{c.size2}"


INCLUSION_HAPPY = _inclusion_happy()
CONSISTENCY_HAPPY = _consistency_happy()
INCLUSION_MUTATIONS = [
    pytest.param(mutated, id=f"{_inclusion_id(c)}-{name}")
    for c in INCLUSION_HAPPY
    for name, mutated in _inclusion_mutations(c)
]
CONSISTENCY_MUTATIONS = [
    pytest.param(mutated, id=f"{_consistency_id(c)}-{name}")
    for c in CONSISTENCY_HAPPY
    if c.proof  # as transparency-dev: mutate only proofs with 0 < size1 < size2
    for name, mutated in _consistency_mutations(c)
]


@pytest.mark.parametrize("c", INCLUSION_HAPPY, ids=_inclusion_id)
def test_our_inclusion_proof(c: Inclusion) -> None:
    assert list(c.proof) == reference_merkle.path(c.index, LEAVES[: c.size])
    assert root_from_inclusion_proof(c.leaf, c.index, c.size, c.proof) == c.root
    verify_inclusion(c.leaf, c.index, c.size, c.proof, c.root)


@pytest.mark.parametrize("c", CONSISTENCY_HAPPY, ids=_consistency_id)
def test_our_consistency_proof(c: Consistency) -> None:
    assert list(c.proof) == reference_merkle.proof(c.size1, LEAVES[: c.size2])
    verify_consistency(c.size1, c.size2, c.proof, c.root1, c.root2)


@pytest.mark.parametrize("c", INCLUSION_MUTATIONS)
def test_mutated_inclusion_proof_fails(c: Inclusion) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(c.leaf, c.index, c.size, c.proof, c.root)


@pytest.mark.parametrize("c", CONSISTENCY_MUTATIONS)
def test_mutated_consistency_proof_fails(c: Consistency) -> None:
    with pytest.raises(ProofError):
        verify_consistency(c.size1, c.size2, c.proof, c.root1, c.root2)


def test_a_proof_binds_the_root_not_the_size() -> None:
    """RFC 9162 proofs commit to a root; the size is bound by the signed checkpoint.

    PATH(0, D[3]) and PATH(0, D[4]) have the same shape (two right siblings), so the size-3
    proof also "verifies" as size 4 against the size-3 root; likewise PROOF(2, D[3]) against
    sizes (2, 4). A caller must take (size, root) together from one verified checkpoint.
    """
    assert _path_shape(0, 3) == _path_shape(0, 4)
    verify_inclusion(leaf_hash(LEAVES[0]), 0, 4, STORE.inclusion(0, 3), KNOWN_ROOTS[3])
    assert _proof_shape(2, 3) == _proof_shape(2, 4)
    verify_consistency(2, 4, STORE.consistency(2, 3), KNOWN_ROOTS[2], KNOWN_ROOTS[3])
