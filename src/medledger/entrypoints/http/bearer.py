"""The FHIR API's authentication: a bearer token (RFC 6750 §2.1) in, a ``Principal`` out.

``make_bearer_dependency(node_public_key, audience, clock)`` builds ``bearer_principal``;
``create_app`` puts it at ``app.state.bearer`` (audience: ``app.state.fhir_base``). A route uses
it either by calling it, ``principal = await request.app.state.bearer(request)`` (what works
inside a router factory: FastAPI cannot resolve a closure's names from the string annotations
``from __future__ import annotations`` makes), or as a dependency through a module-level alias
``Annotated[Principal, Depends(bearer)]``. Its steps:

1. exactly one ``Authorization: Bearer <token>`` header (RFC 6750 §2.1; scheme without case);
2. the token is one this node issued for ``audience`` and is live (``read_access_token``; a
   token that checked out before is taken from ``VerifiedTokens`` while it is live);
3. the purpose of use: ``X-Purpose-Of-Use``, a v3-ActReason code, bare (``ETREAT``) or as a
   FHIR token ``http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT``; default the
   token's ``purpose_of_use``, else ``TREAT``. A token issued for a purpose is good for that
   purpose only;
4. ``X-Break-Glass-Justification`` (10-500 characters, UTF-8, no control characters), only
   with purpose ``BTG`` or ``ETREAT``: together they ask for break-glass. Whether it is granted
   is the access gate's decision (role, organization, logging: ADR 0015), not this one's.

A missing or failing credential (1-2) is ``AuthenticationError``: 401 with
``WWW-Authenticate: Bearer ... error="invalid_token"`` from the one error table. A malformed
header in 3-4 is ``InvalidInputError`` (400) naming the header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request

from medledger.config import AuthLimits
from medledger.core.access.gate import (
    BREAK_GLASS_PURPOSES,
    MAX_JUSTIFICATION,
    MIN_JUSTIFICATION,
)
from medledger.core.auth.principal import Principal
from medledger.core.auth.tokens import AccessToken, read_access_token
from medledger.core.consent.vocab import PURPOSE_SYSTEM, PURPOSES
from medledger.errors import AuthenticationError, InvalidInputError

PURPOSE_HEADER: Final = "X-Purpose-Of-Use"
JUSTIFICATION_HEADER: Final = "X-Break-Glass-Justification"
DEFAULT_PURPOSE: Final = "TREAT"
#: RFC 6750 §2.1 ``b64token``.
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Access tokens remembered as verified (a client reuses its token for its lifetime).
MAX_VERIFIED_TOKENS: Final = 4096


class VerifiedTokens:
    """Access tokens that checked out (``read_access_token``), so a client reusing its token
    costs one signature verification per token, not one per request.

    Keyed by the SHA-256 of the exact token text: a token that differs in any byte is another
    token, verified in full; the lookup compares digests, never the secret token itself. At
    most ``max_entries`` (least recently used go first). An entry serves only while
    ``verified_at <= now < exp + clock_skew_s``: of ``read_access_token``'s checks only the
    expiry can fail later (re-checked here); the not-before ones (``iat``, the longest
    lifetime), passed at ``verified_at``, stay passed as time goes on, and a clock that went
    back before ``verified_at`` means a full check again. Everything else a token says is fixed
    by its bytes, and the node key and audience are fixed per instance."""

    def __init__(self, clock_skew_s: int, max_entries: int = MAX_VERIFIED_TOKENS) -> None:
        self._skew = clock_skew_s
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[bytes, AccessToken, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: int, verify: Callable[[], AccessToken]) -> AccessToken:
        """The token's claims: remembered, else ``verify()`` (which raises if it fails)."""
        digest = hashlib.sha256(token.encode("ascii")).digest()
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                stored, claims, verified_at = found
                if hmac.compare_digest(stored, digest) and verified_at <= now < (
                    claims.exp + self._skew
                ):
                    self._entries.move_to_end(digest)
                    return claims
                del self._entries[digest]
        claims = verify()
        with self._lock:
            self._entries[digest] = (digest, claims, now)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return claims

    def __len__(self) -> int:
        return len(self._entries)


