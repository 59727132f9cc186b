"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures (signature type 0x01).

What this module handles:

- key names (§Format: non-empty, no Unicode spaces, no ``+``) and key IDs
  (§Signatures: ``SHA-256(key name || 0x0A || signature type || public key)[:4]``);
- verifier keys ``<name>+<hex key ID>+<base64(type || public key)>`` and signer keys
  ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``, the encodings of
  golang.org/x/mod/sumdb/note that the C2SP specs refer to as "vkeys";
- signing a note text (``sign_note``) and opening a received note (``open_note``): checking the
  format (§Format) and the signatures from known keys (§Signatures) on the bytes received.

Not handled here: what the text means (``medledger.core.checkpoint``), timestamped witness
cosignatures (``medledger.core.cosignature``, which plugs into ``open_note`` as a
``NoteVerifier``), key generation (randomness) and key storage (I/O). Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medledger.config import Limits
from medledger.errors import InvalidInputError, SignatureError, TooLargeError

#: §Signature types: "0x01 — Ed25519 signatures as specified by this document."
SIG_TYPE_ED25519 = 0x01
KEY_ID_SIZE = 4
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64

#: §Format: a signature line starts with em dash (U+2014) and a space (U+0020).
SIGNATURE_PREFIX = "\u2014 "
_SIGNATURE_PREFIX_BYTES = SIGNATURE_PREFIX.encode("utf-8")
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
# §Format: "MUST NOT contain any ASCII control characters (those below U+0020) other than
# newline." In UTF-8 every byte below 0x80 is the ASCII character itself, so a byte scan is exact.
_CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f]")


# --- encodings ------------------------------------------------------------------------------
def b64decode_strict(text: str, *, what: str) -> bytes:
    """Decode standard base64 (RFC 4648 §4) and accept only its canonical form.

    Padding is required and unused trailing bits must be zero, so every value has exactly one
    encoding and a decoded object always re-encodes to the bytes that were received.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII text
        raise InvalidInputError(f"{what} is not valid base64", parameter=what) from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInputError(f"{what} is not canonical base64", parameter=what)
    return raw


def b64encode(raw: bytes) -> str:
    """Standard base64 (RFC 4648 §4) with padding, as every C2SP text format uses."""
    return base64.b64encode(raw).decode("ascii")


# --- key names and key IDs ----------------------------------------------------------------
def is_valid_key_name(name: str) -> bool:
    """§Format: "Key names MUST be non-empty and MUST NOT contain any Unicode spaces or plus".

    Control characters are refused too: a note may not contain them (§Format), so a key whose
    name holds one could never sign a valid note.
    """
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or ch < "\x20" for ch in name)
        and _encodable(name)
    )


def check_key_name(name: str) -> str:
    """Return ``name`` or raise ``InvalidInputError`` if it is not a valid key name."""
    if not is_valid_key_name(name):
        raise InvalidInputError(
            "key name must be non-empty, without '+', spaces or control characters",
            parameter="key name",
        )
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """§Signatures: ``SHA-256(key name || 0x0A || signature type || public key)[:4]``."""
    check_key_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise InvalidInputError("signature type must be one byte", parameter="sig_type")
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def encode_verifier_key(name: str, sig_type: int, public_key: bytes) -> str:
    """``<name>+<hex key ID>+<base64(type || public key)>``, key ID in lowercase hex."""
    kid = key_id(name, sig_type, public_key)
    return f"{name}+{kid.hex()}+{b64encode(bytes([sig_type]) + public_key)}"


def decode_verifier_key(vkey: str) -> tuple[str, int, bytes]:
    """Split a verifier key into (name, signature type, public key), checking its key ID.

    The key ID must be exactly 8 lowercase hex digits (the form every implementation emits)
    and must equal the ID recomputed from the name, type and key.
    """
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, key64 = rest.partition("+")
    if not (sep1 and sep2):
        raise InvalidInputError(
            "verifier key must be <name>+<hex key ID>+<base64 key>", parameter="vkey"
        )
    name, sig_type, public_key = _decode_key_parts(name, hex_id, key64, what="vkey")
    _check_key_id(hex_id, name, sig_type, public_key, what="vkey")
    return name, sig_type, public_key


def _decode_key_parts(name: str, hex_id: str, key64: str, *, what: str) -> tuple[str, int, bytes]:
    if not is_valid_key_name(name):
        raise InvalidInputError(f"{what} has an invalid key name", parameter=what)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise InvalidInputError(f"{what} key ID must be 8 lowercase hex digits", parameter=what)
    raw = b64decode_strict(key64, what=what)
    if len(raw) < 2:
        raise InvalidInputError(f"{what} key material is empty", parameter=what)
    return name, raw[0], raw[1:]


def _check_key_id(hex_id: str, name: str, sig_type: int, public_key: bytes, *, what: str) -> None:
    if key_id(name, sig_type, public_key).hex() != hex_id:
        raise InvalidInputError(f"{what} key ID does not match the key", parameter=what)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- signature lines ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: ``— <key name> base64(32-bit key ID || signature)`` (§Signatures).

    ``signature`` is the part after the key ID, whatever the signature type.
    """

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.key_id) != KEY_ID_SIZE:
            raise InvalidInputError("key ID must be 4 bytes", parameter="key_id")
        if not self.signature:
            raise InvalidInputError("signature must not be empty", parameter="signature")

    def line(self) -> bytes:
        """The signature line, including its final newline."""
        b64 = b64encode(self.key_id + self.signature)
        return f"{SIGNATURE_PREFIX}{self.name} {b64}\n".encode()


