"""The state tree (``medledger.core.state.smt``) against the naive oracle, and its proofs.

``medledger.testing.reference_smt`` computes the root (and every node) recursively from the
whole ``{key_hash: value_hash}`` map; the batch ``update`` on an in-memory store must agree
with it after every block, hold exactly the oracle's nodes (no stale node left behind), reach
the same tree whatever the order and batching of the writes, and serve proofs that verify --
and that fail for every mutation an attacker could try.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from medledger.core.state.smt import (
    EMPTY_STATE_ROOT,
    Internal,
    Leaf,
    StateProof,
    hash_key,
    hash_value,
    node_key,
    parse_node_key,
    prove,
    update,
    verify_proof,
)
from medledger.errors import InvalidInputError, ProofError, TamperError
from medledger.testing import reference_smt
from medledger.testing.memory_state import MemoryNodeStore, MemoryState

FAST = settings(max_examples=60, deadline=None)

Writes = dict[str, bytes | None]

# Few distinct keys, so that blocks update and delete keys earlier blocks wrote.
keys = st.integers(min_value=0, max_value=250).map(lambda i: f"k/{i}")
values = st.binary(max_size=3)
states = st.dictionaries(keys, values, max_size=200)
blocks = st.dictionaries(keys, st.none() | values, max_size=40)


def hashed(state: Mapping[str, bytes]) -> dict[bytes, bytes]:
    return {hash_key(k): hash_value(v) for k, v in state.items()}


def apply(model: dict[str, bytes], writes: Writes) -> None:
    for k, v in writes.items():
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


def commit(state: MemoryState, writes: Writes) -> bytes:
    root = state.stage(writes)
    state.write_staged()
    return root


def assert_matches_oracle(state: MemoryState, model: Mapping[str, bytes]) -> None:
    assert state.root() == reference_smt.state_root(model)
    assert state.tree.nodes == reference_smt.layout(hashed(model))


# --- the root and the stored nodes ----------------------------------------------------------
@FAST
@given(states)
def test_one_block_builds_the_oracle_tree(model: dict[str, bytes]) -> None:
    state = MemoryState()
    commit(state, dict(model))
    assert_matches_oracle(state, model)


@FAST
@given(states, st.lists(blocks, max_size=6))
def test_every_block_gives_the_oracle_root(initial: dict[str, bytes], later: list[Writes]) -> None:
    state, model = MemoryState(), {}
    for writes in [dict[str, bytes | None](initial), *later]:
        root = commit(state, writes)
        apply(model, writes)
        assert root == reference_smt.state_root(model)
        assert_matches_oracle(state, model)


@FAST
@given(states, st.lists(blocks, max_size=4), st.randoms(use_true_random=False))
def test_the_tree_is_a_function_of_the_final_state(
    initial: dict[str, bytes], detours: list[Writes], rnd: random.Random
) -> None:
    """The same final map, reached in one block or key by key in any order after detours
    through other states, gives the same root and the same stored nodes."""
    direct = MemoryState()
    commit(direct, dict[str, bytes | None](initial))

    winding = MemoryState()
    for writes in detours:
        commit(winding, writes)
    # Delete what the detours left that the final state lacks, then write the final state
    # one key at a time, in a random order.
    ops: list[tuple[str, bytes | None]] = [(k, None) for k in winding.values if k not in initial]
    ops += list(initial.items())
    rnd.shuffle(ops)
    for key, value in ops:
        commit(winding, {key: value})
    assert winding.root() == direct.root()
    assert winding.tree.nodes == direct.tree.nodes


@FAST
@given(states)
def test_deleting_every_key_gives_the_empty_root(model: dict[str, bytes]) -> None:
    state = MemoryState()
    commit(state, dict[str, bytes | None](model))
    assert commit(state, dict.fromkeys(model)) == EMPTY_STATE_ROOT
    assert state.tree.nodes == {}


def test_deleting_absent_keys_changes_nothing() -> None:
    state = MemoryState()
    root = commit(state, {"a": b"1", "b": b"2"})
    result = update(state.tree, root, {hash_key("c"): None, hash_key("d"): None})
    assert result.root == root
    assert result.puts == {}
    assert result.deletes == frozenset()


def test_writing_the_same_value_again_writes_no_nodes() -> None:
    state = MemoryState()
    root = commit(state, {f"k{i}": b"v" for i in range(50)})
    result = update(state.tree, root, {hash_key("k7"): hash_value(b"v")})
    assert (result.root, result.puts, result.deletes) == (root, {}, frozenset())


# Key hashes that share long prefixes: a base hash and copies with one bit flipped, so that
# leaves sit deep in the tree -- down to depth 256, where two paths differ only in the last bit.
def _flip(base: bytes, bit: int) -> bytes:
    n = int.from_bytes(base, "big") ^ (1 << (255 - bit))
    return n.to_bytes(32, "big")


deep_key_sets = st.tuples(
    st.binary(min_size=32, max_size=32),
    st.sets(st.integers(min_value=0, max_value=255), max_size=12),
).map(lambda t: [t[0], *(_flip(t[0], b) for b in sorted(t[1]))])


@FAST
@given(deep_key_sets, st.data())
def test_deep_paths_down_to_depth_256(key_hashes: list[bytes], data: st.DataObject) -> None:
    """Adversarially close key hashes (a SHA-256 near-collision, in the extreme) still give
    the oracle's tree; blocks insert, update and delete them."""
    key_hashes = [*key_hashes, _flip(key_hashes[0], 255)]
    store, model = MemoryNodeStore(), dict[bytes, bytes]()
    for _ in range(3):
        block = data.draw(
            st.dictionaries(
                st.sampled_from(key_hashes), st.none() | st.sampled_from([b"\1" * 32, b"\2" * 32])
            )
        )
        result = update(store, store.root, block)
        store.apply(result)
        for k, v in block.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert store.root == reference_smt.root(model)
        assert store.nodes == reference_smt.layout(model)
        for k in key_hashes:
            verify_proof(store.root, k, model.get(k), prove(store, store.root, k))


