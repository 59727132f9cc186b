"""Passphrase-encrypted participant key files, format ``medledger-key/v1``.

A key file is one small JSON object (UTF-8)::

    {"format": "medledger-key/v1", "did": "did:key:z6Mk...",
     "kdf": {"name": "scrypt", "salt": b64, "n": 32768, "r": 8, "p": 1},
     "cipher": "aes-256-gcm", "nonce": b64, "ciphertext": b64}

- key = scrypt(UTF-8(NFC(passphrase)), salt, n, r, p, dkLen=32) (RFC 7914);
- ciphertext = AES-256-GCM(key, nonce, seed, aad) (NIST SP 800-38D), the 32-byte Ed25519 seed;
- aad = ``medledger/key-file/v1\\x00`` || JCS({format, did, kdf, cipher}) (RFC 8785), so editing
  the did, swapping in weaker scrypt parameters or changing the format breaks the tag.

What this module handles: sealing and opening that format (``seal_key`` / ``open_key``, pure
given the salt and nonce), the files themselves (``write_key_file`` / ``read_key_file``, atomic
and owner-only through ``medledger.adapters.files``) and drawing new keys (``generate_key``, the
only place with randomness). Everything about a file is checked -- size, JSON shape, format,
scrypt bounds -- before any scrypt work is done, so a hostile file cannot make us burn memory.
Every failure to decrypt raises the same ``VerificationError`` (``DECRYPTION_FAILED``): a wrong
passphrase and a flipped byte are indistinguishable to the caller.
"""

from __future__ import annotations

import base64
import json
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from medledger.adapters.files import atomic_write, read_owner_only
from medledger.core.identity.did_key import public_key_from_did
from medledger.core.identity.keys import ED25519_SEED_SIZE, ParticipantKey
from medledger.errors import InvalidInputError, TamperError, VerificationError

KEY_FILE_FORMAT = "medledger-key/v1"
KDF_NAME = "scrypt"
CIPHER_NAME = "aes-256-gcm"
AAD_DOMAIN = b"medledger/key-file/v1\x00"
DECRYPTION_FAILED = "wrong passphrase or damaged key file"

# scrypt cost (RFC 7914 §2): memory is 128 * n * r bytes and time grows with n * r * p. The
# ceilings cap what a hostile file can make us spend at 1 GiB and 4 lanes; the floor refuses
# files protected by less than 128 * 2**14 * 8 bytes = 16 MiB (n * r >= 2**17).
DEFAULT_SCRYPT_N = 2**15
MIN_SCRYPT_N = 2**14
MAX_SCRYPT_N = 2**20
SCRYPT_R = 8
MAX_SCRYPT_R = 8
MAX_SCRYPT_P = 4
SALT_SIZE = 16
MAX_SALT_SIZE = 64
NONCE_SIZE = 12  # the 96-bit GCM IV of SP 800-38D §8.2
TAG_SIZE = 16
DERIVED_KEY_SIZE = 32  # AES-256
CIPHERTEXT_SIZE = ED25519_SEED_SIZE + TAG_SIZE  # the encrypted seed and its GCM tag

MIN_PASSPHRASE_CHARS = 8
MAX_PASSPHRASE_CHARS = 1024
#: A v1 file is about 400 bytes; anything much larger is not one of ours.
MAX_KEY_FILE_BYTES = 4096

