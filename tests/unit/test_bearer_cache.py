"""The bearer dependency's memory of verified access tokens
(``medledger.entrypoints.http.bearer.VerifiedTokens``): real tokens signed by a node key, the
real ``read_access_token`` as the check, a clock we move.

Regression tests are named after the attack they stop.
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from medledger.config import AuthLimits
from medledger.core.auth.scopes import parse_scopes
from medledger.core.auth.tokens import AccessToken, issue_access_token, read_access_token
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.http.bearer import VerifiedTokens, make_bearer_dependency
from medledger.errors import AuthenticationError

NOW = 1_800_000_000
FHIR = "https://node.example/fhir"
NODE = ParticipantKey.from_seed(b"\x21" * 32)
OTHER_NODE = ParticipantKey.from_seed(b"\x22" * 32)
DOCTOR = ParticipantKey.from_seed(b"\x23" * 32)
LIMITS = AuthLimits()
LIFETIME = LIMITS.access_token_lifetime_s
SKEW = LIMITS.clock_skew_s


def token(jti: str = "jti-0001", *, key: ParticipantKey = NODE, now: int = NOW) -> str:
    text, _ = issue_access_token(key, subject=DOCTOR.did, audience=FHIR,
                                 scopes=parse_scopes("user/*.rs"), now=now, jti=jti)  # fmt: skip
    return text


class Checks:
    """``read_access_token`` for our node and audience, counting how often it runs."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str, now: int) -> AccessToken:
        self.calls += 1
        return read_access_token(text, NODE.public_key, now, audience=FHIR)


def get(cache: VerifiedTokens, checks: Checks, text: str, now: int) -> AccessToken:
    return cache.get(text, now, lambda: checks(text, now))


def test_a_token_is_verified_once_while_it_is_live() -> None:
    cache, checks = VerifiedTokens(SKEW), Checks()
    first = get(cache, checks, token(), NOW)
    again = get(cache, checks, token(), NOW + LIFETIME - 1)
    assert again == first
    assert again.sub == DOCTOR.did
    assert checks.calls == 1


def test_expired_token_is_refused_although_it_was_verified_before() -> None:
    cache, checks = VerifiedTokens(SKEW), Checks()
    get(cache, checks, token(), NOW)
    get(cache, checks, token(), NOW + LIFETIME + SKEW - 1)  # within the clock skew: live
    with pytest.raises(AuthenticationError, match="expired"):
        get(cache, checks, token(), NOW + LIFETIME + SKEW)
    assert checks.calls == 2  # the expired one was checked in full, and failed
    assert len(cache) == 0


def test_token_with_a_flipped_byte_is_checked_in_full_and_refused() -> None:
    cache, checks = VerifiedTokens(SKEW), Checks()
    good = token()
    get(cache, checks, good, NOW)
    head, payload, signature = good.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    forged = ".".join((head, payload, signature[:10] + flipped + signature[11:]))
    with pytest.raises(AuthenticationError):
        get(cache, checks, forged, NOW)
    assert checks.calls == 2


def test_token_signed_by_another_node_is_not_remembered() -> None:
    cache, checks = VerifiedTokens(SKEW), Checks()
    stranger = token(key=OTHER_NODE)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="not signed by this node"):
            get(cache, checks, stranger, NOW)
    assert checks.calls == 2
    assert len(cache) == 0


def test_clock_gone_back_before_the_check_means_a_full_check() -> None:
    cache, checks = VerifiedTokens(SKEW), Checks()
    get(cache, checks, token(), NOW + 100)
    get(cache, checks, token(), NOW + 50)
    assert checks.calls == 2


def test_memory_is_bounded_least_recently_used_first() -> None:
    cache, checks = VerifiedTokens(SKEW, max_entries=2), Checks()
    a, b, c = token("jti-000a"), token("jti-000b"), token("jti-000c")
    for text in (a, b, a, c):  # b is the least recently used when c arrives
        get(cache, checks, text, NOW)
    assert len(cache) == 2
    get(cache, checks, a, NOW)
    assert checks.calls == 3
    get(cache, checks, b, NOW)
    assert checks.calls == 4


def _request(text: str) -> Request:
    headers = [(b"authorization", f"Bearer {text}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/fhir/Patient", "headers": headers,
                    "query_string": b""})  # fmt: skip


def test_bearer_dependency_refuses_a_remembered_token_once_it_expires() -> None:
    clock = [float(NOW)]
    bearer = make_bearer_dependency(NODE.public_key, FHIR, lambda: clock[0])
    text = token()
    principal = asyncio.run(bearer(_request(text)))
    assert principal.did == DOCTOR.did
    clock[0] = NOW + LIFETIME + SKEW
    with pytest.raises(AuthenticationError, match="expired"):
        asyncio.run(bearer(_request(text)))