class BlockByBlock(RuleBasedStateMachine):
    """Writes accumulate into a pending block; a commit applies it in one ``update``."""

    def __init__(self) -> None:
        super().__init__()
        self.state = MemoryState()
        self.model: dict[str, bytes] = {}
        self.pending: Writes = {}

    @rule(key=keys, value=values)
    def write(self, key: str, value: bytes) -> None:
        self.pending[key] = value

    @rule(key=keys)
    def delete(self, key: str) -> None:
        self.pending[key] = None

    @rule()
    def commit_block(self) -> None:
        commit(self.state, self.pending)
        apply(self.model, self.pending)
        self.pending = {}

    @rule(key=keys)
    def prove_key(self, key: str) -> None:
        value, proof = self.state.prove(key)
        assert value == self.model.get(key)
        verify_proof(
            self.state.root(), hash_key(key), None if value is None else hash_value(value), proof
        )

    @invariant()
    def root_is_the_oracle_root(self) -> None:
        assert self.state.root() == reference_smt.state_root(self.model)


TestBlockByBlock = BlockByBlock.TestCase
TestBlockByBlock.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


# --- known answers --------------------------------------------------------------------------
# Self-generated regression values: computed once with medledger.testing.reference_smt (the
# oracle) when the tree was designed, not taken from an outside source. A change here is a
# change of the state-root format and needs a new domain tag.
KNOWN_ROOTS = [
    ({}, "00" * 32),
    ({"a": b"1"}, "ad217dab6c25c8c84352f991e32d001d79d48658819ba64f6017d009ed4209ea"),
    ({"a": b"1", "b": b"2"}, "cb42e10e916c3eade9ae9d9a3e08d6b329eaf8ac35065e0aea4e0e9b2388e3b3"),
    (
        {"a": b"1", "b": b"2", "c": b"3"},
        "8c17f3623e6399b76ac0d407a847f7bcfb8c3d83f0b000c2722c74666b82972f",
    ),
    (
        {"patient/1": b"", "consent/7": b"{}"},
        "e6bb72ca9655916268374650406ca0cd711fe5a50e1d3e5d734ca004b4c879f5",
    ),
    ({"": b""}, "8c94ec46ac1974f7a678d45f6a34af15e7177ef036a71bef75815e2c03086f63"),
]


@pytest.mark.parametrize(("model", "root_hex"), KNOWN_ROOTS)
def test_known_roots(model: dict[str, bytes], root_hex: str) -> None:
    state = MemoryState()
    assert commit(state, dict[str, bytes | None](model)).hex() == root_hex
    assert reference_smt.state_root(model).hex() == root_hex


def test_a_single_key_root_is_its_leaf_hash() -> None:
    """Spelled out from the definitions: no internal node above a lone leaf."""
    sha = hashlib.sha256
    key_hash = sha(b"medledger/state-key/v1\x00a").digest()
    value_hash = sha(b"medledger/state-value/v1\x001").digest()
    assert (key_hash, value_hash) == (hash_key("a"), hash_value(b"1"))
    assert KNOWN_ROOTS[1][1] == sha(b"\x00" + key_hash + value_hash).hexdigest()