_TOP_FIELDS = frozenset({"format", "did", "kdf", "cipher", "nonce", "ciphertext"})
_KDF_FIELDS = frozenset({"name", "salt", "n", "r", "p"})


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt parameters within the bounds above; an instance that exists is safe to run."""

    salt: bytes
    n: int = DEFAULT_SCRYPT_N
    r: int = SCRYPT_R
    p: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.salt, bytes) or not SALT_SIZE <= len(self.salt) <= MAX_SALT_SIZE:
            raise InvalidInputError(
                f"scrypt salt must be {SALT_SIZE}..{MAX_SALT_SIZE} bytes", parameter="kdf.salt"
            )
        if not _is_int(self.n) or not MIN_SCRYPT_N <= self.n <= MAX_SCRYPT_N:
            raise InvalidInputError("scrypt n must be in 2**14..2**20", parameter="kdf.n")
        if self.n & (self.n - 1):
            raise InvalidInputError("scrypt n must be a power of two", parameter="kdf.n")
        if not _is_int(self.r) or not 1 <= self.r <= MAX_SCRYPT_R:
            raise InvalidInputError(f"scrypt r must be in 1..{MAX_SCRYPT_R}", parameter="kdf.r")
        if self.n * self.r < MIN_SCRYPT_N * SCRYPT_R:
            raise InvalidInputError("scrypt n * r is below the 16 MiB floor", parameter="kdf.r")
        if not _is_int(self.p) or not 1 <= self.p <= MAX_SCRYPT_P:
            raise InvalidInputError(f"scrypt p must be in 1..{MAX_SCRYPT_P}", parameter="kdf.p")

    def as_json(self) -> dict[str, Any]:
        return {"name": KDF_NAME, "salt": _b64(self.salt), "n": self.n, "r": self.r, "p": self.p}

    def derive(self, passphrase: str) -> bytes:
        """RFC 7914 scrypt of the NFC-normalised UTF-8 passphrase: the AES-256 key."""
        kdf = Scrypt(salt=self.salt, length=DERIVED_KEY_SIZE, n=self.n, r=self.r, p=self.p)
        return kdf.derive(_passphrase_bytes(passphrase))


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A parsed ``medledger-key/v1`` document: well-formed, not yet decrypted."""

    did: str
    kdf: ScryptParams
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        public_key_from_did(self.did)  # an Ed25519 did:key in canonical form, or InvalidInputError
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
            raise InvalidInputError(f"nonce must be {NONCE_SIZE} bytes", parameter="nonce")
        if not isinstance(self.ciphertext, bytes) or len(self.ciphertext) != CIPHERTEXT_SIZE:
            raise InvalidInputError(
                f"ciphertext must be {CIPHERTEXT_SIZE} bytes", parameter="ciphertext"
            )

    def aad(self) -> bytes:
        return key_file_aad(self.did, self.kdf)

    def to_bytes(self) -> bytes:
        document = {
            "format": KEY_FILE_FORMAT,
            "did": self.did,
            "kdf": self.kdf.as_json(),
            "cipher": CIPHER_NAME,
            "nonce": _b64(self.nonce),
            "ciphertext": _b64(self.ciphertext),
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyFile:
        """Parse a key file strictly; ``InvalidInputError`` names the first bad field."""
        document = _load_json(data)
        # 1. The format decides what the rest means, so it is checked first.
        if document.get("format") != KEY_FILE_FORMAT:
            raise InvalidInputError("unsupported key file format", parameter="format")
        _check_fields(document, _TOP_FIELDS, "key file")
        if document["cipher"] != CIPHER_NAME:
            raise InvalidInputError("unsupported key file cipher", parameter="cipher")
        kdf = document["kdf"]
        if not isinstance(kdf, dict):
            raise InvalidInputError("kdf must be an object", parameter="kdf")
        if kdf.get("name") != KDF_NAME:
            raise InvalidInputError("unsupported key file kdf", parameter="kdf.name")
        _check_fields(kdf, _KDF_FIELDS, "kdf")
        # 2. The scrypt bounds are enforced here, before anyone derives a key.
        params = ScryptParams(
            salt=_unb64(kdf["salt"], "kdf.salt"), n=kdf["n"], r=kdf["r"], p=kdf["p"]
        )
        did = document["did"]
        if not isinstance(did, str):
            raise InvalidInputError("did must be a string", parameter="did")
        return cls(
            did=did,
            kdf=params,
            nonce=_unb64(document["nonce"], "nonce"),
            ciphertext=_unb64(document["ciphertext"], "ciphertext"),
        )


def key_file_aad(did: str, kdf: ScryptParams) -> bytes:
    """What the GCM tag binds besides the seed: domain || JCS({format, did, kdf, cipher})."""
    header: dict[str, Any] = {
        "format": KEY_FILE_FORMAT,
        "did": did,
        "kdf": kdf.as_json(),
        "cipher": CIPHER_NAME,
    }
    return AAD_DOMAIN + rfc8785.dumps(header)


def seal_key(
    key: ParticipantKey,
    passphrase: str,
    *,
    salt: bytes,
    nonce: bytes,
    n: int = DEFAULT_SCRYPT_N,
) -> KeyFile:
    """Encrypt ``key``'s seed under ``passphrase``. Salt and nonce must be fresh and random."""
    _check_new_passphrase(passphrase)
    if not isinstance(key, ParticipantKey):
        raise InvalidInputError("not a ParticipantKey", parameter="key")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise InvalidInputError(f"nonce must be {NONCE_SIZE} bytes", parameter="nonce")
    params = ScryptParams(salt=salt, n=n)
    aad = key_file_aad(key.did, params)
    ciphertext = AESGCM(params.derive(passphrase)).encrypt(nonce, key.export_seed(), aad)
    return KeyFile(key.did, params, nonce, ciphertext)


def open_key(key_file: KeyFile, passphrase: str) -> ParticipantKey:
    """Decrypt a parsed key file; every decryption failure is one ``VerificationError``."""
    if not isinstance(passphrase, str) or len(passphrase) > MAX_PASSPHRASE_CHARS:
        raise InvalidInputError(
            "passphrase must be a string of at most 1024 characters", parameter="passphrase"
        )
    try:
        seed = AESGCM(key_file.kdf.derive(passphrase)).decrypt(
            key_file.nonce, key_file.ciphertext, key_file.aad()
        )
    except InvalidTag as e:
        raise VerificationError(DECRYPTION_FAILED) from e
    # The tag proves we wrote this; a seed of another key means the writer was broken.
    key = ParticipantKey.from_seed(seed)
    if key.did != key_file.did:
        raise TamperError("key file decrypts to a key other than its did")
    return key


def write_key_file(
    path: Path, key: ParticipantKey, passphrase: str, *, n: int = DEFAULT_SCRYPT_N
) -> None:
    """Encrypt ``key`` under ``passphrase`` and replace ``path`` atomically, mode 0600."""
    sealed = seal_key(
        key,
        passphrase,
        salt=secrets.token_bytes(SALT_SIZE),
        nonce=secrets.token_bytes(NONCE_SIZE),
        n=n,
    )
    atomic_write(path, sealed.to_bytes(), mode=0o600)


def read_key_file(path: Path, passphrase: str) -> ParticipantKey:
    """Read and decrypt a key file.

    ``StorageError`` if it cannot be read, is readable by group/others or is larger than
    ``MAX_KEY_FILE_BYTES``; ``InvalidInputError`` if it is not a well-formed v1 file with scrypt
    parameters in bounds; ``VerificationError(DECRYPTION_FAILED)`` for a wrong passphrase or any
    altered byte the parser accepts.
    """
    return open_key(
        KeyFile.from_bytes(read_owner_only(path, max_bytes=MAX_KEY_FILE_BYTES)), passphrase
    )


def generate_key() -> ParticipantKey:
    """A new participant key from 32 bytes of the operating system's CSPRNG."""
    return ParticipantKey.from_seed(secrets.token_bytes(ED25519_SEED_SIZE))


# --- helpers --------------------------------------------------------------------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _passphrase_bytes(passphrase: str) -> bytes:
    # NFC, so the same passphrase typed on two systems (precomposed or not) opens the file.
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise InvalidInputError("passphrase is not valid Unicode", parameter="passphrase") from e


def _check_new_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str):
        raise InvalidInputError("passphrase must be a string", parameter="passphrase")
    length = len(unicodedata.normalize("NFC", passphrase))
    if not MIN_PASSPHRASE_CHARS <= length <= MAX_PASSPHRASE_CHARS:
        raise InvalidInputError(
            f"passphrase must be {MIN_PASSPHRASE_CHARS}..{MAX_PASSPHRASE_CHARS} characters",
            parameter="passphrase",
        )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object, field: str) -> bytes:
    """Standard padded base64 (RFC 4648 §4), canonical form only: one spelling per value."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a base64 string", parameter=field)
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII text
        raise InvalidInputError(f"{field} is not valid base64", parameter=field) from e
    if _b64(raw) != value:
        raise InvalidInputError(f"{field} is not canonical base64", parameter=field)
    return raw


def _load_json(data: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise InvalidInputError("key file has a duplicate field", parameter="key_file")
        return result

    def no_constant(name: str) -> None:
        raise InvalidInputError(f"key file contains {name}", parameter="key_file")

    try:
        document = json.loads(
            data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant
        )
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, huge ints
        raise InvalidInputError("key file is not valid JSON", parameter="key_file") from e
    if not isinstance(document, dict):
        raise InvalidInputError("key file is not a JSON object", parameter="key_file")
    return document


def _check_fields(obj: dict[str, Any], expected: frozenset[str], what: str) -> None:
    if obj.keys() != expected:
        missing = sorted(expected - obj.keys())
        extra = len(obj.keys() - expected)
        raise InvalidInputError(
            f"{what} is missing fields {missing} or has {extra} unexpected", parameter=what
        )
