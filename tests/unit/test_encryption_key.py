"""A participant's X25519 encryption key, derived from its seed (medledger.core.identity.keys).

The oracle is a naive transcription of RFC 5869 HKDF-SHA256 over ``hmac`` (Extract with the
default all-zero salt, then Expand for one block), fed to ``x25519_from_seed`` (RFC 9180
§7.1.3, itself checked against the RFC's vectors in test_key_wrap.py). Then the properties the
derivation promises: deterministic, one key per seed, independent of the Ed25519 key, and a
working HPKE recipient key.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.core.crypto.key_wrap import (
    WrapInfo,
    X25519KeyPair,
    unwrap_key,
    wrap_key,
    x25519_from_seed,
)
from medledger.core.identity.keys import ENCRYPTION_KEY_INFO, ParticipantKey, encryption_keypair
from medledger.core.ledger.contracts.common import parse_enc_key
from medledger.errors import InvalidInputError, VerificationError

SEEDS = st.binary(min_size=32, max_size=32)


def rfc5869_hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 §2.2-2.3 with no salt (HashLen zeros) and L = 32: one block, T(1)."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_the_label_is_the_documented_one() -> None:
    assert ENCRYPTION_KEY_INFO == b"medledger/encryption-key/v1"


@given(SEEDS)
def test_matches_the_rfc5869_transcription(seed: bytes) -> None:
    expected = x25519_from_seed(rfc5869_hkdf_sha256(seed, b"medledger/encryption-key/v1"))
    pair = encryption_keypair(ParticipantKey.from_seed(seed))
    assert pair.public_key == expected.public_key
    assert pair.private_key == expected.private_key


@given(SEEDS)
def test_deterministic(seed: bytes) -> None:
    first = encryption_keypair(ParticipantKey.from_seed(seed))
    again = encryption_keypair(ParticipantKey.from_seed(seed))
    assert (first.private_key, first.public_key) == (again.private_key, again.public_key)


@given(SEEDS, SEEDS)
def test_differs_per_seed(seed: bytes, other: bytes) -> None:
    if seed != other:
        mine = encryption_keypair(ParticipantKey.from_seed(seed))
        theirs = encryption_keypair(ParticipantKey.from_seed(other))
        assert mine.public_key != theirs.public_key
        assert mine.private_key != theirs.private_key


@given(SEEDS)
def test_independent_of_the_signing_key(seed: bytes) -> None:
    key = ParticipantKey.from_seed(seed)
    pair = encryption_keypair(key)
    assert pair.public_key != key.public_key
    assert pair.private_key != seed
    # Not the seed fed straight to DeriveKeyPair either: the HKDF label separates the domains.
    assert pair.public_key != x25519_from_seed(seed).public_key


@given(SEEDS)
def test_the_public_key_is_publishable(seed: bytes) -> None:
    public_key = encryption_keypair(ParticipantKey.from_seed(seed)).public_key
    assert parse_enc_key(public_key.hex()) == public_key.hex()


def test_a_wrap_to_the_public_key_opens_with_the_derived_private_key() -> None:
    key = ParticipantKey.from_seed(bytes(range(32)))
    pair = encryption_keypair(key)
    data_key = bytes(range(32, 64))
    info = WrapInfo("rec-1", 1, key.did, "patient")
    wrapped = wrap_key(data_key, pair.public_key, info)
    assert unwrap_key(wrapped, pair.private_key, info) == data_key
    # and only with it: not with the keys another seed gives
    other = encryption_keypair(ParticipantKey.from_seed(bytes(32)))
    with pytest.raises(VerificationError):
        unwrap_key(wrapped, other.private_key, info)


def test_returns_a_key_pair_and_refuses_anything_but_a_participant_key() -> None:
    assert isinstance(encryption_keypair(ParticipantKey.from_seed(bytes(32))), X25519KeyPair)
    with pytest.raises(InvalidInputError):
        encryption_keypair(bytes(32))  # type: ignore[arg-type]
