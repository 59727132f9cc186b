"""Client assertions in, access tokens out: the token endpoint's checks and the bearer
tokens the FHIR API accepts (ADR 0017).

What this module handles:

- ``verify_client_assertion(token, token_endpoint=..., now=...)``: RFC 7523 §3 and SMART App
  Launch 2.0 "Backend Services" §"Authenticating to the token endpoint" (``private_key_jwt``):
  the JWS is signed by the key its ``kid`` names, and that did:key is ``iss`` == ``sub`` (the
  client id); ``aud`` is this token endpoint; ``exp`` is in the future but at most
  ``max_assertion_lifetime_s`` away; ``iat``/``nbf`` are not in the future; ``jti`` is there.
  It returns the ``ClientAssertion``; refusing a replayed ``jti`` needs memory, so it is the
  token service's step (``medledger.services.tokens``).
- ``grant_for(kind, requested, subject)``: the scopes a participant of a kind may hold (the caps
  below) intersected with the ones it asked for.
- ``issue_access_token(node_key, ...)`` / ``verify_access_token(token, node_public_key, now,
  audience=...)``: an RFC 9068-shaped JWT (``typ: at+jwt``) signed by the node's key.

Caps by participant kind (``SCOPE_CAPS``): a patient at most ``patient/*.rs`` and
``patient/Consent.cud``, in the context of their own did; a practitioner ``user/*.cruds``; an
organization ``system/*.cruds``. Scopes are necessary, never sufficient: consent still decides
every read (``medledger.core.access.gate``).

Every refusal is ``AuthenticationError`` (the caller did not prove who it is); a bad scope is
``InvalidInputError`` naming ``scope``. Pure: time and ``jti`` are parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from medledger.config import AuthLimits
from medledger.core.auth.jws import did_of_kid, parse_json_object, sign_jws, verify_compact
from medledger.core.auth.principal import Principal
from medledger.core.auth.scopes import Interaction, Scope, ScopeSet, parse_scopes
from medledger.core.consent.vocab import PURPOSES
from medledger.core.identity.did_key import did_from_public_key, is_did_key, public_key_from_did
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.errors import AuthenticationError, InvalidInputError, MedledgerError

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: RFC 9068 §2.1: an access token's ``typ``, so no other JWT passes for one.
ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
#: ``typ`` values a client assertion may carry (none, or plain JWT) -- never ``at+jwt``.
ASSERTION_TYPS: Final = (None, "JWT")
#: A ``jti``: what clients use in practice (UUIDs, random base64url), bounded.
JTI: Final = re.compile(r"[A-Za-z0-9._~:-]{8,128}")
#: Most ``aud`` values an assertion may list.
MAX_AUDIENCES: Final = 4

SCOPE_CAPS: Final[Mapping[str, ScopeSet]] = {
    "patient": parse_scopes("patient/*.rs patient/Consent.cud"),
    "practitioner": parse_scopes("user/*.cruds"),
    "organization": parse_scopes("system/*.cruds"),
}
_LIMITS: Final = AuthLimits()


@dataclass(frozen=True, slots=True)
class ClientAssertion:
    """A client assertion whose signature and claims checked out (not yet checked for replay)."""

    client_id: str
    jti: str
    exp: int


@dataclass(frozen=True, slots=True)
class AccessToken:
    """The claims of an access token (RFC 9068 §2.2, plus SMART's ``patient`` context)."""

    iss: str
    sub: str
    aud: str
    scope: ScopeSet
    exp: int
    iat: int
    jti: str
    patient: str | None = None
    purpose_of_use: str | None = None

    def to_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "scope": str(self.scope),
            "exp": self.exp,
            "iat": self.iat,
            "jti": self.jti,
        }
        if self.patient is not None:
            claims["patient"] = self.patient
        if self.purpose_of_use is not None:
            claims["purpose_of_use"] = self.purpose_of_use
        return claims