def parse_signature_line(line: bytes) -> NoteSignature:
    """Parse one signature line, which must end in its newline (§Format)."""
    if not line.endswith(b"\n") or line.count(b"\n") != 1:
        raise InvalidInputError("a signature line is one line ending in newline", parameter="note")
    return _parse_signature(line[:-1])


def _parse_signature(line: bytes) -> NoteSignature:
    # §Format: em dash (U+2014), space (U+0020), key name, space, base64-encoded signature.
    if not line.startswith(_SIGNATURE_PREFIX_BYTES):
        raise InvalidInputError("signature line must start with '\u2014 '", parameter="note")
    try:
        text = line[len(_SIGNATURE_PREFIX_BYTES) :].decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError("signature line is not valid UTF-8", parameter="note") from e
    name, sep, b64 = text.partition(" ")
    if not sep or not is_valid_key_name(name):
        raise InvalidInputError("signature line has an invalid key name", parameter="note")
    raw = b64decode_strict(b64, what="note signature")
    # §Format: "Signatures are the base64 encoding of 4+n bytes."
    if len(raw) <= KEY_ID_SIZE:
        raise InvalidInputError("signature is shorter than a key ID", parameter="note")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


# --- verifiers and signers ------------------------------------------------------------------
class NoteVerifier(Protocol):
    """Checks signatures by one key, identified by (name, key ID) as in §Signatures."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise ``SignatureError`` unless ``signature`` (after the key ID) signs ``text``."""


