"""The token endpoint's use case: OAuth 2.0 ``client_credentials`` with ``private_key_jwt``
(RFC 6749 §4.4, RFC 7523 §2.2, SMART Backend Services), ADR 0017.

``TokenService.issue(request, now)``, steps in order:

1. the grant is ``client_credentials`` and the assertion type is RFC 7523's jwt-bearer
   (RFC 6749 §5.2 ``unsupported_grant_type`` / ``invalid_request``);
2. the client assertion verifies (``verify_client_assertion``: ``invalid_client``);
3. its ``jti`` was not seen before its ``exp`` (``SeenAssertions``: a replay is
   ``invalid_client``);
4. the client is an active participant in the committed state (``invalid_client``);
5. the granted scopes are the requested ones capped by its kind (``grant_for``); none left
   is ``invalid_scope``; a patient's token carries their own did as ``patient`` context;
6. an access token signed by the node's key, with a fresh random ``jti``.

Every refusal is a ``MedledgerError`` whose ``reason`` is the RFC 6749 §5.2 error code; the
HTTP edge (``medledger.entrypoints.http.auth_routes``) shapes the response. The clock is the
caller's (``now``); randomness is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from medledger.config import AuthLimits
from medledger.core.auth.jws import b64url_encode
from medledger.core.auth.scopes import ScopeSet, parse_scopes
from medledger.core.auth.tokens import (
    CLIENT_ASSERTION_TYPE,
    AccessToken,
    ClientAssertion,
    check_purpose,
    grant_for,
    issue_access_token,
    verify_client_assertion,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.common import PATIENT, Participant, participant_key
from medledger.errors import (
    AuthenticationError,
    InvalidInputError,
    MedledgerError,
    OverloadedError,
)
from medledger.ports import SeenRequests

GRANT_TYPE = "client_credentials"
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_SCOPE = "invalid_scope"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"


E = TypeVar("E", bound=MedledgerError)


def oauth_error(exc: E, code: str) -> E:
    """``exc`` carrying an RFC 6749 §5.2 error code as its ``reason``."""
    exc.reason = code
    return exc


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The form parameters of a token request (RFC 6749 §4.4.2, RFC 7521 §4.2)."""

    grant_type: str | None
    client_assertion_type: str | None
    client_assertion: str | None
    scope: str | None
    purpose_of_use: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the token response says (RFC 6749 §5.1), and the token's claims."""

    access_token: str
    expires_in: int
    claims: AccessToken


class SeenAssertions:
    """``(client, jti)`` pairs seen, kept until their assertion expires plus the clock skew
    (RFC 7523 §3 item 7), in the node's store of one-time values: on disk, so a restart does
    not reopen the window. Full of live entries: ``temporarily_unavailable`` -- never forget
    one early."""

    def __init__(self, limits: AuthLimits, store: SeenRequests) -> None:
        self._limits = limits
        self._store = store

    def check_and_remember(self, assertion: ClientAssertion, now: int) -> None:
        key = f"assertion/{assertion.client_id}/{assertion.jti}"
        try:
            replay = self._store.seen_before(key, assertion.exp + self._limits.clock_skew_s, now)
        except OverloadedError as e:
            raise oauth_error(
                OverloadedError("too many token requests: try again shortly"),
                "temporarily_unavailable",
            ) from e
        if replay:
            raise oauth_error(
                AuthenticationError("client assertion: jti was already used (a replay)"),
                INVALID_CLIENT,
            )


class TokenService:
    """Issues access tokens to active participants of this node's network."""

    def __init__(
        self,
        *,
        node_key: ParticipantKey,
        state_get: Callable[[str], bytes | None],
        token_endpoint: str,
        audience: str,
        random_bytes: Callable[[int], bytes],
        seen: SeenRequests,
        limits: AuthLimits | None = None,
    ) -> None:
        self._node_key = node_key
        self._state_get = state_get
        self.token_endpoint = token_endpoint
        self.audience = audience
        self._random = random_bytes
        self._limits = limits or AuthLimits()
        self._seen = SeenAssertions(self._limits, seen)

    def issue(self, request: TokenRequest, now: int) -> IssuedToken:
        """The steps in the module docstring, in order."""
        assertion_text = self._check_grant(request)
        assertion = self._authenticate(assertion_text, now)
        participant = self._participant(assertion.client_id)
        scopes = self._grant(participant, request.scope)
        purpose = None
        if request.purpose_of_use is not None:
            try:
                purpose = check_purpose(request.purpose_of_use)
            except InvalidInputError as e:
                raise oauth_error(e, INVALID_REQUEST) from e
        token, claims = issue_access_token(
            self._node_key,
            subject=participant.did,
            audience=self.audience,
            scopes=scopes,
            now=now,
            jti=b64url_encode(self._random(18)),
            patient=participant.did if participant.kind == PATIENT else None,
            purpose_of_use=purpose,
            limits=self._limits,
        )
        return IssuedToken(token, claims.exp - now, claims)

    @staticmethod
    def _check_grant(request: TokenRequest) -> str:
        """Step 1: RFC 6749 §4.4.2 and RFC 7521 §4.2's parameters."""
        if request.grant_type is None:
            raise oauth_error(InvalidInputError("grant_type is missing"), INVALID_REQUEST)
        if request.grant_type != GRANT_TYPE:
            raise oauth_error(
                InvalidInputError(f"only the {GRANT_TYPE} grant is supported"),
                UNSUPPORTED_GRANT_TYPE,
            )
        if request.client_assertion_type != CLIENT_ASSERTION_TYPE:
            raise oauth_error(
                InvalidInputError(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}"),
                INVALID_REQUEST,
            )
        if not request.client_assertion:
            raise oauth_error(InvalidInputError("client_assertion is missing"), INVALID_REQUEST)
        if not request.scope:
            raise oauth_error(InvalidInputError("scope is missing"), INVALID_REQUEST)
        return request.client_assertion

    def _authenticate(self, assertion_text: str, now: int) -> ClientAssertion:
        """Steps 2-3: the assertion checks out and was not seen before."""
        try:
            assertion = verify_client_assertion(
                assertion_text, token_endpoint=self.token_endpoint, now=now, limits=self._limits
            )
        except AuthenticationError as e:
            raise oauth_error(e, INVALID_CLIENT) from e
        self._seen.check_and_remember(assertion, now)
        return assertion

    def _participant(self, did: str) -> Participant:
        """Step 4: registered on the ledger and active, as of the last committed block."""
        raw = self._state_get(participant_key(did))
        participant = None if raw is None else Participant.from_state(raw)
        if participant is None or not participant.active:
            raise oauth_error(
                AuthenticationError("the client is not an active participant"), INVALID_CLIENT
            )
        return participant

    @staticmethod
    def _grant(participant: Participant, requested: str | None) -> ScopeSet:
        """Step 5: the requested scopes, capped by the participant's kind."""
        try:
            asked = parse_scopes(requested or "")
        except InvalidInputError as e:
            raise oauth_error(e, INVALID_SCOPE) from e
        granted = grant_for(participant.kind, asked)
        if not granted.clinical:
            raise oauth_error(
                InvalidInputError(
                    f"none of the requested scopes is open to a {participant.kind}",
                    parameter="scope",
                ),
                INVALID_SCOPE,
            )
        return granted