# --- client assertions (RFC 7523 §3) ---------------------------------------------------------
def _time(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SAFE_INTEGER:
        raise AuthenticationError(f"{name} must be a NumericDate (integer seconds)")
    return value


def _check_times(
    claims: Mapping[str, Any], now: int, max_lifetime_s: int, skew_s: int
) -> tuple[int, int | None]:
    """RFC 7519 §4.1.4-6: ``exp`` after now (less the skew) and at most ``max_lifetime_s``
    ahead; ``nbf``/``iat``, if there, not after now (plus the skew)."""
    exp = _time(claims, "exp")
    if exp is None:
        raise AuthenticationError("exp is missing")
    if exp <= now - skew_s:
        raise AuthenticationError("the token has expired")
    if exp > now + max_lifetime_s + skew_s:
        raise AuthenticationError(f"exp is more than {max_lifetime_s} s ahead")
    iat = _time(claims, "iat")
    for name, value in (("iat", iat), ("nbf", _time(claims, "nbf"))):
        if value is not None and value > now + skew_s:
            raise AuthenticationError(f"{name} is in the future")
    return exp, iat


def _audience(claims: Mapping[str, Any], expected: str) -> None:
    """RFC 7519 §4.1.3: ``aud`` is ``expected`` or an array holding it."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) and len(aud) <= MAX_AUDIENCES else [aud]
    if not any(isinstance(a, str) and a == expected for a in audiences):
        raise AuthenticationError("aud is not this endpoint")


def verify_client_assertion(
    token: str, *, token_endpoint: str, now: int, limits: AuthLimits = _LIMITS
) -> ClientAssertion:
    """RFC 7523 §3 / SMART Backend Services, steps in order; ``AuthenticationError`` if any fails.

    1. a compact EdDSA JWS (``typ`` absent or ``JWT``) whose ``kid`` is a did:key and whose
       signature verifies under that key (RFC 7515 §5.2; RFC 7523 §3 item 9);
    2. ``iss`` == ``sub`` == that did:key: the client id is the key (RFC 7523 §3 items 1-2);
    3. ``aud`` is this token endpoint's URL (item 3);
    4. ``exp`` in the future, at most ``max_assertion_lifetime_s`` ahead; ``iat``/``nbf`` not
       in the future (items 4-6), all with ``clock_skew_s``;
    5. ``jti`` present (item 7); refusing a replay is the caller's (stateful) step.
    """
    try:
        header, payload = verify_compact(
            token,
            lambda h: public_key_from_did(did_of_kid(h.kid)),
            accept_typ=ASSERTION_TYPS,
            limits=limits,
        )
        claims = parse_json_object(payload, part="payload")
        signer = did_of_kid(header.kid)
    except MedledgerError as e:
        raise AuthenticationError(f"client assertion: {e}") from e
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not is_did_key(iss) or iss != sub:
        raise AuthenticationError("client assertion: iss and sub must be the client's did:key")
    if iss != signer:
        raise AuthenticationError("client assertion: not signed by the key of its iss")
    _audience(claims, token_endpoint)
    exp, _ = _check_times(claims, now, limits.max_assertion_lifetime_s, limits.clock_skew_s)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not JTI.fullmatch(jti):
        raise AuthenticationError("client assertion: jti must be 8-128 URL-safe characters")
    return ClientAssertion(client_id=iss, jti=jti, exp=exp)


def build_client_assertion(
    key: ParticipantKey, *, token_endpoint: str, now: int, jti: str, lifetime_s: int = 60
) -> str:
    """The assertion a client signs to ask ``token_endpoint`` for a token (the CLI's, tests')."""
    claims = {
        "iss": key.did,
        "sub": key.did,
        "aud": token_endpoint,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": jti,
    }
    return sign_jws(claims, key, typ="JWT")


# --- scopes a participant may hold ----------------------------------------------------------
def _intersect(asked: Scope, cap: Scope) -> Scope | None:
    if asked.context != cap.context:
        return None
    if asked.resource == "*":
        resource = cap.resource
    elif cap.resource in ("*", asked.resource):
        resource = asked.resource
    else:
        return None
    permissions: frozenset[Interaction] = asked.permissions & cap.permissions
    return Scope(asked.context, resource, permissions) if permissions else None


def grant_for(kind: str, requested: ScopeSet) -> ScopeSet:
    """The clinical scopes of ``requested`` that a ``kind`` of participant may hold: the
    intersection with ``SCOPE_CAPS[kind]``, scope by scope. Other scopes (``openid``,
    ``launch/patient`` ...) carry nothing we serve and are not granted. May be empty."""
    cap = SCOPE_CAPS.get(kind)
    if cap is None:
        return ScopeSet()
    granted = [
        s for asked in requested.clinical for c in cap.clinical if (s := _intersect(asked, c))
    ]
    return ScopeSet(tuple(dict.fromkeys(granted)))


def check_purpose(code: str) -> str:
    """A purpose of use: a v3-ActReason code we know (``TREAT``, ``ETREAT``, ``BTG`` ...)."""
    if code not in PURPOSES:
        raise InvalidInputError(
            "purpose_of_use: not a known v3-ActReason purpose", parameter="purpose_of_use"
        )
    return code


# --- access tokens (RFC 9068) ---------------------------------------------------------------
def issue_access_token(
    node_key: ParticipantKey,
    *,
    subject: str,
    audience: str,
    scopes: ScopeSet,
    now: int,
    jti: str,
    patient: str | None = None,
    purpose_of_use: str | None = None,
    limits: AuthLimits = _LIMITS,
) -> tuple[str, AccessToken]:
    """An access token for ``subject``, signed by the node, living ``access_token_lifetime_s``."""
    if not is_did_key(subject) or (patient is not None and not is_did_key(patient)):
        raise InvalidInputError("subject and patient must be did:keys", parameter="sub")
    if purpose_of_use is not None:
        check_purpose(purpose_of_use)
    token = AccessToken(
        iss=node_key.did,
        sub=subject,
        aud=audience,
        scope=scopes,
        exp=now + limits.access_token_lifetime_s,
        iat=now,
        jti=jti,
        patient=patient,
        purpose_of_use=purpose_of_use,
    )
    return sign_jws(token.to_claims(), node_key, typ=ACCESS_TOKEN_TYP), token


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"access token: {name} is missing")
    return value


def read_access_token(
    token: str, node_public_key: bytes, now: int, *, audience: str, limits: AuthLimits = _LIMITS
) -> AccessToken:
    """RFC 9068 §4, steps in order; ``AuthenticationError`` if any fails.

    1. a compact EdDSA JWS with ``typ: at+jwt``, signed by the node's key (the ``kid`` names
       it; no other key is tried);
    2. ``iss`` is the node's did:key, ``sub`` a did:key, ``aud`` the FHIR base URL;
    3. ``exp`` in the future and at most ``max_access_token_lifetime_s`` ahead, ``iat`` not in
       the future;
    4. ``scope`` parses (``parse_scopes``), ``patient`` (if any) is a did:key and
       ``purpose_of_use`` (if any) a known code.
    """
    node_did = did_from_public_key(node_public_key)

    def node_key(did: str) -> bytes:
        if did != node_did:
            raise AuthenticationError("access token: not signed by this node")
        return node_public_key

    try:
        _, payload = verify_compact(
            token,
            lambda h: node_key(did_of_kid(h.kid)),
            accept_typ=(ACCESS_TOKEN_TYP,),
            limits=limits,
        )
        claims = parse_json_object(payload, part="payload")
        scopes = parse_scopes(_string(claims, "scope"))
    except MedledgerError as e:
        raise AuthenticationError(f"access token: {e}") from e
    if claims.get("iss") != node_did:
        raise AuthenticationError("access token: iss is not this node")
    subject, patient = _string(claims, "sub"), claims.get("patient")
    if not is_did_key(subject) or (patient is not None and not _is_did(patient)):
        raise AuthenticationError("access token: sub and patient must be did:keys")
    if claims.get("aud") != audience:
        raise AuthenticationError("access token: aud is not this FHIR server")
    exp, iat = _check_times(claims, now, limits.max_access_token_lifetime_s, limits.clock_skew_s)
    if iat is None:
        raise AuthenticationError("access token: iat is missing")
    purpose = claims.get("purpose_of_use")
    if purpose is not None and (not isinstance(purpose, str) or purpose not in PURPOSES):
        raise AuthenticationError("access token: purpose_of_use is not a known code")
    return AccessToken(
        iss=node_did,
        sub=subject,
        aud=audience,
        scope=scopes,
        exp=exp,
        iat=iat,
        jti=_string(claims, "jti"),
        patient=patient,
        purpose_of_use=purpose,
    )


def _is_did(value: object) -> bool:
    return isinstance(value, str) and is_did_key(value)


def verify_access_token(
    token: str, node_public_key: bytes, now: int, *, audience: str, limits: AuthLimits = _LIMITS
) -> Principal:
    """The ``Principal`` an access token names (``read_access_token``'s checks). Its purpose is
    the token's ``purpose_of_use`` (default ``TREAT``); the request may narrow it
    (``medledger.entrypoints.http.bearer``)."""
    claims = read_access_token(token, node_public_key, now, audience=audience, limits=limits)
    return Principal(
        did=claims.sub,
        scopes=claims.scope,
        patient=claims.patient,
        purpose=claims.purpose_of_use or "TREAT",
    )
