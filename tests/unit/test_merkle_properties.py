"""Properties of the RFC 9162 Merkle core, checked against the naive reference tree.

``medledger.testing.reference_merkle`` reads like the RFC's definitions (MTH, PATH, PROOF); the
fast core -- ``CompactRange`` plus proof plans resolved from the nodes its visitor reports, the
way a log store serves proofs -- must agree with it on random logs of up to 300 entries. A
stateful test appends to a log and checks, after every step, that the log is consistent with
every checkpoint it has had.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from medledger.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from medledger.errors import ProofError
from medledger.testing import reference_merkle
from medledger.testing.memory_log import NodeStore

MAX_ENTRIES = 300
FAST = settings(max_examples=50, deadline=None)


@st.composite
def logs(draw: st.DrawFn, min_size: int = 0) -> list[bytes]:
    """Entries of a log; the size is drawn first so that large logs are as likely as small."""
    n = draw(st.integers(min_size, MAX_ENTRIES))
    return draw(st.lists(st.binary(max_size=4), min_size=n, max_size=n))


@st.composite
def inclusion_claims(draw: st.DrawFn, n: int, min_size: int = 1) -> tuple[int, int]:
    """(index, size) of a leaf in a tree of ``min_size..n`` leaves."""
    size = draw(st.integers(min_size, n))
    return draw(st.integers(0, size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn, n: int, *, proper: bool = False) -> tuple[int, int]:
    """(size1, size2) with 0 <= size1 <= size2 <= n, or 0 < size1 < size2 if ``proper``."""
    size2 = draw(st.integers(2 if proper else 0, n))
    return draw(st.integers(1, size2 - 1) if proper else st.integers(0, size2)), size2


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=30, deadline=None)  # quadratic in the log size: the slowest here
@given(entries=logs())
def test_root_at_every_past_size_is_the_reference_root(entries: list[bytes]) -> None:
    store = NodeStore(entries)
    growing = CompactRange()
    assert growing.root() == store.root(0) == EMPTY_ROOT
    for size in range(1, len(entries) + 1):
        growing.append(leaf_hash(entries[size - 1]))
        expected = reference_merkle.mth(entries[:size])
        assert growing.root() == expected
        assert store.root(size) == expected


@FAST
@given(data=st.data(), entries=logs(min_size=1))
def test_inclusion_proofs_are_the_reference_paths_and_verify(
    data: st.DataObject, entries: list[bytes]
) -> None:
    store = NodeStore(entries)
    for index, size in data.draw(st.lists(inclusion_claims(len(entries)), min_size=1, max_size=8)):
        proof = store.inclusion(index, size)
        assert proof == reference_merkle.path(index, entries[:size])
        root = reference_merkle.mth(entries[:size])
        verify_inclusion(leaf_hash(entries[index]), index, size, proof, root)


@FAST
@given(data=st.data(), entries=logs())
def test_consistency_proofs_are_the_reference_proofs_and_verify(
    data: st.DataObject, entries: list[bytes]
) -> None:
    store = NodeStore(entries)
    for size1, size2 in data.draw(st.lists(size_pairs(len(entries)), min_size=1, max_size=8)):
        proof = store.consistency(size1, size2)
        assert proof == reference_merkle.proof(size1, entries[:size2])
        root1 = reference_merkle.mth(entries[:size1])
        root2 = reference_merkle.mth(entries[:size2])
        verify_consistency(size1, size2, proof, root1, root2)


@FAST
@given(data=st.data(), entries=logs(min_size=2))
def test_any_single_bit_flip_in_an_inclusion_proof_fails(
    data: st.DataObject, entries: list[bytes]
) -> None:
    index, size = data.draw(inclusion_claims(len(entries), min_size=2))
    store = NodeStore(entries)
    proof = store.inclusion(index, size)
    at = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    proof[at] = _flip(proof[at], bit)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(entries[index]), index, size, proof, store.root(size))


@FAST
@given(data=st.data(), entries=logs(min_size=2))
def test_any_single_bit_flip_in_a_consistency_proof_fails(
    data: st.DataObject, entries: list[bytes]
) -> None:
    size1, size2 = data.draw(size_pairs(len(entries), proper=True))
    store = NodeStore(entries)
    proof = store.consistency(size1, size2)
    at = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    proof[at] = _flip(proof[at], bit)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, store.root(size1), store.root(size2))


@FAST
@given(data=st.data(), entries=logs())
def test_compact_range_round_trips_through_size_and_hashes(
    data: st.DataObject, entries: list[bytes]
) -> None:
    split = data.draw(st.integers(0, len(entries)), label="split")
    original = CompactRange()
    original.extend(leaf_hash(e) for e in entries[:split])

    rebuilt = CompactRange(original.size, original.hashes)
    assert (rebuilt.size, rebuilt.hashes, rebuilt.root()) == (
        original.size,
        original.hashes,
        original.root(),
    )

    seen_original: list[tuple[int, int, bytes]] = []
    seen_rebuilt: list[tuple[int, int, bytes]] = []
    rest = [leaf_hash(e) for e in entries[split:]]
    original.extend(rest, lambda *node: seen_original.append(node))
    rebuilt.extend(rest, lambda *node: seen_rebuilt.append(node))
    assert seen_rebuilt == seen_original
    assert rebuilt.hashes == original.hashes
    assert rebuilt.root() == original.root() == reference_merkle.mth(entries)


class AppendOnlyLog(RuleBasedStateMachine):
    """Append entries; after every step the log is consistent with every earlier checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[bytes] = []
        self.store = NodeStore()
        self.checkpoints: list[tuple[int, bytes]] = []

    def _checkpoint(self) -> None:
        self.checkpoints.append((self.store.range.size, self.store.range.root()))

    @rule(entry=st.binary(max_size=8))
    def append(self, entry: bytes) -> None:
        self._checkpoint()
        self.entries.append(entry)
        self.store.append(entry)

    @rule(batch=st.lists(st.binary(max_size=4), min_size=1, max_size=16))
    def append_batch(self, batch: list[bytes]) -> None:
        self._checkpoint()
        for entry in batch:
            self.entries.append(entry)
            self.store.append(entry)

    @invariant()
    def root_is_the_reference_root(self) -> None:
        assert self.store.range.size == len(self.entries)
        assert self.store.range.root() == reference_merkle.mth(self.entries)

    @invariant()
    def consistent_with_every_checkpoint(self) -> None:
        size, root = self.store.range.size, self.store.range.root()
        for old_size, old_root in self.checkpoints:
            assert self.store.root(old_size) == old_root, "a past root changed"
            proof = self.store.consistency(old_size, size)
            verify_consistency(old_size, size, proof, old_root, root)

    @invariant()
    def newest_entry_is_included(self) -> None:
        size = self.store.range.size
        if size:
            proof = self.store.inclusion(size - 1, size)
            leaf = leaf_hash(self.entries[-1])
            verify_inclusion(leaf, size - 1, size, proof, self.store.range.root())


TestAppendOnlyLog = AppendOnlyLog.TestCase
TestAppendOnlyLog.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