class NoteSigner(Protocol):
    """Produces signature lines over a note text."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, text: bytes) -> bytes:
        """The signature line (with its newline) for ``text``."""


@dataclass(frozen=True, slots=True)
class Verifier:
    """An Ed25519 note verifier (§Ed25519 signatures): a key name and a 32-byte public key."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public_key) != ED25519_KEY_SIZE:
            raise InvalidInputError("Ed25519 public key must be 32 bytes", parameter="public_key")
        object.__setattr__(self, "key_id", key_id(self.name, SIG_TYPE_ED25519, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    def verify(self, text: bytes, signature: bytes) -> None:
        """RFC 8032 verification of ``signature`` over the note text."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise SignatureError(f"signature by {self.name} is not 64 bytes")
        try:
            self._key.verify(signature, text)
        except InvalidSignature as e:
            raise SignatureError(f"invalid signature by {self.name}+{self.key_id.hex()}") from e


class NamedEd25519Key:
    """An Ed25519 private key under a signed-note key name, for one signature type.

    Holds the private key and never shows it; the key ID binds name, type and public key.
    """

    __slots__ = ("_key", "_key_id", "_name", "_public_key")
    SIG_TYPE: ClassVar[int] = SIG_TYPE_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != ED25519_KEY_SIZE:
            raise InvalidInputError("Ed25519 seed must be 32 bytes", parameter="seed")
        self._name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public_key = self._key.public_key().public_bytes_raw()
        self._key_id = key_id(name, self.SIG_TYPE, self._public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self._key_id.hex()})"


class Signer(NamedEd25519Key):
    """An Ed25519 note signer (signature type 0x01)."""

    __slots__ = ()

    def verifier(self) -> Verifier:
        return Verifier(self._name, self._public_key)

    def sign(self, text: bytes) -> bytes:
        """§Ed25519 signatures: the signature line for an RFC 8032 signature over ``text``."""
        return NoteSignature(self._name, self._key_id, self._key.sign(text)).line()


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse an Ed25519 verifier key ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    name, sig_type, public_key = decode_verifier_key(vkey)
    if sig_type != SIG_TYPE_ED25519 or len(public_key) != ED25519_KEY_SIZE:
        raise InvalidInputError("vkey is not an Ed25519 (type 0x01) key", parameter="vkey")
    return Verifier(name, public_key)


def format_verifier_key(verifier: Verifier) -> str:
    return encode_verifier_key(verifier.name, SIG_TYPE_ED25519, verifier.public_key)


def parse_signer_key(skey: str) -> Signer:
    """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``.

    The key ID is that of the public key, so it is checked after deriving the public key.
    Error messages never include the key.
    """
    if not skey.startswith(_PRIVATE_KEY_PREFIX):
        raise InvalidInputError("signer key must start with PRIVATE+KEY+", parameter="skey")
    name, sep1, rest = skey[len(_PRIVATE_KEY_PREFIX) :].partition("+")
    hex_id, sep2, key64 = rest.partition("+")
    if not (sep1 and sep2):
        raise InvalidInputError(
            "signer key must be PRIVATE+KEY+<name>+<hex key ID>+<base64 key>", parameter="skey"
        )
    name, sig_type, seed = _decode_key_parts(name, hex_id, key64, what="skey")
    if sig_type != SIG_TYPE_ED25519 or len(seed) != ED25519_KEY_SIZE:
        raise InvalidInputError("skey is not an Ed25519 (type 0x01) key", parameter="skey")
    signer = Signer(name, seed)
    _check_key_id(hex_id, name, sig_type, signer.public_key, what="skey")
    return signer


def format_signer_key(signer: Signer) -> str:
    """The secret signer key string. Anyone holding it can sign as ``signer.name``."""
    seed = signer._key.private_bytes_raw()  # the one place the seed leaves a Signer
    raw = bytes([SIG_TYPE_ED25519]) + seed
    return f"{_PRIVATE_KEY_PREFIX}{signer.name}+{signer.key_id.hex()}+{b64encode(raw)}"


# --- notes ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose format and known signatures were checked.

    ``text`` is the note text exactly as received (with its final newline, without the blank
    line). ``signatures`` are the verified signatures, one per known key, in note order;
    ``unverified`` are the signatures from unknown keys, which §Signatures says to ignore.
    """

    text: bytes
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def check_note_text(text: bytes) -> None:
    """§Format: a text ending in newline, valid UTF-8, no control characters but newline."""
    if not text.endswith(b"\n"):
        raise InvalidInputError("note text must end in newline", parameter="note")
    _check_characters(text)


def _check_characters(data: bytes) -> None:
    # §Format: "Signed notes MUST be valid UTF-8 and MUST NOT contain any ASCII control
    # characters (those below U+0020) other than newline."
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInputError("note is not valid UTF-8", parameter="note") from e
    if _CONTROL_BYTES.search(data):
        raise InvalidInputError("note contains a control character", parameter="note")


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """§Format: ``text``, a blank line, then one signature line per signer."""
    check_note_text(text)
    if not signers:
        raise InvalidInputError("a signed note needs at least one signer", parameter="signers")
    lines = [signer.sign(text) for signer in signers]
    for line in lines:
        parse_signature_line(line)  # a signer must emit exactly one well-formed line
    return text + b"\n" + b"".join(lines)


def open_note(note: bytes, verifiers: Sequence[NoteVerifier], limits: Limits) -> OpenedNote:
    """Check a received signed note and return its text and verified signatures.

    The steps follow c2sp.org/signed-note; every check runs on the bytes received:

    1. Refuse notes over ``limits.max_checkpoint_bytes`` (§Format: "Verifiers SHOULD apply a
       maximum limit ... to the overall size of a note").
    2. §Format: valid UTF-8, no control characters other than newline.
    3. §Format: split at the last empty line into the text (with its final newline) and the
       signature block, which must be non-empty and end in newline.
    4. §Format: refuse more than ``limits.max_note_signatures`` signature lines.
    5. §Format: parse each line as ``— <name> base64(key ID || signature)``.
    6. §Signatures: ignore lines whose (name, key ID) is not a known key; verify every line that
       matches a known key, and reject the whole note if one fails (the SHOULD is taken).
    7. §Signatures: reject the note unless a known key's signature verified.
    """
    known = _index_verifiers(verifiers)
    # 1.
    if len(note) > limits.max_checkpoint_bytes:
        raise TooLargeError(
            f"note is {len(note)} bytes, the limit is {limits.max_checkpoint_bytes}",
            parameter="note",
        )
    # 2.
    _check_characters(note)
    # 3.
    text, block = _split_note(note)
    # 4.
    count = block.count(b"\n")
    if count > limits.max_note_signatures:
        raise TooLargeError(
            f"note has {count} signatures, the limit is {limits.max_note_signatures}",
            parameter="note",
        )
    # 5.
    signatures = [_parse_signature(line) for line in block[:-1].split(b"\n")]
    # 6.
    verified: dict[tuple[str, bytes], NoteSignature] = {}
    unverified: list[NoteSignature] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        verifier.verify(text, sig.signature)
        verified.setdefault((sig.name, sig.key_id), sig)
    # 7.
    if not verified:
        raise SignatureError("note has no valid signature from a known key")
    return OpenedNote(text, tuple(verified.values()), tuple(unverified))


def _split_note(note: bytes) -> tuple[bytes, bytes]:
    # §Format: "the text is separated from the signatures by the last empty line in the note."
    split = note.rfind(b"\n\n")
    if split < 0:
        raise InvalidInputError("note has no signature block after an empty line", parameter="note")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise InvalidInputError("note must end with a signature line and newline", parameter="note")
    return text, block


def _index_verifiers(verifiers: Sequence[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        ident = (verifier.name, verifier.key_id)
        if known.setdefault(ident, verifier) != verifier:
            raise InvalidInputError(
                f"two different verifiers share key {verifier.name}+{verifier.key_id.hex()}",
                parameter="verifiers",
            )
    return known