# --- proofs ---------------------------------------------------------------------------------
def _proof_of(state: MemoryState, key: str) -> tuple[bytes, bytes | None, StateProof]:
    value, proof = state.prove(key)
    return hash_key(key), None if value is None else hash_value(value), proof


@FAST
@given(states, st.lists(keys, min_size=1, max_size=10))
def test_proofs_of_membership_and_absence_verify(model: dict[str, bytes], asked: list[str]) -> None:
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    for key in [*model, *asked]:
        key_hash, value_hash, proof = _proof_of(state, key)
        assert (value_hash is None) == (key not in model)
        verify_proof(root, key_hash, value_hash, proof)


present_states = st.dictionaries(keys, values, min_size=1, max_size=100)


@FAST
@given(present_states, st.data())
def test_membership_proof_fails_for_a_wrong_value(
    model: dict[str, bytes], data: st.DataObject
) -> None:
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    key = data.draw(st.sampled_from(sorted(model)))
    key_hash, _, proof = _proof_of(state, key)
    with pytest.raises(ProofError):
        verify_proof(root, key_hash, hash_value(model[key] + b"x"), proof)
    with pytest.raises(ProofError, match="present, not absent"):
        verify_proof(root, key_hash, None, proof)


@FAST
@given(present_states, keys, st.data())
def test_proof_fails_for_a_wrong_key(
    model: dict[str, bytes], other: str, data: st.DataObject
) -> None:
    """A key's proof does not prove another key's value, nor that a present key is absent."""
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    key = data.draw(st.sampled_from(sorted(model)))
    _, value_hash, proof = _proof_of(state, key)
    if other != key:
        with pytest.raises(ProofError):
            verify_proof(root, hash_key(other), value_hash, proof)
    absent_hash, _, absence = _proof_of(state, f"absent/{other}")
    verify_proof(root, absent_hash, None, absence)
    with pytest.raises(ProofError):
        verify_proof(root, hash_key(key), None, absence)


