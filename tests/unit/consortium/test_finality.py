"""Finality (ADR 0016): > 2/3 of authorities co-signing one block checkpoint."""

from __future__ import annotations

import dataclasses

import pytest

from medledger.config import Limits
from medledger.core.consortium.finality import (
    Vote,
    cast_vote,
    certificate,
    evaluate_finality,
    parse_vote,
    quorum,
    verify_vote,
    vote_verifier,
)
from medledger.core.cosignature import open_cosignatures
from medledger.core.identity.keys import ParticipantKey
from medledger.errors import InvalidInputError, SignatureError

KEYS = [ParticipantKey.from_seed(bytes([i]) * 32) for i in range(1, 5)]
DIDS = [k.did for k in KEYS]
H1, H2 = b"\x11" * 32, b"\x22" * 32


def vote(k: ParticipantKey, header_hash: bytes = H1, height: int = 7) -> Vote:
    return cast_vote(
        k,
        network="net",
        height=height,
        position=9,
        header_hash=header_hash,
        log_size=40,
        log_root=b"\x33" * 32,
        time_s=1_700_000_000,
    )


@pytest.mark.parametrize(("n", "q"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5)])
def test_the_quorum_is_more_than_two_thirds(n: int, q: int) -> None:
    assert quorum(n) == q
    assert 3 * q > 2 * n >= 3 * (q - 1)


def test_a_vote_round_trips_and_verifies() -> None:
    v = vote(KEYS[0])
    parsed = parse_vote(v.to_bytes(), "net")
    assert parsed == v
    verify_vote(parsed, DIDS)


def test_a_forged_vote_does_not_verify() -> None:
    v = dataclasses.replace(vote(KEYS[0]), header_hash=H2)  # the signature was over H1
    with pytest.raises(SignatureError):
        verify_vote(v, DIDS)


def test_a_vote_by_a_non_authority_does_not_count() -> None:
    outsider = ParticipantKey.from_seed(b"\x09" * 32)
    with pytest.raises(SignatureError):
        verify_vote(vote(outsider), DIDS)


def test_a_non_canonical_vote_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        parse_vote(b" " + vote(KEYS[0]).to_bytes(), "net")


def test_final_at_quorum_and_the_dissenter_is_named() -> None:
    votes = [vote(KEYS[0]), vote(KEYS[1]), vote(KEYS[2]), vote(KEYS[3], H2)]
    result = evaluate_finality(7, votes, DIDS)
    assert result.is_final and result.final_hash == H1
    assert result.dissenters == {DIDS[3]: H2}


def test_not_final_below_quorum() -> None:
    result = evaluate_finality(7, [vote(KEYS[0]), vote(KEYS[1])], DIDS)
    assert not result.is_final


def test_an_equivocating_authority_counts_for_neither_hash() -> None:
    votes = [vote(KEYS[0]), vote(KEYS[1]), vote(KEYS[2]), vote(KEYS[2], H2)]
    assert not evaluate_finality(7, votes, DIDS).is_final


def test_the_certificate_is_a_c2sp_note_with_a_quorum_of_cosignatures() -> None:
    votes = [vote(k) for k in KEYS[:3]]
    note = certificate(votes, H1)
    assert b"\nblock 7 " + H1.hex().encode() + b"\nposition 9\n" in note
    opened = open_cosignatures(note, [vote_verifier(d) for d in DIDS], Limits(), quorum=3)
    assert {c.name for c in opened} == set(DIDS[:3])
    with pytest.raises(SignatureError):
        open_cosignatures(note, [vote_verifier(d) for d in DIDS], Limits(), quorum=4)
