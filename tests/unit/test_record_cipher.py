"""Record encryption and salted commitments (medledger.core.crypto.record_cipher).

What is checked: the blob is ``0x01 || nonce || AES-256-GCM(key, nonce, pt, aad)`` with the AAD
``b"medledger/record/v1\\x00" || JCS({patient, record_id, resource_type, version})``, spelled out
here byte for byte and computed independently with ``AESGCM``; round trips over sizes; and every
bad blob -- truncated, extended, an unknown version byte, any flipped byte, the wrong key, the AAD
of another record, version, resource type or patient, longer than any record -- fails with the
one identical ``VerificationError("decryption failed")``, with no chained cause. Commitments are
HMAC-SHA256(salt, ``b"medledger/commitment/v1\\x00" || record``), checked against ``hmac``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.crypto import (
    RecordAad,
    open_record,
    salted_commitment,
    seal_record,
    verify_commitment,
)
from medledger.core.crypto.record_cipher import (
    DECRYPTION_FAILED,
    MAX_RECORD_PLAINTEXT,
    NONCE_SIZE,
    TAG_SIZE,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.errors import InvalidInputError, TooLargeError, VerificationError

PATIENT = ParticipantKey.from_seed(bytes(range(32))).did
OTHER_PATIENT = ParticipantKey.from_seed(bytes(range(1, 33))).did
KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
NONCE = bytes(range(200, 212))
AAD = RecordAad(record_id="rec-1", version=1, resource_type="Observation", patient=PATIENT)
PLAINTEXT = b'{"resourceType":"Observation","status":"final"}'
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE


def seal(plaintext: bytes = PLAINTEXT) -> bytes:
    return seal_record(plaintext, KEY, NONCE, AAD)


def assert_decryption_failed(function: Callable[..., object], *args: object) -> VerificationError:
    """The one failure every bad blob must give: same type, same message, no cause."""
    with pytest.raises(VerificationError) as info:
        function(*args)
    error = info.value
    assert type(error) is VerificationError
    assert str(error) == DECRYPTION_FAILED
    assert error.__cause__ is None
    assert error.__context__ is None
    assert error.__suppress_context__
    return error


# --- format ----------------------------------------------------------------------------------
def test_aad_bytes_are_the_domain_and_the_jcs_of_the_record_version() -> None:
    expected = (
        b"medledger/record/v1\x00"
        b'{"patient":"' + PATIENT.encode() + b'","record_id":"rec-1",'
        b'"resource_type":"Observation","version":1}'
    )
    assert AAD.to_bytes() == expected


def test_blob_is_version_nonce_and_aes256gcm_under_the_aad() -> None:
    blob = seal()
    assert blob[0] == 0x01
    assert blob[1:13] == NONCE
    assert len(blob) == len(PLAINTEXT) + OVERHEAD
    # An independent computation from the spelled-out format.
    assert blob == b"\x01" + NONCE + AESGCM(KEY).encrypt(NONCE, PLAINTEXT, AAD.to_bytes())


def test_seal_is_deterministic_in_its_inputs() -> None:
    assert seal() == seal()
    assert seal_record(PLAINTEXT, KEY, bytes(12), AAD) != seal()


# --- round trips -----------------------------------------------------------------------------
record_ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
resource_types = st.from_regex(r"[A-Z][A-Za-z]{1,63}", fullmatch=True)
aads = st.builds(
    RecordAad,
    record_id=record_ids,
    version=st.integers(1, MAX_SAFE_INTEGER),
    resource_type=resource_types,
    patient=st.sampled_from([PATIENT, OTHER_PATIENT]),
)


@given(
    plaintext=st.one_of(st.binary(max_size=256), st.binary(min_size=4096, max_size=70_000)),
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    aad=aads,
)
def test_open_inverts_seal(plaintext: bytes, key: bytes, nonce: bytes, aad: RecordAad) -> None:
    blob = seal_record(plaintext, key, nonce, aad)
    assert len(blob) == len(plaintext) + OVERHEAD
    assert open_record(blob, key, aad) == plaintext


@settings(max_examples=25)
@given(aad=aads, other=aads)
def test_a_blob_opens_only_under_its_own_aad(aad: RecordAad, other: RecordAad) -> None:
    blob = seal_record(PLAINTEXT, KEY, NONCE, aad)
    if other.to_bytes() == aad.to_bytes():
        assert open_record(blob, KEY, other) == PLAINTEXT
    else:
        assert_decryption_failed(open_record, blob, KEY, other)


def test_empty_and_largest_plaintexts_round_trip() -> None:
    assert open_record(seal(b""), KEY, AAD) == b""
    largest = bytes(MAX_RECORD_PLAINTEXT)
    assert open_record(seal(largest), KEY, AAD) == largest


def test_oversize_plaintext_is_refused_before_encryption() -> None:
    with pytest.raises(TooLargeError) as info:
        seal(bytes(MAX_RECORD_PLAINTEXT + 1))
    assert info.value.parameter == "plaintext"


# --- the bad-blob table ----------------------------------------------------------------------
def _flip(blob: bytes, index: int, mask: int = 0x01) -> bytes:
    return blob[:index] + bytes([blob[index] ^ mask]) + blob[index + 1 :]


GOOD = seal()

BAD_OPENS: dict[str, tuple[object, bytes, RecordAad]] = {
    "empty": (b"", KEY, AAD),
    "version byte only": (GOOD[:1], KEY, AAD),
    "header only": (GOOD[: 1 + NONCE_SIZE], KEY, AAD),
    "one byte short of the smallest blob": (GOOD[: OVERHEAD - 1], KEY, AAD),
    "truncated by one byte": (GOOD[:-1], KEY, AAD),
    "tag cut off": (GOOD[:-TAG_SIZE], KEY, AAD),
    "one byte appended": (GOOD + b"\x00", KEY, AAD),
    "garbage prepended": (b"\x01" + GOOD, KEY, AAD),
    "version byte 0x00": (b"\x00" + GOOD[1:], KEY, AAD),
    "version byte 0x02": (b"\x02" + GOOD[1:], KEY, AAD),
    "version byte 0xff": (b"\xff" + GOOD[1:], KEY, AAD),
    "flipped nonce byte": (_flip(GOOD, 1), KEY, AAD),
    "flipped ciphertext byte": (_flip(GOOD, 1 + NONCE_SIZE), KEY, AAD),
    "flipped tag byte": (_flip(GOOD, len(GOOD) - 1, 0x80), KEY, AAD),
    "wrong key": (GOOD, OTHER_KEY, AAD),
    "another record id": (GOOD, KEY, replace(AAD, record_id="rec-2")),
    "another version": (GOOD, KEY, replace(AAD, version=2)),
    "another resource type": (GOOD, KEY, replace(AAD, resource_type="Condition")),
    "another patient": (GOOD, KEY, replace(AAD, patient=OTHER_PATIENT)),
    "longer than any record": (b"\x01" + bytes(MAX_RECORD_PLAINTEXT + OVERHEAD), KEY, AAD),
    "not bytes": (bytearray(GOOD), KEY, AAD),
}


@pytest.mark.parametrize("case", sorted(BAD_OPENS))
def test_every_bad_blob_fails_the_same_way(case: str) -> None:
    blob, key, aad = BAD_OPENS[case]
    assert_decryption_failed(open_record, blob, key, aad)


def test_the_failures_are_indistinguishable() -> None:
    errors = [assert_decryption_failed(open_record, *case) for case in BAD_OPENS.values()]
    assert {(type(e), str(e), e.args, e.reason) for e in errors} == {
        (VerificationError, DECRYPTION_FAILED, (DECRYPTION_FAILED,), None)
    }


def test_every_single_byte_flip_is_caught() -> None:
    blob = seal(b"sixteen bytes!!!")
    for index in range(len(blob)):
        for mask in (0x01, 0x80):
            assert_decryption_failed(open_record, _flip(blob, index, mask), KEY, AAD)


def test_ciphertext_replayed_under_another_patient_does_not_open() -> None:
    # Copying a patient's blob into another patient's record (same key, next version) fails.
    moved = replace(AAD, patient=OTHER_PATIENT, version=2)
    assert_decryption_failed(open_record, seal(), KEY, moved)


def test_version_rollback_to_an_older_ciphertext_does_not_open() -> None:
    v1 = seal_record(b"old", KEY, NONCE, AAD)
    assert_decryption_failed(open_record, v1, KEY, replace(AAD, version=2))


# --- the caller's own mistakes are not decryption failures ----------------------------------
@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: seal_record(PLAINTEXT, KEY[:16], NONCE, AAD), "data_key"),
        (lambda: seal_record(PLAINTEXT, KEY, NONCE[:8], AAD), "nonce"),
        (lambda: seal_record(cast(Any, bytearray(PLAINTEXT)), KEY, NONCE, AAD), "plaintext"),
        (lambda: seal_record(PLAINTEXT, KEY, NONCE, cast(Any, AAD.to_bytes())), "aad"),
        (lambda: open_record(GOOD, KEY + b"\x00", AAD), "data_key"),
        (lambda: open_record(GOOD, KEY, cast(Any, "rec-1")), "aad"),
    ],
)
def test_caller_errors_are_invalid_input(call: Callable[[], object], parameter: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.parameter == parameter


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("record_id", ""),
        ("record_id", "a b"),
        ("record_id", "x" * 65),
        ("record_id", 7),
        ("version", 0),
        ("version", -1),
        ("version", True),
        ("version", MAX_SAFE_INTEGER + 1),
        ("version", "1"),
        ("resource_type", "observation"),
        ("resource_type", "Observation/1"),
        ("patient", "did:example:123"),
        ("patient", PATIENT + "x"),
        ("patient", None),
    ],
)
def test_record_aad_refuses_invalid_fields(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        replace(AAD, **{field: cast(Any, value)})
    assert info.value.parameter == field


# --- commitments -----------------------------------------------------------------------------
SALT = bytes(range(50, 82))
RECORD = b'{"id":"rec-1","resourceType":"Observation","status":"final"}'


def test_commitment_is_hmac_sha256_over_the_domain_and_the_record() -> None:
    expected = hmac.new(SALT, b"medledger/commitment/v1\x00" + RECORD, hashlib.sha256).digest()
    assert salted_commitment(SALT, RECORD) == expected
    assert len(expected) == 32


def test_commitment_verifies_for_its_record_and_salt() -> None:
    verify_commitment(SALT, RECORD, salted_commitment(SALT, RECORD))


@pytest.mark.parametrize(
    ("salt", "record", "commitment"),
    [
        (SALT, RECORD.replace(b"final", b"amended"), salted_commitment(SALT, RECORD)),
        (SALT, RECORD + b" ", salted_commitment(SALT, RECORD)),
        (SALT, RECORD[:-1], salted_commitment(SALT, RECORD)),
        (bytes(32), RECORD, salted_commitment(SALT, RECORD)),
        (_flip(SALT, 31), RECORD, salted_commitment(SALT, RECORD)),
        (SALT, RECORD, _flip(salted_commitment(SALT, RECORD), 0)),
        (SALT, RECORD, salted_commitment(SALT, RECORD)[:-1]),
        (SALT, RECORD, b""),
    ],
    ids=[
        "altered record",
        "record with a byte appended",
        "truncated record",
        "another salt",
        "salt with a flipped bit",
        "flipped commitment",
        "short commitment",
        "empty commitment",
    ],
)
def test_commitment_fails_for_anything_else(salt: bytes, record: bytes, commitment: bytes) -> None:
    with pytest.raises(VerificationError):
        verify_commitment(salt, record, commitment)


@given(
    record=st.binary(max_size=512),
    salt=st.binary(min_size=32, max_size=32),
    other_salt=st.binary(min_size=32, max_size=32),
)
def test_commitments_hide_the_record_behind_the_salt(
    record: bytes, salt: bytes, other_salt: bytes
) -> None:
    commitment = salted_commitment(salt, record)
    verify_commitment(salt, record, commitment)
    assert (commitment == salted_commitment(other_salt, record)) == (salt == other_salt)


def test_commitment_salt_must_be_32_bytes() -> None:
    with pytest.raises(InvalidInputError) as info:
        salted_commitment(SALT[:16], RECORD)
    assert info.value.parameter == "salt"
