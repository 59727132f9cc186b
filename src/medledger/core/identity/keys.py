"""Participant signing keys: an Ed25519 key (RFC 8032) named by its did:key.

Every participant -- organization, practitioner, patient -- signs with one Ed25519 key, and its
identity is the did:key of that key (``medledger.core.identity.did_key``), so a signature can be
checked from the signer's DID alone, with no key registry. What this module handles:

- ``ParticipantKey``: a private key built from a 32-byte seed (RFC 8032 §5.1.5), its did:key
  and public key, and ``sign``, which signs the bytes it is given;
- ``verify_signature(did, data, signature)``: RFC 8032 §5.1.7 verification under the key the
  did:key names;
- ``encryption_keypair(key)``: the participant's X25519 encryption key pair (for HPKE key
  wrapping, ``medledger.core.crypto.key_wrap``), derived from the same seed.

Not handled here: randomness (``medledger.adapters.keystore.generate_key`` draws seeds),
storage (passphrase-encrypted key files live in ``medledger.adapters.keystore``), and domain
separation -- callers sign canonical bytes that already carry their own prefix
(``medledger/tx/v1`` ...), never bare payloads.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medledger.core.crypto.key_wrap import SEED_SIZE, X25519KeyPair, x25519_from_seed
from medledger.core.identity.did_key import did_from_public_key, public_key_from_did
from medledger.errors import InvalidInputError, SignatureError

ED25519_SEED_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
#: HKDF ``info`` of the encryption-key seed: a distinct label per key derived from the seed.
ENCRYPTION_KEY_INFO: Final = b"medledger/encryption-key/v1"


class ParticipantKey:
    """An Ed25519 private key and the did:key it is known by.

    The seed is never part of ``repr``/``str``; only ``export_seed`` hands it out, for the key
    store to encrypt. Two keys are equal when they have the same did:key (the same key).
    """

    __slots__ = ("_did", "_key", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidInputError("not an Ed25519 private key", parameter="private_key")
        self._key = private_key
        self._public_key = private_key.public_key().public_bytes_raw()
        self._did = did_from_public_key(self._public_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> ParticipantKey:
        """The key whose RFC 8032 private key (seed) is ``seed``: 32 bytes, deterministic."""
        if not isinstance(seed, bytes) or len(seed) != ED25519_SEED_SIZE:
            raise InvalidInputError("an Ed25519 seed is 32 bytes", parameter="seed")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def did(self) -> str:
        return self._did

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """The 64-byte RFC 8032 signature of ``data`` (deterministic: same data, same bytes)."""
        if not isinstance(data, bytes):
            raise InvalidInputError("only bytes can be signed", parameter="data")
        return self._key.sign(data)

    def export_seed(self) -> bytes:
        """The 32-byte secret seed. For the key store only: never log, print or send it."""
        return self._key.private_bytes_raw()

    def __repr__(self) -> str:
        return f"ParticipantKey(did={self._did!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantKey):
            return NotImplemented
        return self._did == other._did

    def __hash__(self) -> int:
        return hash(self._did)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the seed into caches, queues and core dumps without anyone asking.
        raise TypeError("a ParticipantKey cannot be pickled; store it with the key store")


def verify_signature(did: str, data: bytes, signature: bytes) -> None:
    """Check that ``signature`` is an RFC 8032 §5.1.7 signature of ``data`` by ``did``'s key.

    Returns None or raises: ``SignatureError`` if the signature does not verify (wrong key, wrong
    data, wrong length, flipped bit); ``InvalidInputError`` if ``did`` is not an Ed25519 did:key
    or ``data``/``signature`` are not bytes.
    """
    # 1. The key is the one the did:key names (did:key method, §Ed25519); nothing else is trusted.
    public_key = public_key_from_did(did)
    if not isinstance(data, bytes):
        raise InvalidInputError("only bytes can be verified", parameter="data")
    if not isinstance(signature, bytes):
        raise InvalidInputError("a signature is bytes", parameter="signature")
    # 2. RFC 8032 §5.1.7: a signature is exactly 64 bytes, R || S.
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise SignatureError(f"signature by {did} is not {ED25519_SIGNATURE_SIZE} bytes")
    # 3. Verify over the bytes received.
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError) as e:
        raise SignatureError(f"signature by {did} does not verify") from e


def encryption_keypair(key: ParticipantKey) -> X25519KeyPair:
    """The participant's X25519 encryption key pair, derived from its signing key's seed.

    1. ``seed' = HKDF-SHA256(ikm=seed, salt=None, info=b"medledger/encryption-key/v1",
       length=32)`` (RFC 5869);
    2. ``x25519_from_seed(seed')`` (RFC 9180 §7.1.3 ``DeriveKeyPair``).

    Deterministic and pure: the participant's key file (one seed) is the one backup of both keys.
    The HKDF label separates the domains, so the Ed25519 and X25519 keys are independent: neither
    reveals anything about the other, and no signature is ever an X25519 operation. Rotating the
    encryption key means publishing a new one (``participant.set_encryption_key``); a later
    change can add a random, separately stored encryption key for that.
    """
    if not isinstance(key, ParticipantKey):
        raise InvalidInputError("not a ParticipantKey", parameter="key")
    seed = HKDF(
        algorithm=hashes.SHA256(), length=SEED_SIZE, salt=None, info=ENCRYPTION_KEY_INFO
    ).derive(key.export_seed())
    return x25519_from_seed(seed)
