"""Access-event batches (medledger.core.audit.batch): roots and proofs against the naive
RFC 9162 reference tree (medledger.testing.reference_merkle), and the anchor payload the
access-batch contract accepts."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.core.audit.batch import (
    MAX_BATCH_PROOF_HASHES,
    SealedBatch,
    batch_inclusion_proof,
    batch_root,
    leaf_hashes,
    new_batch_id,
    proof_from_levels,
    seal_batch,
    tree_levels,
)
from medledger.core.ledger.contracts.access_batch import BATCH_ID, MAX_BATCH_EVENTS
from medledger.core.merkle import leaf_hash, verify_inclusion
from medledger.errors import InvalidInputError, ProofError
from medledger.testing.reference_merkle import mth, path
from tests.unit.audit.events import T0, event_id, make_event

BATCH = event_id(999)


def leaves_of(entries: list[bytes]) -> list[bytes]:
    return [leaf_hash(e) for e in entries]


@given(st.lists(st.binary(max_size=12), min_size=1, max_size=70))
def test_root_and_every_path_match_the_reference_tree(entries: list[bytes]) -> None:
    hashes = leaves_of(entries)
    levels = tree_levels(hashes)
    assert batch_root(hashes) == levels[-1][0] == mth(entries)
    for i in range(len(entries)):
        assert proof_from_levels(levels, i) == path(i, entries)
        assert batch_inclusion_proof(hashes, i) == path(i, entries)


@given(st.integers(1, 300), st.data())
def test_every_proof_verifies_and_fails_one_index_off(size: int, data: st.DataObject) -> None:
    entries = [i.to_bytes(4, "big") for i in range(size)]
    hashes = leaves_of(entries)
    root = batch_root(hashes)
    i = data.draw(st.integers(0, size - 1))
    proof = batch_inclusion_proof(hashes, i)
    verify_inclusion(hashes[i], i, size, proof, root)
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(hashes[i], (i + 1) % size, size, proof, root)


def test_a_proof_is_short_for_the_largest_batch() -> None:
    assert MAX_BATCH_PROOF_HASHES == 20
    assert (MAX_BATCH_EVENTS - 1).bit_length() == MAX_BATCH_PROOF_HASHES


@pytest.mark.parametrize("index", [-1, 3])
def test_a_proof_index_must_be_in_the_batch(index: int) -> None:
    with pytest.raises(InvalidInputError):
        batch_inclusion_proof(leaves_of([b"a", b"b", b"c"]), index)


def test_an_empty_batch_has_no_tree() -> None:
    with pytest.raises(InvalidInputError):
        tree_levels([])


def test_seal_hashes_each_event_as_a_leaf_of_its_bytes() -> None:
    events = [make_event(n) for n in range(5)]
    batch = seal_batch(BATCH, events)
    assert batch.leaves == tuple(hashlib.sha256(b"\x00" + e.leaf_bytes()).digest() for e in events)
    assert tuple(leaf_hashes(events)) == batch.leaves
    assert batch.root == mth([e.leaf_bytes() for e in events])
    assert batch.count == 5
    assert (batch.first_time_ms, batch.last_time_ms) == (T0, T0 + 4)


def test_the_time_range_holds_events_that_arrive_out_of_order() -> None:
    batch = seal_batch(BATCH, [make_event(5), make_event(1), make_event(9)])
    assert (batch.first_time_ms, batch.last_time_ms) == (T0 + 1, T0 + 9)


def test_the_anchor_payload_is_what_the_access_batch_contract_parses() -> None:
    batch = seal_batch(BATCH, [make_event(n) for n in range(3)])
    assert batch.anchor_payload() == {
        "batch_id": BATCH,
        "root": batch.root.hex(),
        "count": 3,
        "first_time_ms": T0,
        "last_time_ms": T0 + 2,
    }


@given(st.binary(min_size=16, max_size=16))
def test_batch_ids_are_valid_for_the_contract(raw: bytes) -> None:
    assert BATCH_ID.fullmatch(new_batch_id(raw))


@pytest.mark.parametrize(
    "change",
    [
        {"batch_id": "short"},
        {"batch_id": "has space in it"},
        {"events": ()},
        {"leaves": ()},
        {"root": b"\x00" * 31},
        {"levels": ((b"\x00" * 32,),)},
    ],
)
def test_a_sealed_batch_keeps_its_invariants(change: dict[str, object]) -> None:
    batch = seal_batch(BATCH, [make_event(0), make_event(1)])
    fields = {
        "batch_id": batch.batch_id,
        "events": batch.events,
        "leaves": batch.leaves,
        "root": batch.root,
        "levels": batch.levels,
        **change,
    }
    with pytest.raises(InvalidInputError):
        SealedBatch(**fields)  # type: ignore[arg-type]
