"""Data keys wrapped to one recipient with HPKE (RFC 9180): releasing a key is granting access.

The suite is fixed: mode_base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (RFC 9180
§7: kem_id 0x0020, kdf_id 0x0001, aead_id 0x0002), through the single-shot API (§6.1) with an
empty AAD and everything to bind in ``info``, as §8.1 recommends. What this module handles:

- ``WrapInfo``: what a wrap is for -- record id, version, recipient (a did or node id) and the
  grant the key was released under, if any. Its bytes, ``b"medledger/key-wrap/v1\\x00" ||
  JCS(...)`` (RFC 8785), are the HPKE ``info``, so a wrap made for one record version, recipient
  or grant does not open as another.
- ``wrap_key(data_key, recipient_public_key, info)``: ``0x01 || enc (32) || ct (48)``, 81 bytes.
- ``unwrap_key(wrapped, recipient_private_key, info)``: the 32-byte data key. Every way a wrap
  can be bad -- wrong length, unknown version byte, a flipped byte, another recipient's key,
  another ``info`` -- raises the same ``VerificationError("decryption failed")``, with no chained
  cause.
- ``x25519_from_seed(seed)``: a participant's X25519 key pair from 32 seed bytes, by RFC 9180
  §7.1.3 ``DeriveKeyPair`` for DHKEM(X25519, HKDF-SHA256) -- deterministic, and checked against
  the RFC's Appendix A vectors.

Randomness: this is the one place in ``medledger.core`` that draws random bytes. HPKE encryption
needs a fresh ephemeral X25519 key per wrap (RFC 9180 §4.1 ``Encap``), and ``cryptography``'s
``hpke.Suite.encrypt`` (v50) generates it inside OpenSSL from the OS CSPRNG; its API takes no
ephemeral key, so ``wrap_key`` is not deterministic: two wraps of the same key differ. Everything
else here is deterministic (``unwrap_key``, ``x25519_from_seed``, ``WrapInfo``). The tests check
the format against an independent implementation (``pyhpke``) with a fixed ephemeral key.

No Ed25519 -> X25519 conversion: a participant's did:key (Ed25519) only signs. For receiving keys
each participant has a separate X25519 encryption key, published on the ledger next to its
did:key (``participant.set_encryption_key``). Today it is derived from the key file's seed with
HKDF under its own label (``identity.keys.encryption_keypair``: one backup, independent keys);
reusing one key for signing and key agreement would couple two protocols' security. Rotating it
means publishing another key.

Not handled here: drawing data keys and seeds (an adapter does, with ``os.urandom``), storing
private keys (the key store), and deciding who may receive a key (the access gate).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.records import RECORD_ID
from medledger.errors import InvalidInputError, VerificationError

DOMAIN_KEY_WRAP: Final = b"medledger/key-wrap/v1\x00"

#: The wrap's first byte: format 1 is the RFC 9180 suite 0x0020/0x0001/0x0002 in mode_base.
WRAP_FORMAT_V1: Final = 0x01
KEM_ID: Final = 0x0020
KDF_ID: Final = 0x0001
AEAD_ID: Final = 0x0002
DATA_KEY_SIZE: Final = 32
X25519_KEY_SIZE: Final = 32
SEED_SIZE: Final = 32
ENC_SIZE: Final = 32
TAG_SIZE: Final = 16
WRAPPED_SIZE: Final = 1 + ENC_SIZE + DATA_KEY_SIZE + TAG_SIZE

#: A recipient (did:key, node id) or grant id: printable ASCII, no spaces, bounded.
IDENTIFIER: Final = re.compile(r"[\x21-\x7e]{1,128}")

DECRYPTION_FAILED: Final = "decryption failed"

_SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_HPKE_V1: Final = b"HPKE-v1"
_KEM_SUITE_ID: Final = b"KEM" + KEM_ID.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class WrapInfo:
    """What a wrapped key is for; a value that exists is valid.

    ``recipient`` names who the key is wrapped to (a did:key or a node id) and ``grant`` the
    consent grant it was released under (``None`` for the author's own wrap).
    """

    record_id: str
    version: int
    recipient: str
    grant: str | None = None

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
        if not isinstance(self.recipient, str) or not IDENTIFIER.fullmatch(self.recipient):
            raise InvalidInputError(
                "recipient must be 1-128 printable ASCII characters", parameter="recipient"
            )
        if self.grant is not None and (
            not isinstance(self.grant, str) or not IDENTIFIER.fullmatch(self.grant)
        ):
            raise InvalidInputError(
                "grant must be null or 1-128 printable ASCII characters", parameter="grant"
            )

    def to_bytes(self) -> bytes:
        """``b"medledger/key-wrap/v1\\x00" || JCS({grant, recipient, record_id, version})``."""
        return DOMAIN_KEY_WRAP + canonical(
            {
                "grant": self.grant,
                "recipient": self.recipient,
                "record_id": self.record_id,
                "version": self.version,
            }
        )


@dataclass(frozen=True, slots=True, eq=False)
class X25519KeyPair:
    """A participant's X25519 encryption key pair (RFC 7748), raw 32-byte encodings.

    The private key is never part of ``repr``, is not pickled, and is not compared: two pairs are
    equal when their public keys are (the constructor checks the public key is the private
    key's, so that is the same key).
    """

    private_key: bytes = field(repr=False)
    public_key: bytes

    def __post_init__(self) -> None:
        _check_size(self.private_key, X25519_KEY_SIZE, "private_key")
        _check_size(self.public_key, X25519_KEY_SIZE, "public_key")
        derived = X25519PrivateKey.from_private_bytes(self.private_key).public_key()
        if not hmac.compare_digest(derived.public_bytes_raw(), self.public_key):
            raise InvalidInputError("public_key is not the private key's", parameter="public_key")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, X25519KeyPair):
            return NotImplemented
        return self.public_key == other.public_key

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the private key into caches, queues and core dumps unasked.
        raise TypeError("an X25519KeyPair cannot be pickled; store it with the key store")


def x25519_from_seed(seed: bytes) -> X25519KeyPair:
    """RFC 9180 §7.1.3 ``DeriveKeyPair(ikm)`` for DHKEM(X25519, HKDF-SHA256).

    1. ``dkp_prk = LabeledExtract("", "dkp_prk", ikm)``;
    2. ``sk = LabeledExpand(dkp_prk, "sk", "", 32)``, used as the X25519 scalar (RFC 7748 §5
       clamps it when it is used);
    3. ``pk = X25519(sk, 9)``.
    """
    _check_size(seed, SEED_SIZE, "seed")
    dkp_prk = _labeled_extract(b"", b"dkp_prk", seed)
    private_key = _labeled_expand(dkp_prk, b"sk", b"", X25519_KEY_SIZE)
    public_key = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    return X25519KeyPair(private_key=private_key, public_key=public_key)


def wrap_key(data_key: bytes, recipient_public_key: bytes, info: WrapInfo) -> bytes:
    """HPKE-seal ``data_key`` to ``recipient_public_key``: ``0x01 || enc || ct`` (81 bytes).

    RFC 9180 §6.1 ``Seal`` in mode_base with ``info = info.to_bytes()`` and an empty AAD. Draws
    a fresh ephemeral key (see the module docstring). Raises ``InvalidInputError`` for a data key
    that is not 32 bytes or a public key that is not 32 bytes or is a low-order point (the DH
    output would be all zeros, RFC 9180 §7.1.4).
    """
    _check_size(data_key, DATA_KEY_SIZE, "data_key")
    _check_size(recipient_public_key, X25519_KEY_SIZE, "recipient_public_key")
    _check_info(info)
    public_key = X25519PublicKey.from_public_bytes(recipient_public_key)
    try:
        sealed = _SUITE.encrypt(data_key, public_key, info=info.to_bytes())
    except ValueError as e:
        raise InvalidInputError(
            "recipient_public_key is not a usable X25519 key", parameter="recipient_public_key"
        ) from e
    return bytes([WRAP_FORMAT_V1]) + sealed


def unwrap_key(wrapped: bytes, recipient_private_key: bytes, info: WrapInfo) -> bytes:
    """HPKE-open a wrap made by ``wrap_key`` for exactly this ``info``: the 32-byte data key.

    ``wrapped`` is untrusted: anything wrong with it, or a wrap for another recipient, record
    version or grant, raises ``VerificationError("decryption failed")`` and nothing else.
    ``InvalidInputError`` is only for the caller's own mistakes (a private key that is not 32
    bytes, an ``info`` that is not a ``WrapInfo``).
    """
    _check_size(recipient_private_key, X25519_KEY_SIZE, "recipient_private_key")
    _check_info(info)
    private_key = X25519PrivateKey.from_private_bytes(recipient_private_key)
    # 1. Framing: bytes, one known format, the one length a wrapped 32-byte key has.
    if (
        not isinstance(wrapped, bytes)
        or len(wrapped) != WRAPPED_SIZE
        or wrapped[0] != WRAP_FORMAT_V1
    ):
        _fail()
    # 2. RFC 9180 §6.1 Open: Decap(enc, skR), KeySchedule(info), AEAD Open with sequence 0.
    #    A low-order enc fails in Decap (ValueError); a wrong key or info fails the tag.
    try:
        data_key: bytes | None = _SUITE.decrypt(wrapped[1:], private_key, info=info.to_bytes())
    except (InvalidTag, ValueError):
        data_key = None
    if data_key is None:
        _fail()  # outside the except block, so no exception context is attached either
    return data_key


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 §4 ``LabeledExtract`` with the KEM's suite_id; HKDF-Extract is HMAC (RFC 5869)."""
    return hmac.new(salt, _HPKE_V1 + _KEM_SUITE_ID + label + ikm, hashlib.sha256).digest()


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 §4 ``LabeledExpand`` with the KEM's suite_id."""
    labeled_info = length.to_bytes(2, "big") + _HPKE_V1 + _KEM_SUITE_ID + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled_info).derive(prk)


