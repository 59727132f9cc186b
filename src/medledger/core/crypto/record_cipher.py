"""One record version sealed under its own data key, and the salted commitment the ledger anchors.

What this module handles:

- ``RecordAad``: the record version a ciphertext belongs to (record id, version, FHIR resource
  type, patient did:key). Its bytes, ``b"medledger/record/v1\\x00" || JCS(...)`` (RFC 8785), are
  the AES-GCM additional data, so a ciphertext moved to another record, version or patient does
  not open.
- ``seal_record(plaintext, data_key, nonce, aad)``: AES-256-GCM (NIST SP 800-38D) with a 32-byte
  data key and a 12-byte nonce, giving the blob ``0x01 || nonce || ciphertext || tag``.
- ``open_record(blob, data_key, aad)``: the inverse. Every way a blob can be bad -- truncated,
  too long, an unknown version byte, a flipped byte, the wrong key, the wrong AAD -- raises the
  same ``VerificationError("decryption failed")``, with no chained cause, so callers (and anyone
  watching their errors) cannot tell the failures apart.
- ``salted_commitment(salt, canonical_record_bytes)``: HMAC-SHA256 (RFC 2104) keyed with a 32-byte
  salt over ``b"medledger/commitment/v1\\x00" || canonical_record_bytes``; ``verify_commitment``
  recomputes it and compares in constant time.

Not handled here: randomness (the caller draws the data key, the nonce and the salt from a CSPRNG
-- ``os.urandom`` in an adapter -- and passes them in, so everything here is deterministic), key
storage and wrapping (``medledger.core.crypto.key_wrap``), and the canonical form of the record
itself (callers pass ``canonical()`` bytes of the FHIR resource).

A data key seals exactly one record version, once: never reuse a (data key, nonce) pair. With one
key per version, a random 96-bit nonce is far inside the SP 800-38D limits.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.records import RECORD_ID, RESOURCE_TYPE
from medledger.errors import InvalidInputError, TooLargeError, VerificationError

DOMAIN_RECORD: Final = b"medledger/record/v1\x00"
DOMAIN_COMMITMENT: Final = b"medledger/commitment/v1\x00"

#: The blob's first byte: format 1 is AES-256-GCM with a 12-byte nonce and a 16-byte tag.
RECORD_FORMAT_V1: Final = 0x01
DATA_KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
SALT_SIZE: Final = 32
COMMITMENT_SIZE: Final = 32
#: The largest record plaintext sealed or opened (a FHIR resource with inline attachments).
#: To move into ``medledger.config.Limits`` with the other untrusted sizes.
MAX_RECORD_PLAINTEXT: Final = 8 * 1024 * 1024
_OVERHEAD: Final = 1 + NONCE_SIZE + TAG_SIZE

DECRYPTION_FAILED: Final = "decryption failed"


@dataclass(frozen=True, slots=True)
class RecordAad:
    """The record version a ciphertext is bound to; a value that exists is valid.

    ``record_id`` and ``resource_type`` follow the records contract's rules, ``version`` counts
    from 1, and ``patient`` is the patient's Ed25519 did:key, as anchored on the ledger.
    """

    record_id: str
    version: int
    resource_type: str
    patient: str

    def __post_init__(self) -> None:
        if not isinstance(self.record_id, str) or not RECORD_ID.fullmatch(self.record_id):
            raise InvalidInputError(
                "record_id must be 1-64 of [A-Za-z0-9._-]", parameter="record_id"
            )
        if (
            isinstance(self.version, bool)
            or not isinstance(self.version, int)
            or not 1 <= self.version <= MAX_SAFE_INTEGER
        ):
            raise InvalidInputError(
                f"version must be an integer in 1..{MAX_SAFE_INTEGER}", parameter="version"
            )
        if not isinstance(self.resource_type, str) or not RESOURCE_TYPE.fullmatch(
            self.resource_type
        ):
            raise InvalidInputError(
                "resource_type must be a FHIR resource type name", parameter="resource_type"
            )
        if not isinstance(self.patient, str) or not is_did_key(self.patient):
            raise InvalidInputError("patient must be an Ed25519 did:key", parameter="patient")

    def to_bytes(self) -> bytes:
        """``b"medledger/record/v1\\x00" || JCS({patient, record_id, resource_type, version})``."""
        return DOMAIN_RECORD + canonical(
            {
                "patient": self.patient,
                "record_id": self.record_id,
                "resource_type": self.resource_type,
                "version": self.version,
            }
        )


def seal_record(plaintext: bytes, data_key: bytes, nonce: bytes, aad: RecordAad) -> bytes:
    """Encrypt one record version: ``0x01 || nonce || AES-256-GCM(key, nonce, plaintext, aad)``.

    Raises ``TooLargeError`` for a plaintext over ``MAX_RECORD_PLAINTEXT`` and
    ``InvalidInputError`` for a key or nonce of the wrong size. Deterministic: the caller owns
    the randomness of ``data_key`` and ``nonce`` and must never reuse the pair.
    """
    _check_bytes(plaintext, "plaintext")
    if len(plaintext) > MAX_RECORD_PLAINTEXT:
        raise TooLargeError(
            f"a record plaintext is at most {MAX_RECORD_PLAINTEXT} bytes", parameter="plaintext"
        )
    _check_size(data_key, DATA_KEY_SIZE, "data_key")
    _check_size(nonce, NONCE_SIZE, "nonce")
    _check_aad(aad)
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, aad.to_bytes())
    return bytes([RECORD_FORMAT_V1]) + nonce + sealed


def open_record(blob: bytes, data_key: bytes, aad: RecordAad) -> bytes:
    """Decrypt a blob made by ``seal_record`` for exactly this record version.

    The blob is untrusted: anything wrong with it raises ``VerificationError("decryption
    failed")`` and nothing else. ``InvalidInputError`` is only for the caller's own mistakes (a
    key of the wrong size, an ``aad`` that is not a ``RecordAad``).
    """
    _check_size(data_key, DATA_KEY_SIZE, "data_key")
    _check_aad(aad)
    # 1. Framing: bytes, one known format, a length a sealed record can have.
    if (
        not isinstance(blob, bytes)
        or not _OVERHEAD <= len(blob) <= _OVERHEAD + MAX_RECORD_PLAINTEXT
        or blob[0] != RECORD_FORMAT_V1
    ):
        _fail()
    # 2. Authenticated decryption under the record version's AAD (SP 800-38D §7.2).
    nonce, sealed = blob[1 : 1 + NONCE_SIZE], memoryview(blob)[1 + NONCE_SIZE :]  # no copy
    try:
        plaintext: bytes | None = AESGCM(data_key).decrypt(nonce, sealed, aad.to_bytes())
    except InvalidTag:
        plaintext = None
    if plaintext is None:
        _fail()  # outside the except block, so no exception context is attached either
    return plaintext


def salted_commitment(salt: bytes, canonical_record_bytes: bytes) -> bytes:
    """HMAC-SHA256(salt, ``b"medledger/commitment/v1\\x00" || canonical_record_bytes``).

    The salt (32 random bytes, kept off-chain with the data key) hides the record from anyone who
    could guess its content; destroying it leaves the commitment unlinkable (crypto-shredding).
    """
    _check_size(salt, SALT_SIZE, "salt")
    _check_bytes(canonical_record_bytes, "canonical_record_bytes")
    return hmac.new(salt, DOMAIN_COMMITMENT + canonical_record_bytes, hashlib.sha256).digest()


def verify_commitment(salt: bytes, canonical_record_bytes: bytes, commitment: bytes) -> None:
    """Check, in constant time, that ``commitment`` commits to this record under this salt.

    Returns None or raises ``VerificationError`` (also for a commitment that is not 32 bytes).
    """
    expected = salted_commitment(salt, canonical_record_bytes)
    if not isinstance(commitment, bytes) or not hmac.compare_digest(expected, commitment):
        raise VerificationError("commitment does not match the record")


def _fail() -> NoReturn:
    # One message, no cause and no context: the failures must be indistinguishable.
    raise VerificationError(DECRYPTION_FAILED) from None


def _check_bytes(value: object, parameter: str) -> None:
    if not isinstance(value, bytes):
        raise InvalidInputError(f"{parameter} must be bytes", parameter=parameter)


def _check_size(value: object, size: int, parameter: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise InvalidInputError(f"{parameter} must be {size} bytes", parameter=parameter)


def _check_aad(aad: object) -> None:
    if not isinstance(aad, RecordAad):
        raise InvalidInputError("aad must be a RecordAad", parameter="aad")