def _one_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise InvalidInputError(f"{name}: give it once", parameter=name)
    return values[0] if values else None


def bearer_token(request: Request, limits: AuthLimits) -> str:
    """Step 1: the token of the one ``Authorization: Bearer`` header."""
    values = request.headers.getlist("authorization")
    if not values:
        raise AuthenticationError("a bearer token is required (Authorization: Bearer ...)")
    if len(values) > 1:
        raise AuthenticationError("give one Authorization header")
    scheme, _, token = values[0].partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("the Authorization header must be: Bearer <token>")
    if len(token) > limits.max_jws_bytes or not _B64TOKEN.fullmatch(token):
        raise AuthenticationError("the bearer token is malformed")
    return token


def parse_purpose(value: str) -> str:
    """Step 3: ``CODE`` or ``<v3-ActReason system>|CODE``, a code we know."""
    system, bar, code = value.strip().rpartition("|")
    if (bar and system != PURPOSE_SYSTEM) or code not in PURPOSES:
        raise InvalidInputError(
            f"{PURPOSE_HEADER}: a v3-ActReason purpose of use, e.g. TREAT or ETREAT",
            parameter=PURPOSE_HEADER,
        )
    return code


def parse_justification(value: str) -> str:
    """Step 4: a break-glass justification; header bytes read as UTF-8 (Starlette gives
    latin-1), 10-500 characters, no control characters."""
    try:
        text = value.encode("latin-1").decode("utf-8").strip()
    except UnicodeError as e:
        raise InvalidInputError(
            f"{JUSTIFICATION_HEADER}: must be UTF-8", parameter=JUSTIFICATION_HEADER
        ) from e
    if not MIN_JUSTIFICATION <= len(text) <= MAX_JUSTIFICATION or any(
        unicodedata.category(c) == "Cc" for c in text
    ):
        raise InvalidInputError(
            f"{JUSTIFICATION_HEADER}: {MIN_JUSTIFICATION}-{MAX_JUSTIFICATION} characters, "
            "no control characters",
            parameter=JUSTIFICATION_HEADER,
        )
    return text


def make_bearer_dependency(
    node_public_key: bytes,
    audience: str,
    clock: Callable[[], float],
    *,
    limits: AuthLimits | None = None,
) -> Callable[[Request], Awaitable[Principal]]:
    """The FHIR routes' authentication (see the module docstring for how to use it).

    ``clock`` is read once per request (``time.time`` in a node; a fixed value in a test)."""
    auth_limits = limits or AuthLimits()
    verified = VerifiedTokens(auth_limits.clock_skew_s)

    async def bearer_principal(request: Request) -> Principal:
        token = bearer_token(request, auth_limits)
        now = int(clock())
        claims = verified.get(
            token,
            now,
            lambda: read_access_token(
                token, node_public_key, now, audience=audience, limits=auth_limits
            ),
        )
        asked = _one_header(request, PURPOSE_HEADER)
        purpose = parse_purpose(asked) if asked is not None else None
        if claims.purpose_of_use is not None and purpose not in (None, claims.purpose_of_use):
            raise InvalidInputError(
                f"{PURPOSE_HEADER}: this token is for purpose {claims.purpose_of_use} only",
                parameter=PURPOSE_HEADER,
            )
        purpose = purpose or claims.purpose_of_use or DEFAULT_PURPOSE
        raw_justification = _one_header(request, JUSTIFICATION_HEADER)
        justification = None
        if raw_justification is not None:
            if purpose not in BREAK_GLASS_PURPOSES:
                raise InvalidInputError(
                    f"{JUSTIFICATION_HEADER}: only with purpose "
                    f"{' or '.join(sorted(BREAK_GLASS_PURPOSES))} (break-glass)",
                    parameter=JUSTIFICATION_HEADER,
                )
            justification = parse_justification(raw_justification)
        return Principal(
            did=claims.sub,
            scopes=claims.scope,
            patient=claims.patient,
            purpose=purpose,
            justification=justification,
        )

    return bearer_principal
