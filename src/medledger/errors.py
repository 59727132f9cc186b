"""The one exception tree of medledger.

Split by who is at fault, so the edge can map each branch to one HTTP status / FHIR
``OperationOutcome`` in a single table (``medledger.entrypoints.http.errors``). The domain never
raises HTTP errors, and adapters wrap foreign exceptions at the boundary (``raise ... from e``).
Messages name the failing parameter or check, never the content of a record.
"""

from __future__ import annotations


class MedledgerError(Exception):
    """Root of every error medledger raises on purpose.

    ``reason`` is an optional stable, machine-readable code (e.g. an intake or contract
    refusal: ``replayed_nonce``, ``not_authority``) that the edge passes on to clients.
    """

    reason: str | None = None


# --- the caller sent something malformed --------------------------------------------------
class InvalidInputError(MedledgerError):
    """A request or file is malformed or out of range; ``parameter`` names the culprit."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class NotFoundError(MedledgerError):
    """The named object does not exist (yet)."""


class TooLargeError(InvalidInputError):
    """An untrusted size exceeded its limit in ``medledger.config.Limits``."""


# --- untrusted data failed a cryptographic or structural check ----------------------------
class VerificationError(MedledgerError):
    """Untrusted data failed a check: signature, proof, hash or format."""


class SignatureError(VerificationError):
    """A signature did not verify, or no trusted key signed."""


class ProofError(VerificationError):
    """An inclusion or consistency proof did not verify (RFC 9162 §2.1.3.2, §2.1.4.2)."""


class TamperError(VerificationError):
    """Stored data no longer matches what was committed (a flipped byte, a rewritten entry)."""


# --- the caller did not prove who it is -----------------------------------------------------
class AuthenticationError(MedledgerError):
    """No credential, or one that does not check out: a bearer token or a client assertion
    that is missing, malformed, badly signed, expired, replayed or for another audience.
    (Not ``AccessDeniedError``: the caller is not known yet, so nothing can be denied to it.)"""


# --- the request is well-formed but not allowed -------------------------------------------
class AccessDeniedError(MedledgerError):
    """Deny by default: the caller may not do this."""


class ConflictError(MedledgerError):
    """The request conflicts with state, e.g. signing a checkpoint that would fork the log."""


# --- our side failed ------------------------------------------------------------------------
class StorageError(MedledgerError):
    """A store could not read or write durably."""


class OverloadedError(MedledgerError):
    """The node is at capacity; the caller should retry shortly."""


class NetworkError(MedledgerError):
    """A peer or service could not be reached."""


class ConfigurationError(MedledgerError):
    """The node's configuration or home directory is missing or invalid."""
