"""Record encryption and key wrapping: what access to a record really means.

- ``record_cipher``: one record version sealed under its own AES-256-GCM data key, bound to its
  record id, version, resource type and patient; the salted HMAC commitment the ledger anchors.
- ``key_wrap``: a data key wrapped to one recipient's X25519 key with HPKE (RFC 9180), bound to
  the record version, the recipient and the grant it was released under.

Every decryption failure is the same ``VerificationError("decryption failed")``.
"""

from __future__ import annotations

from medledger.core.crypto.key_wrap import (
    WrapInfo,
    X25519KeyPair,
    unwrap_key,
    wrap_key,
    x25519_from_seed,
)
from medledger.core.crypto.record_cipher import (
    RecordAad,
    open_record,
    salted_commitment,
    seal_record,
    verify_commitment,
)

__all__ = [
    "RecordAad",
    "WrapInfo",
    "X25519KeyPair",
    "open_record",
    "salted_commitment",
    "seal_record",
    "unwrap_key",
    "verify_commitment",
    "wrap_key",
    "x25519_from_seed",
]
