"""C2SP Ed25519 witness cosignatures, cosignature/v1 (c2sp.org/tlog-cosignature).

A cosignature is a note signature (c2sp.org/signed-note) on a checkpoint by a witness, stating
that as of ``timestamp`` the checkpoint is the largest consistent tree head it has seen for the
log (§Ed25519 signed message). What this module handles:

- cosigner key IDs: ``SHA-256(name || "\\n" || 0x04 || 32-byte public key)[:4]`` (§Format);
- cosigner verifier keys (vkeys with signature type 0x04, §Format);
- the signed message ``cosignature/v1\\ntime <t>\\n`` + checkpoint body (§Ed25519 signed
  message) and the signature ``u64 timestamp || Ed25519 signature`` (§Format,
  ``timestamped_signature``);
- ``cosign`` (time is a parameter) and ``open_cosignatures``, a quorum check on the bytes of a
  received checkpoint note. ``CosignatureVerifier`` is a ``NoteVerifier``, so it also plugs
  into ``medledger.core.note.open_note``.

Not handled here: ML-DSA-44 cosignatures (type 0x06), checking that the checkpoint is consistent
with the witness's previous view (a witness's job, RFC 9162 §2.1.4), reading the clock,
rejecting timestamps in the future (callers may, as §Format allows). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medledger.config import Limits
from medledger.core.checkpoint import Checkpoint
from medledger.core.note import (
    ED25519_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    KEY_ID_SIZE,
    NamedEd25519Key,
    NoteSignature,
    check_key_name,
    decode_verifier_key,
    encode_verifier_key,
    key_id,
    open_note,
    parse_signature_line,
)
from medledger.errors import InvalidInputError, SignatureError

#: signed-note §Signature types: "0x04 — Timestamped Ed25519 witness cosignatures".
SIG_TYPE_COSIGNATURE_V1 = 0x04
#: §Ed25519 signed message: the header line, for domain separation.
COSIGNATURE_V1_HEADER = b"cosignature/v1\n"
#: §Format: the timestamp "MUST NOT exceed 2^63 - 1".
MAX_TIMESTAMP = 2**63 - 1
TIMESTAMP_SIZE = 8
COSIGNATURE_SIZE = TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE


def cosignature_message(body: bytes, timestamp: int) -> bytes:
    """§Ed25519 signed message: ``cosignature/v1``, ``time <t>``, then the checkpoint body.

    ``body`` is the whole note text of the checkpoint, extension lines included, ending in its
    newline; the timestamp is an ASCII decimal with no leading zeroes.
    """
    _check_timestamp(timestamp)
    return COSIGNATURE_V1_HEADER + b"time %d\n" % timestamp + body


def _check_timestamp(timestamp: int, parameter: str = "time_s") -> None:
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInputError(f"timestamp must be in 0..{MAX_TIMESTAMP}", parameter=parameter)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A parsed cosignature line: who, when, and the 64-byte Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise InvalidInputError("key ID must be 4 bytes", parameter="key_id")
        _check_timestamp(self.timestamp, parameter="timestamp")
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise InvalidInputError("Ed25519 signature must be 64 bytes", parameter="signature")

    def note_signature(self) -> NoteSignature:
        """§Format: key ID || ``timestamped_signature`` (big-endian u64, then the signature)."""
        raw = self.timestamp.to_bytes(TIMESTAMP_SIZE, "big") + self.signature
        return NoteSignature(self.name, self.key_id, raw)

    def line(self) -> bytes:
        return self.note_signature().line()


def cosignature_from_note_signature(sig: NoteSignature) -> Cosignature:
    """Split a note signature into timestamp and Ed25519 signature (§Format)."""
    if len(sig.signature) != COSIGNATURE_SIZE:
        raise InvalidInputError("cosignature/v1 signature must be 72 bytes", parameter="note")
    timestamp = int.from_bytes(sig.signature[:TIMESTAMP_SIZE], "big")
    if timestamp > MAX_TIMESTAMP:
        raise InvalidInputError("cosignature timestamp exceeds 2^63 - 1", parameter="note")
    return Cosignature(sig.name, sig.key_id, timestamp, sig.signature[TIMESTAMP_SIZE:])


def parse_cosignature_line(line: bytes) -> Cosignature:
    """Parse ``— <name> base64(key ID || u64 timestamp || signature)\\n``. Nothing is verified."""
    return cosignature_from_note_signature(parse_signature_line(line))


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """A witness's Ed25519 cosignature/v1 key: a ``NoteVerifier`` for signature type 0x04."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise InvalidInputError("Ed25519 public key must be 32 bytes", parameter="public_key")
        kid = key_id(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key)
        object.__setattr__(self, "key_id", kid)
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    def verify(self, text: bytes, signature: bytes) -> None:
        """Verify ``timestamped_signature`` over ``cosignature_message(text, timestamp)``."""
        if len(signature) != COSIGNATURE_SIZE:
            raise SignatureError(f"cosignature by {self.name} is not 72 bytes")
        timestamp = int.from_bytes(signature[:TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(f"cosignature by {self.name} has a timestamp over 2^63 - 1")
        message = cosignature_message(text, timestamp)
        try:
            self._key.verify(signature[TIMESTAMP_SIZE:], message)
        except InvalidSignature as e:
            raise SignatureError(f"invalid cosignature by {self.name}+{self.key_id.hex()}") from e


class Cosigner(NamedEd25519Key):
    """An Ed25519 cosignature/v1 signer (a witness key, signature type 0x04)."""

    __slots__ = ()
    SIG_TYPE: ClassVar[int] = SIG_TYPE_COSIGNATURE_V1

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, self._public_key)

    def sign_body(self, body: bytes, timestamp: int) -> Cosignature:
        """Cosign a checkpoint note text as of ``timestamp`` (POSIX seconds)."""
        signature = self._key.sign(cosignature_message(body, timestamp))
        return Cosignature(self._name, self._key_id, timestamp, signature)


def cosign(checkpoint: Checkpoint, signer: Cosigner, time_s: int) -> bytes:
    """The cosignature line for ``checkpoint`` as of ``time_s``, to append to its note."""
    return signer.sign_body(checkpoint.body(), time_s).line()


def parse_cosigner_key(vkey: str) -> CosignatureVerifier:
    """Parse a cosigner vkey ``<name>+<hex key ID>+<base64(0x04 || public key)>`` (§Format)."""
    name, sig_type, public_key = decode_verifier_key(vkey)
    if sig_type != SIG_TYPE_COSIGNATURE_V1 or len(public_key) != ED25519_KEY_SIZE:
        raise InvalidInputError(
            "vkey is not an Ed25519 cosignature (type 0x04) key", parameter="vkey"
        )
    return CosignatureVerifier(name, public_key)


def format_cosigner_key(verifier: CosignatureVerifier) -> str:
    return encode_verifier_key(verifier.name, SIG_TYPE_COSIGNATURE_V1, verifier.public_key)


def open_cosignatures(
    note: bytes, cosigners: Sequence[CosignatureVerifier], limits: Limits, *, quorum: int = 1
) -> tuple[Cosignature, ...]:
    """Verify the cosignatures in a received checkpoint note; require ``quorum`` distinct ones.

    1. c2sp.org/signed-note: check the note; every line from a known cosigner is verified over
       ``cosignature/v1``, ``time``, then the note text exactly as received; a failure rejects
       the note; other lines (the log's signature, unknown witnesses) are ignored.
    2. Require at least ``quorum`` distinct known cosigners to have verified.

    This does not check the log's own signature: call ``open_checkpoint`` on the same bytes.
    """
    if quorum < 1:
        raise InvalidInputError("quorum must be at least 1", parameter="quorum")
    opened = open_note(note, cosigners, limits)
    if len(opened.signatures) < quorum:
        raise SignatureError(
            f"{len(opened.signatures)} known cosigners signed, the quorum is {quorum}"
        )
    return tuple(cosignature_from_note_signature(sig) for sig in opened.signatures)
