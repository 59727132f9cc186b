"""The one table mapping medledger's exception tree to HTTP statuses, and the JSON error body.

Bodies name the failing parameter and the kind of failure; they never echo request content
beyond the parameter's name, and never carry a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medledger.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    MedledgerError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    StorageError,
    TooLargeError,
    VerificationError,
)

log = logging.getLogger("medledger.http")

#: RFC 6750 §3: what a 401 asks for (a bearer token this node issued).
BEARER_CHALLENGE = 'Bearer realm="medledger", error="invalid_token"'

#: Most specific first; the first match wins.
STATUS_TABLE: tuple[tuple[type[MedledgerError], int, str], ...] = (
    (TooLargeError, 413, "too_large"),
    (InvalidInputError, 400, "invalid_input"),
    (NotFoundError, 404, "not_found"),
    (AuthenticationError, 401, "unauthenticated"),
    (AccessDeniedError, 403, "forbidden"),
    (ConflictError, 409, "conflict"),
    (VerificationError, 422, "verification_failed"),
    (StorageError, 503, "storage_unavailable"),
    (OverloadedError, 503, "overloaded"),
    (NetworkError, 502, "upstream_unavailable"),
    (ConfigurationError, 500, "misconfigured"),
    (MedledgerError, 500, "internal"),
)


def status_for(exc: MedledgerError) -> tuple[int, str]:
    for kind, status, code in STATUS_TABLE:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"  # pragma: no cover - MedledgerError is the last row


def error_body(code: str, message: str, parameter: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    return {"error": error}


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(MedledgerError)
    async def _domain(_: Request, exc: MedledgerError) -> JSONResponse:
        status, code = status_for(exc)
        if status >= 500:
            log.error("request failed: %s: %s", type(exc).__name__, exc)
            message = "the node could not complete the request"
        else:
            message = str(exc)
        parameter = exc.parameter if isinstance(exc, InvalidInputError) else None
        reason = getattr(exc, "reason", None)  # intake and contract errors carry a stable code
        if isinstance(reason, str) and status < 500:
            code = reason
        headers = {"WWW-Authenticate": BEARER_CHALLENGE} if status == 401 else None
        return JSONResponse(
            error_body(code, message, parameter), status_code=status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        parameter = ".".join(loc) or None
        message = f"invalid parameter {parameter}" if parameter else "invalid request"
        return JSONResponse(error_body("invalid_input", message, parameter), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)
        return JSONResponse(
            error_body("internal", "the node could not complete the request"), status_code=500
        )
