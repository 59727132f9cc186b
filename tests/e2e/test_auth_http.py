"""The token endpoint and the bearer dependency over HTTP, in process (no served node): the
routes and the dependency the FHIR API uses, wired as ``create_app`` wires them, with an
in-memory participant state and a fixed clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from medledger.core.auth.jws import b64url_encode, sign_jws
from medledger.core.auth.principal import Principal
from medledger.core.auth.tokens import CLIENT_ASSERTION_TYPE, build_client_assertion
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.entrypoints.http import auth_routes, errors
from medledger.entrypoints.http.bearer import make_bearer_dependency
from medledger.services.tokens import TokenRequest, TokenService
from medledger.testing.memory_seen import MemorySeenRequests

NOW = 1_800_000_000
BASE = "http://testserver"
ENDPOINT = f"{BASE}/auth/token"
FHIR = f"{BASE}/fhir"
NODE = ParticipantKey.from_seed(b"\x11" * 32)
DOCTOR = ParticipantKey.from_seed(b"\x12" * 32)
ER_DOCTOR = ParticipantKey.from_seed(b"\x13" * 32)
PATIENT = ParticipantKey.from_seed(b"\x14" * 32)
HOSPITAL = ParticipantKey.from_seed(b"\x15" * 32)
_jtis = itertools.count()
JUSTIFICATION = "Unconscious on arrival; allergy history needed"


def _person(key: ParticipantKey, kind: str, role: str | None = None) -> Participant:
    return Participant(
        did=key.did,
        kind=kind,
        roles=(role,) if role else (),
        organization=HOSPITAL.did if kind == "practitioner" else None,
        name=None,
        authority=False,
        active=True,
        registered_by="genesis",
        registered_at=0,
    )


STATE = {
    participant_key(p.did): p.to_state()
    for p in (
        _person(HOSPITAL, "organization", "hospital"),
        _person(DOCTOR, "practitioner", "physician"),
        _person(ER_DOCTOR, "practitioner", "emergency-physician"),
        _person(PATIENT, "patient"),
    )
}


class AsgiClient:
    """A synchronous face on ``httpx.AsyncClient`` over the ASGI app (starlette's AsgiClient
    warns that it is deprecated, and warnings are errors here)."""

    def __init__(self, app: FastAPI) -> None:
        self._loop = asyncio.new_event_loop()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.get(path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.post(path, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._http.aclose())
        self._loop.close()


@pytest.fixture(scope="module")
def client() -> Iterator[AsgiClient]:
    app = FastAPI()
    errors.install(app)
    service = TokenService(
        node_key=NODE,
        state_get=STATE.get,
        token_endpoint=ENDPOINT,
        audience=FHIR,
        random_bytes=lambda n: next(_jtis).to_bytes(n, "big"),
        seen=MemorySeenRequests(),
    )
    app.include_router(auth_routes.router(service, clock=lambda: NOW))
    app.state.bearer = make_bearer_dependency(NODE.public_key, FHIR, lambda: NOW)

    @app.get("/fhir/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        # As a router factory uses it: called, since a closure's names cannot be resolved
        # from string annotations (``from __future__ import annotations``).
        principal = await request.app.state.bearer(request)
        return {
            "did": principal.did,
            "scope": str(principal.scopes),
            "patient": principal.patient,
            "purpose": principal.purpose,
            "justification": principal.justification,
        }

    test_client = AsgiClient(app)
    yield test_client
    test_client.close()


def form(key: ParticipantKey, scope: str = "user/*.rs", **extra: str) -> dict[str, str]:
    assertion = build_client_assertion(
        key, token_endpoint=ENDPOINT, now=NOW, jti=f"http-jti-{next(_jtis)}"
    )
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": scope,
        **extra,
    }


def token(client: AsgiClient, key: ParticipantKey, scope: str = "user/*.rs", **extra: str) -> str:
    response = client.post("/auth/token", data=form(key, scope, **extra))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def whoami(client: AsgiClient, bearer: str, **headers: str) -> Any:
    return client.get("/fhir/whoami", headers={"Authorization": f"Bearer {bearer}", **headers})


# --- token endpoint ------------------------------------------------------------------------
def test_token_response_follows_rfc6749(client: AsgiClient) -> None:
    response = client.post("/auth/token", data=form(PATIENT, "patient/*.rs"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "patient/*.rs"
    assert body["patient"] == PATIENT.did
    assert 0 < body["expires_in"] <= 3600


def test_forged_client_assertion_is_refused_with_401_invalid_client(client: AsgiClient) -> None:
    fields = form(DOCTOR)
    header, payload, _ = fields["client_assertion"].split(".")
    fields["client_assertion"] = f"{header}.{payload}.{b64url_encode(HOSPITAL.sign(b'x'))}"
    response = client.post("/auth/token", data=fields)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_replayed_client_assertion_is_refused_over_http(client: AsgiClient) -> None:
    fields = form(DOCTOR)
    assert client.post("/auth/token", data=fields).status_code == 200
    replay = client.post("/auth/token", data=fields)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_assertion_type": "urn:x"}, 400, "invalid_request"),
        ({"scope": "system/*.rs"}, 400, "invalid_scope"),
        ({"scope": "patient/*.rs?x=1"}, 400, "invalid_scope"),
        ({"purpose_of_use": "NOPE"}, 400, "invalid_request"),
    ],
)
def test_token_errors_are_rfc6749_json(
    client: AsgiClient, change: dict[str, str], status: int, error: str
) -> None:
    response = client.post("/auth/token", data={**form(DOCTOR), **change})
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "error_description" in response.json()


def test_token_request_as_json_is_refused(client: AsgiClient) -> None:
    response = client.post("/auth/token", json=form(DOCTOR))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_repeated_form_parameter_is_refused(client: AsgiClient) -> None:
    """Two ``scope`` values: which one a proxy and the node read could differ."""
    body = "&".join(f"{k}={v}" for k, v in form(DOCTOR).items()) + "&scope=system/*.cruds"
    response = client.post(
        "/auth/token",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "more than once" in response.json()["error_description"]


def test_oversize_token_request_is_refused(client: AsgiClient) -> None:
    response = client.post("/auth/token", data={**form(DOCTOR), "pad": "x" * 20_000})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "path", ["/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"]
)
def test_smart_configuration_is_published(client: AsgiClient, path: str) -> None:
    config = client.get(path).json()
    assert config["token_endpoint"] == ENDPOINT
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["EdDSA"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert "permission-v2" in config["capabilities"]


# --- bearer dependency ---------------------------------------------------------------------
def test_bearer_gives_the_principal(client: AsgiClient) -> None:
    response = whoami(client, token(client, PATIENT, "patient/*.rs"))
    assert response.status_code == 200
    assert response.json() == {
        "did": PATIENT.did,
        "scope": "patient/*.rs",
        "patient": PATIENT.did,
        "purpose": "TREAT",
        "justification": None,
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer", "Bearer not.a.token", "Bearer a b", "bearer " + "A" * 9000],
)
def test_missing_or_malformed_bearer_is_401_with_a_challenge(
    client: AsgiClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/fhir/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error"]["code"] == "unauthenticated"


def test_client_assertion_used_as_a_bearer_token_is_refused(client: AsgiClient) -> None:
    response = whoami(client, form(DOCTOR)["client_assertion"])
    assert response.status_code == 401


def test_self_signed_access_token_is_refused(client: AsgiClient) -> None:
    claims = {"iss": NODE.did, "sub": DOCTOR.did, "aud": FHIR, "scope": "system/*.cruds",
              "exp": NOW + 60, "iat": NOW, "jti": "self-signed-1"}  # fmt: skip
    response = whoami(client, sign_jws(claims, DOCTOR, typ="at+jwt"))
    assert response.status_code == 401


def test_break_glass_headers_reach_the_principal(client: AsgiClient) -> None:
    bearer = token(client, ER_DOCTOR)
    response = whoami(
        client,
        bearer,
        **{"X-Purpose-Of-Use": "ETREAT", "X-Break-Glass-Justification": JUSTIFICATION},
    )
    assert response.status_code == 200
    assert response.json()["purpose"] == "ETREAT"
    assert response.json()["justification"] == JUSTIFICATION


def test_purpose_as_a_fhir_token_is_accepted(client: AsgiClient) -> None:
    purpose = "http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"
    response = whoami(client, token(client, ER_DOCTOR), **{"X-Purpose-Of-Use": purpose})
    assert response.json()["purpose"] == "BTG"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Purpose-Of-Use": "SHOPPING"},
        {"X-Purpose-Of-Use": "http://example.org/other|ETREAT"},
        {"X-Break-Glass-Justification": JUSTIFICATION},  # without an emergency purpose
        {"X-Purpose-Of-Use": "ETREAT", "X-Break-Glass-Justification": "too short"},
        {"X-Purpose-Of-Use": "ETREAT", "X-Break-Glass-Justification": "x" * 501},
    ],
)
def test_malformed_purpose_headers_are_400(client: AsgiClient, headers: dict[str, str]) -> None:
    response = whoami(client, token(client, ER_DOCTOR), **headers)
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] in headers


def test_token_bound_to_a_purpose_cannot_be_used_for_another(client: AsgiClient) -> None:
    bearer = token(client, ER_DOCTOR, purpose_of_use="ETREAT")
    assert whoami(client, bearer).json()["purpose"] == "ETREAT"
    assert whoami(client, bearer, **{"X-Purpose-Of-Use": "HRESCH"}).status_code == 400


BEARER = make_bearer_dependency(NODE.public_key, FHIR, lambda: NOW)
Authenticated = Annotated[Principal, Depends(BEARER)]


def test_bearer_as_a_declared_dependency() -> None:
    """The other way to use it: a module-level ``Annotated`` alias, resolvable by FastAPI."""
    app = FastAPI()
    errors.install(app)

    @app.get("/fhir/me")
    async def me(principal: Authenticated) -> dict[str, str]:
        return {"did": principal.did}

    http = AsgiClient(app)
    try:
        service = TokenService(
            node_key=NODE,
            state_get=STATE.get,
            token_endpoint=ENDPOINT,
            audience=FHIR,
            random_bytes=lambda n: b"\x01" * n,
            seen=MemorySeenRequests(),
        )
        issued = service.issue(
            TokenRequest(**form(DOCTOR)),
            NOW,  # type: ignore[arg-type]
        )
        ok = http.get("/fhir/me", headers={"Authorization": f"Bearer {issued.access_token}"})
        assert ok.json() == {"did": DOCTOR.did}
        assert http.get("/fhir/me").status_code == 401
    finally:
        http.close()