def _fail() -> NoReturn:
    # One message, no cause and no context: the failures must be indistinguishable.
    raise VerificationError(DECRYPTION_FAILED) from None


def _check_size(value: object, size: int, parameter: str) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise InvalidInputError(f"{parameter} must be {size} bytes", parameter=parameter)


def _check_info(info: object) -> None:
    if not isinstance(info, WrapInfo):
        raise InvalidInputError("info must be a WrapInfo", parameter="info")


#: A sealed message (an escrow share's text) is small: refuse anything larger.
MAX_SEALED_MESSAGE = 1024


def seal_message(message: bytes, recipient_public_key: bytes, info: bytes) -> bytes:
    """HPKE-seal a short message (e.g. a Shamir share's text) with the same suite as wraps.

    ``info`` is the caller's domain-separated binding (e.g. ``escrow.share_wrap_info``).
    """
    if not 0 < len(message) <= MAX_SEALED_MESSAGE:
        raise InvalidInputError("a sealed message is 1..1024 bytes", parameter="message")
    _check_size(recipient_public_key, X25519_KEY_SIZE, "recipient_public_key")
    public_key = X25519PublicKey.from_public_bytes(recipient_public_key)
    try:
        return _SUITE.encrypt(message, public_key, info=info)
    except ValueError as e:
        raise InvalidInputError(
            "recipient_public_key is not a usable X25519 key", parameter="recipient_public_key"
        ) from e


def open_message(sealed: bytes, recipient_private_key: bytes, info: bytes) -> bytes:
    """Open ``seal_message``'s output for exactly this ``info``; one opaque failure."""
    _check_size(recipient_private_key, X25519_KEY_SIZE, "recipient_private_key")
    if not isinstance(sealed, bytes) or len(sealed) > MAX_SEALED_MESSAGE + ENC_SIZE + TAG_SIZE:
        _fail()
    private_key = X25519PrivateKey.from_private_bytes(recipient_private_key)
    try:
        message: bytes | None = _SUITE.decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError):
        message = None
    if message is None:
        _fail()
    return message
