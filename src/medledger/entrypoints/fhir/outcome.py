"""The one table from medledger's exception tree to HTTP statuses and FHIR R4
``OperationOutcome`` issue codes (FHIR R4 §3.1.0.4 "issue-type"), for the ``/fhir`` API.

An ``OperationOutcome`` names the failing element (``issue.expression``) when the error names a
parameter, says which rule failed, and never echoes a value of the request (it could be PHI).
Server-side failures (5xx) say only that the node could not complete the request.
"""

from __future__ import annotations

import logging
from typing import Any

from medledger.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    GoneError,
    InvalidInputError,
    MedledgerError,
    NetworkError,
    NotFoundError,
    OverloadedError,
    PreconditionFailedError,
    StorageError,
    TooLargeError,
    VerificationError,
)

log = logging.getLogger("medledger.fhir")


class NotAcceptableError(InvalidInputError):
    """The client accepts no format this server answers in (HTTP 406)."""


class MethodNotAllowedError(InvalidInputError):
    """The resource does not support the interaction (HTTP 405), e.g. writing an AuditEvent."""


class UnsupportedMediaError(InvalidInputError):
    """The body is in a format this server does not read (HTTP 415)."""


#: Most specific first; the first match wins: (error, HTTP status, issue code).
OUTCOME_TABLE: tuple[tuple[type[MedledgerError], int, str], ...] = (
    (TooLargeError, 413, "too-costly"),
    (NotAcceptableError, 406, "not-supported"),
    (UnsupportedMediaError, 415, "not-supported"),
    (MethodNotAllowedError, 405, "not-supported"),
    (InvalidInputError, 400, "invalid"),
    (GoneError, 410, "deleted"),
    (NotFoundError, 404, "not-found"),
    (AuthenticationError, 401, "login"),
    (AccessDeniedError, 403, "forbidden"),
    (PreconditionFailedError, 412, "conflict"),
    (ConflictError, 409, "conflict"),
    (VerificationError, 500, "exception"),
    (StorageError, 503, "transient"),
    (OverloadedError, 503, "throttled"),
    (NetworkError, 502, "transient"),
    (ConfigurationError, 500, "exception"),
    (MedledgerError, 500, "exception"),
)


def operation_outcome(
    code: str, diagnostics: str, *, expression: str | None = None, severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression is not None:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_for(exc: MedledgerError) -> tuple[int, dict[str, Any]]:
    """The status and OperationOutcome of ``exc``."""
    status, code = 500, "exception"
    for kind, kind_status, kind_code in OUTCOME_TABLE:
        if isinstance(exc, kind):
            status, code = kind_status, kind_code
            break
    if status >= 500:
        log.error("FHIR request failed: %s", type(exc).__name__)
        return status, operation_outcome(code, "the node could not complete the request")
    parameter = exc.parameter if isinstance(exc, InvalidInputError) else None
    return status, operation_outcome(code, str(exc)[:300], expression=parameter)