@FAST
@given(present_states, keys, st.data())
def test_proof_fails_with_a_flipped_sibling_bit(
    model: dict[str, bytes], asked: str, data: st.DataObject
) -> None:
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    key_hash, value_hash, proof = _proof_of(state, asked)
    if not proof.siblings:
        return  # a lone leaf at the root has no siblings to flip
    i = data.draw(st.integers(0, len(proof.siblings) - 1))
    bit = data.draw(st.integers(0, 255))
    sibling = bytearray(proof.siblings[i])
    sibling[bit // 8] ^= 0x80 >> (bit % 8)
    siblings = (*proof.siblings[:i], bytes(sibling), *proof.siblings[i + 1 :])
    with pytest.raises(ProofError):
        verify_proof(root, key_hash, value_hash, StateProof(siblings, proof.leaf))


@FAST
@given(st.dictionaries(keys, values, min_size=2, max_size=100), keys)
def test_proof_fails_truncated_or_extended(model: dict[str, bytes], asked: str) -> None:
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    key_hash, value_hash, proof = _proof_of(state, asked)
    assert proof.siblings  # two keys or more: the root is an internal node
    for siblings in (
        proof.siblings[1:],  # the deepest sibling dropped
        proof.siblings[:-1],  # the root's child dropped
        (bytes(32), *proof.siblings),  # an empty sibling prepended
        (*proof.siblings, proof.siblings[-1]),  # garbage appended
    ):
        with pytest.raises(ProofError):
            verify_proof(root, key_hash, value_hash, StateProof(siblings, proof.leaf))


@FAST
@given(present_states, st.data())
def test_proof_fails_against_an_old_root(model: dict[str, bytes], data: st.DataObject) -> None:
    """A proof of the current value does not verify against the root before the change, and
    an old proof does not verify against the new root."""
    state = MemoryState()
    old_root = commit(state, dict[str, bytes | None](model))
    key = data.draw(st.sampled_from(sorted(model)))
    key_hash, old_value_hash, old_proof = _proof_of(state, key)
    new_root = commit(state, {key: model[key] + b"new"})
    _, new_value_hash, new_proof = _proof_of(state, key)
    with pytest.raises(ProofError):
        verify_proof(new_root, key_hash, old_value_hash, old_proof)
    with pytest.raises(ProofError):
        verify_proof(old_root, key_hash, new_value_hash, new_proof)


@FAST
@given(present_states, keys)
def test_absence_proof_cannot_claim_a_value(model: dict[str, bytes], asked: str) -> None:
    """Forged membership: an absent key's proof with a made-up value, or with the leaf it ends
    at swapped for a leaf of the asked key."""
    state = MemoryState()
    root = commit(state, dict[str, bytes | None](model))
    key = f"absent/{asked}"
    key_hash, _, proof = _proof_of(state, key)
    with pytest.raises(ProofError):
        verify_proof(root, key_hash, hash_value(b"forged"), proof)
    forged = StateProof(proof.siblings, Leaf(key_hash, hash_value(b"forged")))
    with pytest.raises(ProofError):
        verify_proof(root, key_hash, hash_value(b"forged"), forged)


def test_a_leaf_off_the_key_path_is_rejected() -> None:
    state = MemoryState()
    root = commit(state, {f"k{i}": b"v" for i in range(20)})
    key_hash, _, proof = _proof_of(state, "k3")
    elsewhere = next(
        k for k in (f"k{i}" for i in range(20)) if hash_key(k)[0] >> 7 != key_hash[0] >> 7
    )
    _, _, other = _proof_of(state, elsewhere)
    with pytest.raises(ProofError, match="not on the key's path"):
        verify_proof(root, key_hash, None, StateProof(proof.siblings, other.leaf))


def test_empty_state_proves_absence_only() -> None:
    proof = prove(MemoryNodeStore(), EMPTY_STATE_ROOT, hash_key("a"))
    assert proof == StateProof((), None)
    verify_proof(EMPTY_STATE_ROOT, hash_key("a"), None, proof)
    with pytest.raises(ProofError):
        verify_proof(EMPTY_STATE_ROOT, hash_key("a"), hash_value(b""), proof)


def test_proof_shape_is_checked_on_construction() -> None:
    with pytest.raises(ProofError):
        StateProof((b"\0" * 31,), None)
    with pytest.raises(ProofError):
        StateProof((b"\0" * 32,) * 257, None)
    with pytest.raises(ProofError):
        verify_proof(b"\0" * 31, hash_key("a"), None, StateProof((), None))


# --- the store is checked against the root --------------------------------------------------
def test_update_and_prove_detect_a_store_that_does_not_match_the_root() -> None:
    state = MemoryState()
    root = commit(state, {f"k{i}": b"v" for i in range(30)})
    wrong = bytes(31) + b"\1"
    with pytest.raises(TamperError):
        update(state.tree, wrong, {hash_key("new"): hash_value(b"1")})
    with pytest.raises(TamperError):
        prove(state.tree, wrong, hash_key("k1"))
    # A node missing below the root.
    key, leaf = next((k, n) for k, n in state.tree.nodes.items() if isinstance(n, Leaf))
    del state.tree.nodes[key]
    with pytest.raises(TamperError):
        update(state.tree, root, {leaf.key_hash: hash_value(b"w")})
    with pytest.raises(TamperError):
        prove(state.tree, root, leaf.key_hash)


def test_update_rejects_malformed_changes() -> None:
    store = MemoryNodeStore()
    with pytest.raises(InvalidInputError):
        update(store, EMPTY_STATE_ROOT, {b"short": None})
    with pytest.raises(InvalidInputError):
        update(store, EMPTY_STATE_ROOT, {hash_key("a"): b"short"})
    with pytest.raises(InvalidInputError):
        update(store, b"short", {})


# --- node values and positions --------------------------------------------------------------
@given(st.integers(0, 256), st.data())
def test_node_key_round_trip(depth: int, data: st.DataObject) -> None:
    prefix = data.draw(st.integers(0, (1 << depth) - 1))
    key = node_key(depth, prefix)
    assert len(key) == 1 + (depth + 7) // 8
    assert parse_node_key(key) == (depth, prefix)


def test_node_keys_at_depth_0_and_256_differ() -> None:
    assert node_key(0, 0) == b"\x00"
    assert node_key(256, 0) == bytes(32) + b"\x00"
    assert parse_node_key(bytes(32) + b"\x00") == (256, 0)
    assert node_key(3, 0b101) == b"\xa0\x03"


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01", b"\x40\x01", b"\x00\x09", bytes(33) + b"\x00", b"\x00\x00\x08"],
    ids=["empty", "no-prefix", "unused-bit-set", "too-short", "too-long", "too-long-for-8"],
)
def test_malformed_node_keys_are_rejected(bad: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_node_key(bad)


def test_node_values_enforce_their_shape() -> None:
    with pytest.raises(InvalidInputError):
        Leaf(b"\1" * 31, b"\1" * 32)
    with pytest.raises(InvalidInputError):
        Internal(b"\1" * 32, "x" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Internal(bytes(32), bytes(32))  # an internal node over two empty subtrees


def test_state_keys_must_be_encodable() -> None:
    with pytest.raises(InvalidInputError):
        hash_key("\ud800")
