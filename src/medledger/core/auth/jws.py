"""Compact JWS with EdDSA over Ed25519 (RFC 7515 §7.1, RFC 8037 §3.1), and nothing else.

What this module handles, strictly:

- ``encode_compact(header, payload, sign)``: ``BASE64URL(JCS(header)) '.' BASE64URL(payload)
  '.' BASE64URL(signature)`` -- the header in RFC 8785 form, so signing is deterministic;
- ``verify_compact(token, key_for, limits)``: the steps of RFC 7515 §5.2 for one algorithm,
  returning the protected header and the payload bytes;
- ``sign_jws(claims, key)`` / ``verify_jws(token, resolve_public_key)``: a JWT-shaped JSON
  object signed by a participant's key, ``kid`` = its did:key.

Refused (``InvalidInputError`` for a malformed token, ``SignatureError`` for one no trusted
key signed): more than ``AuthLimits.max_jws_bytes``; anything but three non-empty parts of
unpadded base64url in canonical form (no ``=``, no stray bits); a header or payload that is
not a JSON object, has a duplicate name, NaN/Infinity or is nested too deep; ``alg`` other
than ``EdDSA`` (``none``, ``HS256``, ``ES256`` ...); any header parameter but ``alg``, ``kid``,
``typ`` (so ``crit``, ``b64``, ``jwk``, ``jku``, ``x5c``: no key ever comes from the token); a
``typ`` the caller does not expect; a signature that is not 64 bytes or does not verify.

Not handled here: which key is trusted for a ``kid`` (the caller's ``resolve_public_key``),
and what the claims mean (``medledger.core.auth.tokens``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medledger.config import AuthLimits
from medledger.core.identity.did_key import DID_KEY_PREFIX, public_key_from_did
from medledger.core.identity.keys import ED25519_SIGNATURE_SIZE, ParticipantKey
from medledger.core.ledger.canonical import canonical
from medledger.errors import InvalidInputError, SignatureError

ALG: Final = "EdDSA"
#: Header parameters we understand; any other one is refused (RFC 7515 §4.1.11 allows
#: ignoring unknown ones, but ``crit``/``b64`` would change what is signed).
HEADER_PARAMETERS: Final = frozenset({"alg", "kid", "typ"})
#: The longest ``kid`` or ``typ`` we read.
MAX_HEADER_VALUE_CHARS: Final = 160
#: JSON nesting a header or payload may use (claims are flat; ``aud`` may be an array).
MAX_JSON_DEPTH: Final = 8

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_LIMITS: Final = AuthLimits()


@dataclass(frozen=True, slots=True)
class JwsHeader:
    """The protected header of a verified-shape JWS: ``alg`` is always ``EdDSA``."""

    alg: str
    kid: str | None = None
    typ: str | None = None


def b64url_encode(data: bytes) -> str:
    """RFC 7515 §2 ``BASE64URL``: base64url with the trailing ``=`` omitted."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, part: str) -> bytes:
    """The inverse of ``b64url_encode``, accepting exactly its output (one spelling per value)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidInputError(f"{part}: not unpadded base64url", parameter="token")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:  # pragma: no cover - the pattern already refused
        raise InvalidInputError(f"{part}: not unpadded base64url", parameter="token") from e
    if b64url_encode(raw) != text:  # non-zero trailing bits: another spelling of the same bytes
        raise InvalidInputError(f"{part}: not canonical base64url", parameter="token")
    return raw


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise InvalidInputError(f"duplicate member {name[:40]!r}", parameter="token")
        obj[name] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise InvalidInputError(f"{name} is not JSON", parameter="token")


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1


def parse_json_object(raw: bytes, *, part: str) -> dict[str, Any]:
    """A UTF-8 JSON object (RFC 7515 §5.2 steps 3, 8): no duplicate names, no NaN, shallow."""
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
        )
    except InvalidInputError as e:
        raise InvalidInputError(f"{part}: {e}", parameter="token") from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInputError(f"{part}: not UTF-8 JSON", parameter="token") from e
    if not isinstance(value, dict):
        raise InvalidInputError(f"{part}: not a JSON object", parameter="token")
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidInputError(f"{part}: nested too deep", parameter="token")
    return value


def _header(raw: dict[str, Any], accept_typ: Collection[str | None]) -> JwsHeader:
    """RFC 7515 §4.1 and RFC 8037 §3.1: ``alg`` is ``EdDSA`` exactly; ``typ`` as expected."""
    unknown = set(raw) - HEADER_PARAMETERS
    if unknown:
        raise InvalidInputError(
            f"header: parameter {sorted(unknown)[0][:40]!r} is not supported", parameter="token"
        )
    alg = raw.get("alg")
    if alg != ALG:
        # Never "none", never a MAC keyed with a public key, never another curve.
        raise SignatureError(f"header: alg must be {ALG}")
    kid, typ = raw.get("kid"), raw.get("typ")
    for name, value in (("kid", kid), ("typ", typ)):
        if value is not None and (
            not isinstance(value, str) or not 0 < len(value) <= MAX_HEADER_VALUE_CHARS
        ):
            raise InvalidInputError(f"header: {name} must be a short string", parameter="token")
    # RFC 7515 §4.1.9: typ is a media type, compared without case ("application/" optional).
    normal = None if typ is None else typ.lower().removeprefix("application/")
    accepted = {None if t is None else t.lower().removeprefix("application/") for t in accept_typ}
    if normal not in accepted:
        raise InvalidInputError("header: unexpected typ", parameter="token")
    return JwsHeader(alg=ALG, kid=kid, typ=typ)


def encode_compact(
    header: Mapping[str, Any], payload: bytes, sign: Callable[[bytes], bytes]
) -> str:
    """RFC 7515 §5.1 for EdDSA: the header as canonical JSON, the signature over the ASCII
    signing input ``BASE64URL(header) '.' BASE64URL(payload)`` (RFC 8037 §3.1)."""
    if header.get("alg") != ALG:
        raise InvalidInputError(f"header: alg must be {ALG}", parameter="header")
    signing_input = f"{b64url_encode(canonical(dict(header)))}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"


def verify_compact(
    token: str,
    key_for: Callable[[JwsHeader], bytes],
    *,
    accept_typ: Collection[str | None] = (None, "JWT"),
    limits: AuthLimits = _LIMITS,
) -> tuple[JwsHeader, bytes]:
    """RFC 7515 §5.2, EdDSA only; returns the header and the payload's exact bytes.

    ``key_for(header)`` gives the raw 32-byte Ed25519 key trusted for that header, or raises.
    """
    # 1. Size first, then three parts of canonical unpadded base64url (§5.2 steps 1-2, 7).
    if not isinstance(token, str) or len(token) > limits.max_jws_bytes:
        raise InvalidInputError(
            f"a token is a string of at most {limits.max_jws_bytes} characters", parameter="token"
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidInputError("not a compact JWS (three parts)", parameter="token")
    header_b64, payload_b64, signature_b64 = parts
    header_raw = b64url_decode(header_b64, part="header")
    payload = b64url_decode(payload_b64, part="payload")
    signature = b64url_decode(signature_b64, part="signature")
    # 2. The header: a JSON object naming EdDSA, the parameters we understand (steps 3-5).
    header = _header(parse_json_object(header_raw, part="header"), accept_typ)
    # 3. The key the caller trusts for this header; RFC 8032 §5.1.7 over the received bytes.
    public_key = key_for(header)
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise SignatureError(f"the signature is not {ED25519_SIGNATURE_SIZE} bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, f"{header_b64}.{payload_b64}".encode("ascii")
        )
    except (InvalidSignature, ValueError) as e:
        raise SignatureError("the token's signature does not verify") from e
    return header, payload


def did_of_kid(kid: str | None) -> str:
    """The did:key a ``kid`` names: ``did:key:z...`` or ``did:key:z...#z...`` (the fragment, if
    any, is the key's own multibase value, as in a did:key document's verification method)."""
    if kid is None:
        raise SignatureError("header: kid (the signer's did:key) is required")
    did, hash_, fragment = kid.partition("#")
    if hash_ and fragment != did.removeprefix(DID_KEY_PREFIX):
        raise SignatureError("header: kid's fragment does not name the did:key's key")
    try:
        public_key_from_did(did)
    except InvalidInputError as e:
        raise SignatureError("header: kid is not an Ed25519 did:key") from e
    return did


def sign_jws(claims: Mapping[str, Any], key: ParticipantKey, *, typ: str = "JWT") -> str:
    """``claims`` as a compact JWS signed by ``key``, ``kid`` = its did:key."""
    payload = canonical(dict(claims))
    return encode_compact({"alg": ALG, "kid": key.did, "typ": typ}, payload, key.sign)


def verify_jws(
    token: str,
    resolve_public_key: Callable[[str], bytes],
    *,
    accept_typ: Collection[str | None] = (None, "JWT"),
    limits: AuthLimits = _LIMITS,
) -> dict[str, Any]:
    """The claims of a JWS whose ``kid`` is a did:key and whose signature verifies under
    ``resolve_public_key(did)`` (which raises ``SignatureError`` for a signer it does not trust).
    """
    _, payload = verify_compact(
        token,
        lambda header: resolve_public_key(did_of_kid(header.kid)),
        accept_typ=accept_typ,
        limits=limits,
    )
    return parse_json_object(payload, part="payload")
