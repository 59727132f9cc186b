"""Client assertions and access tokens (medledger.core.auth.tokens), and the token service's
steps (medledger.services.tokens) over an in-memory participant state.

Regression tests are named after the attack they stop.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from medledger.config import AuthLimits
from medledger.core.auth.jws import b64url_encode, sign_jws
from medledger.core.auth.scopes import parse_scopes
from medledger.core.auth.tokens import (
    ACCESS_TOKEN_TYP,
    SCOPE_CAPS,
    build_client_assertion,
    grant_for,
    issue_access_token,
    read_access_token,
    verify_access_token,
    verify_client_assertion,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.errors import AuthenticationError, InvalidInputError, OverloadedError
from medledger.services.tokens import (
    CLIENT_ASSERTION_TYPE,
    TokenRequest,
    TokenService,
)
from medledger.testing.memory_seen import MemorySeenRequests

NOW = 1_800_000_000
ENDPOINT = "https://node.example/auth/token"
FHIR = "https://node.example/fhir"
NODE = ParticipantKey.from_seed(b"\x01" * 32)
HOSPITAL = ParticipantKey.from_seed(b"\x02" * 32)
DOCTOR = ParticipantKey.from_seed(b"\x03" * 32)
PATIENT = ParticipantKey.from_seed(b"\x04" * 32)
GONE = ParticipantKey.from_seed(b"\x05" * 32)
STRANGER = ParticipantKey.from_seed(b"\x06" * 32)
_jtis = itertools.count()


def jti() -> str:
    return f"jti-{next(_jtis):08d}"


def assertion(key: ParticipantKey = DOCTOR, **override: Any) -> str:
    claims = {
        "iss": key.did,
        "sub": key.did,
        "aud": ENDPOINT,
        "iat": NOW,
        "exp": NOW + 60,
        "jti": jti(),
    }
    claims.update(override)
    return sign_jws({k: v for k, v in claims.items() if v is not None}, key)


def participant(key: ParticipantKey, kind: str, *, active: bool = True) -> Participant:
    roles = {"organization": ("hospital",), "practitioner": ("physician",), "patient": ()}[kind]
    return Participant(
        did=key.did,
        kind=kind,
        roles=roles,
        organization=HOSPITAL.did if kind == "practitioner" else None,
        name=None,
        authority=False,
        active=active,
        registered_by="genesis",
        registered_at=0,
    )


STATE = {
    participant_key(p.did): p.to_state()
    for p in (
        participant(HOSPITAL, "organization"),
        participant(DOCTOR, "practitioner"),
        participant(PATIENT, "patient"),
        participant(GONE, "practitioner", active=False),
    )
}


def service(max_seen: int = 1000, **limits: Any) -> TokenService:
    return TokenService(
        node_key=NODE,
        state_get=STATE.get,
        token_endpoint=ENDPOINT,
        audience=FHIR,
        random_bytes=lambda n: b"\x07" * n,
        seen=MemorySeenRequests(max_seen),
        limits=AuthLimits(**limits),
    )


def request(token: str, scope: str = "user/*.rs", **override: Any) -> TokenRequest:
    fields: dict[str, Any] = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": token,
        "scope": scope,
    }
    fields.update(override)
    return TokenRequest(**fields)


# --- client assertions ---------------------------------------------------------------------
def test_a_good_assertion_names_its_client() -> None:
    checked = verify_client_assertion(assertion(), token_endpoint=ENDPOINT, now=NOW)
    assert checked.client_id == DOCTOR.did
    assert checked.exp == NOW + 60


def test_the_clis_assertion_is_accepted() -> None:
    token = build_client_assertion(DOCTOR, token_endpoint=ENDPOINT, now=NOW, jti="abcdefgh-1")
    assert verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW).jti == "abcdefgh-1"


def test_expired_client_assertion_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="expired"):
        verify_client_assertion(assertion(exp=NOW - 61), token_endpoint=ENDPOINT, now=NOW)


def test_client_assertion_living_over_five_minutes_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="ahead"):
        verify_client_assertion(assertion(exp=NOW + 400), token_endpoint=ENDPOINT, now=NOW)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_client_assertion_from_the_future_is_refused(claim: str) -> None:
    with pytest.raises(AuthenticationError, match="future"):
        verify_client_assertion(assertion(**{claim: NOW + 120}), token_endpoint=ENDPOINT, now=NOW)


def test_clock_skew_is_tolerated() -> None:
    token = assertion(iat=NOW + 30, exp=NOW - 30)
    assert verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW)


@pytest.mark.parametrize(
    "aud", ["https://other.example/auth/token", ENDPOINT + "/", [FHIR], None, 7, [ENDPOINT] * 5]
)
def test_client_assertion_for_another_audience_is_refused(aud: Any) -> None:
    with pytest.raises(AuthenticationError, match="aud"):
        verify_client_assertion(assertion(aud=aud), token_endpoint=ENDPOINT, now=NOW)


def test_aud_as_an_array_holding_the_endpoint_is_accepted() -> None:
    token = assertion(aud=["https://x.example", ENDPOINT])
    assert verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW)


def test_client_assertion_whose_iss_is_not_its_sub_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="iss and sub"):
        verify_client_assertion(assertion(sub=PATIENT.did), token_endpoint=ENDPOINT, now=NOW)


def test_client_assertion_claiming_another_client_is_refused() -> None:
    """Mallory signs with her own key but names the doctor as iss and sub."""
    token = assertion(key=STRANGER, iss=DOCTOR.did, sub=DOCTOR.did)
    with pytest.raises(AuthenticationError, match="not signed by the key of its iss"):
        verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW)


@pytest.mark.parametrize("value", [None, "", "short", 12345678, "x" * 129, "bad jti!"])
def test_client_assertion_without_a_usable_jti_is_refused(value: Any) -> None:
    with pytest.raises(AuthenticationError, match="jti"):
        verify_client_assertion(assertion(jti=value), token_endpoint=ENDPOINT, now=NOW)


@pytest.mark.parametrize("exp", [True, 1.5e9, "1800000060", 2**60])
def test_client_assertion_with_a_non_numeric_date_is_refused(exp: Any) -> None:
    claims = {"iss": DOCTOR.did, "sub": DOCTOR.did, "aud": ENDPOINT, "exp": exp, "jti": jti()}
    header = b64url_encode(b'{"alg":"EdDSA","kid":"' + DOCTOR.did.encode() + b'"}')
    payload = b64url_encode(json.dumps(claims).encode())
    token = f"{header}.{payload}.{b64url_encode(DOCTOR.sign(f'{header}.{payload}'.encode()))}"
    with pytest.raises(AuthenticationError, match="exp"):
        verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW)


def test_access_token_presented_as_a_client_assertion_is_refused() -> None:
    """An organization's node key is also a client: its access tokens must not pass for
    assertions (``typ: at+jwt`` is refused there)."""
    token = sign_jws(
        {"iss": NODE.did, "sub": NODE.did, "aud": ENDPOINT, "exp": NOW + 60, "jti": jti()},
        NODE,
        typ=ACCESS_TOKEN_TYP,
    )
    with pytest.raises(AuthenticationError, match="typ"):
        verify_client_assertion(token, token_endpoint=ENDPOINT, now=NOW)


# --- scope caps ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "asked", "granted"),
    [
        ("patient", "patient/*.cruds", "patient/*.rs patient/Consent.cud"),
        ("patient", "patient/Observation.read", "patient/Observation.rs"),
        ("patient", "patient/Consent.write", "patient/Consent.cud"),
        ("patient", "patient/Observation.c user/*.rs system/*.rs", ""),
        ("practitioner", "user/*.cruds patient/*.rs", "user/*.cruds"),
        ("practitioner", "user/Observation.rs openid fhirUser", "user/Observation.rs"),
        ("practitioner", "system/*.rs", ""),
        ("organization", "system/*.read user/*.rs", "system/*.rs"),
        ("robot", "system/*.rs", ""),
    ],
)
def test_scopes_are_capped_by_the_participants_kind(kind: str, asked: str, granted: str) -> None:
    assert str(grant_for(kind, parse_scopes(asked))) == granted


def test_caps_never_widen_what_was_asked() -> None:
    for kind, cap in SCOPE_CAPS.items():
        for scope in cap.clinical:
            asked = parse_scopes(f"{scope.context}/Observation.r")
            assert grant_for(kind, asked).allows("Observation", "s") is None


# --- the token service ---------------------------------------------------------------------
def test_practitioner_gets_a_user_token_for_the_fhir_base() -> None:
    issued = service().issue(request(assertion(), "user/*.rs"), NOW)
    assert issued.expires_in == AuthLimits().access_token_lifetime_s
    principal = verify_access_token(issued.access_token, NODE.public_key, NOW, audience=FHIR)
    assert principal.did == DOCTOR.did
    assert principal.patient is None
    assert principal.purpose == "TREAT"
    assert principal.scopes.allows("Observation", "r") == "user"
    assert principal.scopes.allows("Observation", "c") is None


def test_patient_token_carries_their_own_patient_context() -> None:
    issued = service().issue(request(assertion(PATIENT), "patient/*.cruds"), NOW)
    assert issued.claims.patient == PATIENT.did
    assert str(issued.claims.scope) == "patient/*.rs patient/Consent.cud"
    principal = verify_access_token(issued.access_token, NODE.public_key, NOW, audience=FHIR)
    assert principal.patient == PATIENT.did
    assert principal.scopes.allows("Consent", "c") == "patient"


def test_organization_gets_system_scopes() -> None:
    issued = service().issue(request(assertion(HOSPITAL), "system/*.rs"), NOW)
    assert issued.claims.sub == HOSPITAL.did
    assert str(issued.claims.scope) == "system/*.rs"


def test_token_bound_to_a_purpose_of_use() -> None:
    issued = service().issue(request(assertion(), purpose_of_use="ETREAT"), NOW)
    principal = verify_access_token(issued.access_token, NODE.public_key, NOW, audience=FHIR)
    assert principal.purpose == "ETREAT"


def test_unknown_purpose_of_use_is_an_invalid_request() -> None:
    with pytest.raises(InvalidInputError) as caught:
        service().issue(request(assertion(), purpose_of_use="SHOPPING"), NOW)
    assert caught.value.reason == "invalid_request"


def test_replayed_client_assertion_is_refused() -> None:
    tokens = service()
    token = assertion()
    tokens.issue(request(token), NOW)
    with pytest.raises(AuthenticationError, match="replay") as caught:
        tokens.issue(request(token), NOW + 30)
    assert caught.value.reason == "invalid_client"


def test_same_jti_from_two_clients_is_not_a_replay() -> None:
    tokens = service()
    tokens.issue(request(assertion(DOCTOR, jti="shared-jti-1")), NOW)
    tokens.issue(request(assertion(HOSPITAL, jti="shared-jti-1"), "system/*.rs"), NOW)


def test_replay_cache_is_bounded_and_forgets_only_expired_assertions() -> None:
    tokens = service(max_seen=2)
    tokens.issue(request(assertion()), NOW)
    tokens.issue(request(assertion()), NOW)
    with pytest.raises(OverloadedError) as caught:
        tokens.issue(request(assertion()), NOW)
    assert caught.value.reason == "temporarily_unavailable"
    # once the first two have expired (exp + skew), there is room again
    later = NOW + 60 + AuthLimits().clock_skew_s + 1
    tokens.issue(request(assertion(iat=later, exp=later + 60)), later)


@pytest.mark.parametrize("key", [STRANGER, GONE], ids=["unregistered", "deactivated"])
def test_client_that_is_not_an_active_participant_is_refused(key: ParticipantKey) -> None:
    with pytest.raises(AuthenticationError, match="not an active participant") as caught:
        service().issue(request(assertion(key)), NOW)
    assert caught.value.reason == "invalid_client"


def test_forged_client_assertion_is_refused() -> None:
    header, payload, _ = assertion().split(".")
    forged = f"{header}.{payload}.{b64url_encode(STRANGER.sign(b'x'))}"
    with pytest.raises(AuthenticationError) as caught:
        service().issue(request(forged), NOW)
    assert caught.value.reason == "invalid_client"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"grant_type": None}, "invalid_request"),
        ({"client_assertion_type": "urn:other"}, "invalid_request"),
        ({"client_assertion": None}, "invalid_request"),
        ({"scope": None}, "invalid_request"),
        ({"scope": "patient/Observation.rs?code=1"}, "invalid_scope"),
        ({"scope": "system/*.rs"}, "invalid_scope"),
    ],
)
def test_malformed_token_requests_get_rfc6749_codes(override: dict[str, Any], reason: str) -> None:
    with pytest.raises((InvalidInputError, AuthenticationError)) as caught:
        service().issue(request(assertion(), **override), NOW)
    assert caught.value.reason == reason


# --- access tokens -------------------------------------------------------------------------
def issue(**override: Any) -> str:
    fields: dict[str, Any] = {
        "subject": DOCTOR.did,
        "audience": FHIR,
        "scopes": parse_scopes("user/*.rs"),
        "now": NOW,
        "jti": "token-jti-1",
    }
    fields.update(override)
    return issue_access_token(NODE, **fields)[0]


def test_access_token_round_trips() -> None:
    claims = read_access_token(issue(patient=PATIENT.did), NODE.public_key, NOW, audience=FHIR)
    assert (claims.iss, claims.sub, claims.patient, claims.jti) == (
        NODE.did,
        DOCTOR.did,
        PATIENT.did,
        "token-jti-1",
    )
    assert claims.exp == NOW + AuthLimits().access_token_lifetime_s


def test_expired_access_token_is_refused() -> None:
    later = NOW + AuthLimits().access_token_lifetime_s + AuthLimits().clock_skew_s
    with pytest.raises(AuthenticationError, match="expired"):
        verify_access_token(issue(), NODE.public_key, later, audience=FHIR)


def test_access_token_for_another_fhir_server_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="aud"):
        verify_access_token(
            issue(audience="https://other/fhir"), NODE.public_key, NOW, audience=FHIR
        )


def test_access_token_minted_by_a_participant_key_is_refused() -> None:
    """A participant signs its own "access token" naming itself with every scope."""
    claims = {"iss": NODE.did, "sub": DOCTOR.did, "aud": FHIR, "scope": "system/*.cruds",
              "exp": NOW + 60, "iat": NOW, "jti": "self-made-1"}  # fmt: skip
    token = sign_jws(claims, DOCTOR, typ=ACCESS_TOKEN_TYP)
    with pytest.raises(AuthenticationError, match="not signed by this node"):
        verify_access_token(token, NODE.public_key, NOW, audience=FHIR)


def test_client_assertion_presented_as_an_access_token_is_refused() -> None:
    token = build_client_assertion(NODE, token_endpoint=FHIR, now=NOW, jti="assert-as-token")
    with pytest.raises(AuthenticationError, match="typ"):
        verify_access_token(token, NODE.public_key, NOW, audience=FHIR)


def test_access_token_living_over_an_hour_is_refused() -> None:
    long_lived = AuthLimits(access_token_lifetime_s=3600, max_access_token_lifetime_s=3600)
    token = issue(limits=long_lived, now=NOW + 1000)
    with pytest.raises(AuthenticationError, match="ahead"):
        verify_access_token(
            token, NODE.public_key, NOW, audience=FHIR, limits=AuthLimits(clock_skew_s=0)
        )


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "admin/*.rs"},
        {"scope": None},
        {"sub": "did:web:x"},
        {"patient": "Patient/123"},
        {"iss": DOCTOR.did},
        {"purpose_of_use": "SHOPPING"},
        {"iat": None},
        {"jti": None},
    ],
)
def test_access_token_with_bad_claims_is_refused(change: dict[str, Any]) -> None:
    claims = {"iss": NODE.did, "sub": DOCTOR.did, "aud": FHIR, "scope": "user/*.rs",
              "exp": NOW + 60, "iat": NOW, "jti": "claims-1"}  # fmt: skip
    claims.update(change)
    token = sign_jws({k: v for k, v in claims.items() if v is not None}, NODE, typ="at+jwt")
    with pytest.raises(AuthenticationError):
        verify_access_token(token, NODE.public_key, NOW, audience=FHIR)
