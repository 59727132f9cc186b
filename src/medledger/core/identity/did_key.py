"""did:key for Ed25519 keys (W3C CCG did:key method, §Ed25519).

``did:key:`` + multibase base58btc (``z``) of the multicodec ``ed25519-pub`` varint prefix
(0xed 0x01) followed by the 32-byte public key. Parsing accepts only that form.
"""

from __future__ import annotations

import functools

import base58

from medledger.errors import InvalidInputError

DID_KEY_PREFIX = "did:key:"
MULTIBASE_BASE58BTC = "z"
ED25519_MULTICODEC = b"\xed\x01"
ED25519_PUBLIC_KEY_SIZE = 32
#: did:key:z + base58 of 34 bytes is at most 48 characters after the prefix.
MAX_DID_LENGTH = 64


def did_from_public_key(public_key: bytes) -> str:
    """The did:key of a raw Ed25519 public key."""
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise InvalidInputError("an Ed25519 public key is 32 bytes", parameter="public_key")
    encoded = base58.b58encode(ED25519_MULTICODEC + public_key).decode("ascii")
    return f"{DID_KEY_PREFIX}{MULTIBASE_BASE58BTC}{encoded}"


def public_key_from_did(did: str) -> bytes:
    """The raw Ed25519 public key a did:key names; ``InvalidInputError`` for anything else."""
    if not isinstance(did, str) or len(did) > MAX_DID_LENGTH:
        raise InvalidInputError("not a did:key", parameter="did")
    return _public_key_from_did(did)


@functools.lru_cache(maxsize=8192)
def _public_key_from_did(did: str) -> bytes:
    """Decoding is pure and a network has few participants: a bounded cache of parsed keys
    (errors are not cached)."""
    if not did.startswith(DID_KEY_PREFIX + MULTIBASE_BASE58BTC):
        raise InvalidInputError("only did:key with base58btc (z...) is supported", parameter="did")
    body = did[len(DID_KEY_PREFIX) + 1 :]
    try:
        raw = base58.b58decode(body.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as e:
        raise InvalidInputError("did:key is not valid base58btc", parameter="did") from e
    if not raw.startswith(ED25519_MULTICODEC) or len(raw) != 2 + ED25519_PUBLIC_KEY_SIZE:
        raise InvalidInputError("did:key is not an Ed25519 key", parameter="did")
    public_key = raw[2:]
    if did_from_public_key(public_key) != did:  # one spelling per key
        raise InvalidInputError("did:key is not in canonical form", parameter="did")
    return public_key


def is_did_key(value: str) -> bool:
    try:
        public_key_from_did(value)
    except InvalidInputError:
        return False
    return True
