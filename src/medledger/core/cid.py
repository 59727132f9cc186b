"""Content identifiers for off-chain blobs: CIDv1, raw codec, sha2-256, base32 (ADR 0011).

The ledger anchors only a blob's CID, so the CID is the whole link between a transaction and
the ciphertext it commits to. One form, one spelling, as in the multiformats CID spec
(github.com/multiformats/cid, "CIDv1"):

    "b" + base32-lower-nopad( 0x01 | 0x55 | 0x12 0x20 | sha256(data) )
     |                        |      |      |    |
     multibase base32         CIDv1  raw    sha2-256, 32-byte digest

Every such CID has 59 characters and begins ``bafkrei``; it is the CID that IPFS gives a
raw-leaf block (``ipfs add --cid-version 1 --raw-leaves`` of a file of one chunk).

``parse_cid`` accepts exactly that form and nothing else: no CIDv0 (``Qm...``), no other
codec, hash or digest length, no other multibase, no upper case, no padding, and only the
canonical encoding of the last character, so that one blob has exactly one CID string. Pure:
no I/O here, the blob store adapters (``medledger.adapters.blob_fs``) do that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from medledger.errors import InvalidInputError, TamperError

#: multibase prefix of RFC 4648 base32, lower case, no padding.
MULTIBASE_BASE32 = "b"
CID_VERSION = 0x01
#: multicodec ``raw``: the blob's bytes, uninterpreted.
RAW_CODEC = 0x55
#: multihash ``sha2-256`` and its digest length.
SHA2_256 = 0x12
SHA2_256_LENGTH = 0x20
#: The four bytes before the digest: version, codec, hash function, digest length. Each is a
#: one-byte unsigned varint because each value is below 0x80.
CID_PREFIX = bytes([CID_VERSION, RAW_CODEC, SHA2_256, SHA2_256_LENGTH])
#: 36 binary bytes = 288 bits -> 58 base32 characters, plus the multibase prefix.
CID_LENGTH = 1 + (8 * (len(CID_PREFIX) + SHA2_256_LENGTH) + 4) // 5

_BASE32_BODY = re.compile(r"[a-z2-7]+")
#: RFC 4648 base32 (lower case) -> the digits ``int(..., 32)`` reads, value for value.
_BASE32_AS_DIGITS = str.maketrans(
    "abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghijklmnopqrstuv"
)
#: Bits of the last base32 character beyond the CID's bytes (zero when canonical).
_PAD_BITS = 5 * (CID_LENGTH - 1) - 8 * (len(CID_PREFIX) + SHA2_256_LENGTH)


def cid_from_digest(digest: bytes) -> str:
    """The CID of a blob whose sha-256 digest is ``digest``."""
    if len(digest) != SHA2_256_LENGTH:
        raise InvalidInputError("a sha2-256 digest is 32 bytes", parameter="digest")
    body = base64.b32encode(CID_PREFIX + digest).decode("ascii").rstrip("=").lower()
    return MULTIBASE_BASE32 + body


def cid_for(data: bytes) -> str:
    """The CID of ``data``."""
    return cid_from_digest(hashlib.sha256(data).digest())


def parse_cid(text: str) -> bytes:
    """The sha-256 digest a CID names; ``InvalidInputError`` for anything but the one form.

    1. a string of exactly ``CID_LENGTH`` characters (checked first: a huge input costs
       nothing);
    2. multibase ``b`` followed only by lower-case base32 characters;
    3. decoding gives version 1, codec raw, hash sha2-256 with a 32-byte digest;
    4. re-encoding the digest gives back the same text (no non-canonical last character).
    """
    if not isinstance(text, str) or len(text) != CID_LENGTH:
        raise InvalidInputError(f"a blob CID has {CID_LENGTH} characters", parameter="cid")
    if not text.startswith(MULTIBASE_BASE32) or not _BASE32_BODY.fullmatch(text, 1):
        raise InvalidInputError("a blob CID is 'b' + lower-case base32", parameter="cid")
    # The base32 body as one number (RFC 4648's alphabet mapped onto int()'s base-32 digits,
    # both in value order): its bits are the CID's bytes, then _PAD_BITS that are zero in the
    # canonical encoding -- what re-encoding the bytes and comparing would check, without the
    # slow pure-Python base64 codec (every blob read parses its CID).
    value = int(text[1:].translate(_BASE32_AS_DIGITS), 32)
    raw = (value >> _PAD_BITS).to_bytes(len(CID_PREFIX) + SHA2_256_LENGTH, "big")
    if raw[: len(CID_PREFIX)] != CID_PREFIX:
        raise InvalidInputError(
            "only CIDv1 with the raw codec and a sha2-256 digest is accepted", parameter="cid"
        )
    if value & ((1 << _PAD_BITS) - 1):
        raise InvalidInputError("a blob CID is not in canonical form", parameter="cid")
    return raw[len(CID_PREFIX) :]


def is_cid(text: str) -> bool:
    """Whether ``text`` is a CID in the one accepted form."""
    try:
        parse_cid(text)
    except InvalidInputError:
        return False
    return True


def verify_cid(cid: str, data: bytes) -> None:
    """Return if ``data`` is the blob ``cid`` names; ``TamperError`` if it is not.

    ``InvalidInputError`` if ``cid`` itself is malformed. The digests are compared in
    constant time.
    """
    verify_digest(parse_cid(cid), data)


def verify_digest(digest: bytes, data: bytes) -> None:
    """Return if ``data`` hashes to ``digest`` (what ``parse_cid`` gave for its CID);
    ``TamperError`` if it does not. Compared in constant time. For a caller that has parsed
    the CID already (the blob store, which parses it once to find the file)."""
    if not hmac.compare_digest(hashlib.sha256(data).digest(), digest):
        raise TamperError("blob does not match its CID")
