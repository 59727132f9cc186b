"""SMART on FHIR authorization over HTTP (ADR 0017): the token endpoint and its discovery.

- ``POST /auth/token``: ``application/x-www-form-urlencoded`` (RFC 6749 §4.4.2, RFC 7523
  §2.2): ``grant_type=client_credentials``, ``client_assertion_type``, ``client_assertion``,
  ``scope``, and our extension ``purpose_of_use`` (a v3-ActReason code the token is bound to).
  Success is RFC 6749 §5.1 JSON (``no-store``); a refusal is RFC 6749 §5.2 JSON
  ``{"error": ..., "error_description": ...}`` -- 401 for ``invalid_client``, 400 otherwise
  (503 ``temporarily_unavailable`` when the replay cache is full). These bodies follow the RFC,
  not the node's own error shape, because OAuth clients parse them.
- ``GET /.well-known/smart-configuration`` (and under the FHIR base, where SMART App Launch
  2.0 §"SMART configuration" puts it): the token endpoint, grant, client authentication and
  signing algorithm, scopes and capabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from medledger.config import AuthLimits
from medledger.core.auth.tokens import CLIENT_ASSERTION_TYPE
from medledger.errors import AuthenticationError, InvalidInputError, MedledgerError
from medledger.services.tokens import (
    GRANT_TYPE,
    INVALID_CLIENT,
    INVALID_REQUEST,
    TokenRequest,
    TokenService,
)

FORM: Final = "application/x-www-form-urlencoded"
#: Form parameters read; any other is ignored (RFC 6749 §3.2), none may repeat.
PARAMETERS: Final = (
    "grant_type",
    "client_assertion_type",
    "client_assertion",
    "scope",
    "purpose_of_use",
)
MAX_FIELDS: Final = 16
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SCOPES_SUPPORTED: Final = (
    "patient/*.rs",
    "patient/Consent.cud",
    "user/*.cruds",
    "system/*.cruds",
)

#: The form, for the OpenAPI document (the route reads it itself, strictly).
TOKEN_REQUEST_BODY: Final = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "required": ["grant_type", "client_assertion_type", "client_assertion", "scope"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "client_assertion_type": {
                        "type": "string",
                        "enum": [CLIENT_ASSERTION_TYPE],
                    },
                    "client_assertion": {"type": "string", "description": "EdDSA JWS"},
                    "scope": {"type": "string", "example": "user/*.rs"},
                    "purpose_of_use": {"type": "string", "example": "TREAT"},
                },
            }
        }
    },
}


def oauth_error_response(exc: MedledgerError) -> JSONResponse:
    """RFC 6749 §5.2: the error code from the exception's ``reason`` (else by its kind)."""
    code = exc.reason or (INVALID_CLIENT if isinstance(exc, AuthenticationError) else "")
    if not code:
        code = INVALID_REQUEST if isinstance(exc, InvalidInputError) else "server_error"
    status = {INVALID_CLIENT: 401, "temporarily_unavailable": 503, "server_error": 500}.get(
        code, 400
    )
    description = str(exc) if status < 500 else "the node could not issue a token"
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=NO_STORE
    )


async def read_form(request: Request, limits: AuthLimits) -> TokenRequest:
    """The token request's form: the right media type, bounded, UTF-8, no repeated parameter."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise InvalidInputError(f"the token request must be {FORM}")
    declared = request.headers.get("content-length")
    if declared is not None and (
        not declared.isdigit() or int(declared) > limits.max_token_request_bytes
    ):
        raise InvalidInputError(f"the form exceeds {limits.max_token_request_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_token_request_bytes:
            raise InvalidInputError(f"the form exceeds {limits.max_token_request_bytes} bytes")
    try:
        pairs = parse_qsl(
            bytes(body).decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except (UnicodeError, ValueError) as e:
        raise InvalidInputError("the form is not valid x-www-form-urlencoded") from e
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInputError(f"{name[:40]} is given more than once")
        fields[name] = value
    return TokenRequest(**{name: fields.get(name) for name in PARAMETERS})


def smart_configuration(token_endpoint: str) -> dict[str, Any]:
    """SMART App Launch 2.0 §"Metadata": what this node's authorization server supports."""
    return {
        "token_endpoint": token_endpoint,
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


def router(
    service: TokenService,
    *,
    fhir_path: str = "/fhir",
    clock: Callable[[], float] = time.time,
    limits: AuthLimits | None = None,
) -> APIRouter:
    r = APIRouter(tags=["authorization"])
    form_limits = limits or AuthLimits()
    configuration = smart_configuration(service.token_endpoint)

    @r.post(
        "/auth/token",
        summary="OAuth 2.0 client_credentials with private_key_jwt",
        openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
    )
    async def token(request: Request) -> JSONResponse:
        try:
            form = await read_form(request, form_limits)
            issued = await run_in_threadpool(service.issue, form, int(clock()))
        except MedledgerError as e:
            return oauth_error_response(e)
        body: dict[str, Any] = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": str(issued.claims.scope),
        }
        if issued.claims.patient is not None:
            body["patient"] = issued.claims.patient  # SMART launch context
        if issued.claims.purpose_of_use is not None:
            body["purpose_of_use"] = issued.claims.purpose_of_use
        return JSONResponse(body, headers=NO_STORE)

    async def discovery() -> dict[str, Any]:
        return configuration

    r.add_api_route(
        "/.well-known/smart-configuration",
        discovery,
        methods=["GET"],
        summary="SMART configuration",
    )
    r.add_api_route(  # where SMART App Launch 2.0 looks: under the FHIR base; same document
        f"{fhir_path}/.well-known/smart-configuration",
        discovery,
        methods=["GET"],
        include_in_schema=False,
    )
    return r
