"""``medledger.client``: a small Python client for a node's ledger and log APIs.

Builds and signs transactions locally (keys never leave the caller), submits them, and reads
transactions, blocks, state, checkpoints and receipts. Errors come back as the same exception
tree the node uses (``medledger.errors``), with the node's stable ``reason`` code attached.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.envelope import sign_transaction
from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    MedledgerError,
    NetworkError,
    NotFoundError,
    TooLargeError,
)

DEFAULT_TTL_S = 600


def new_transaction(
    key: ParticipantKey,
    *,
    network: str,
    tx_type: str,
    payload: Mapping[str, JSON],
    now_s: int,
    ttl_s: int = DEFAULT_TTL_S,
    nonce: str | None = None,
) -> SignedTransaction:
    """Build and sign a transaction from ``key``'s did:key with a fresh random nonce."""
    tx = Transaction(
        network=network,
        type=tx_type,
        payload=payload,
        sender=key.did,
        nonce=nonce or secrets.token_urlsafe(18),
        expires=now_s + ttl_s,
    )
    return sign_transaction(tx, key.sign)


class RemoteError(MedledgerError):
    """Mixin carrying what the node said: HTTP status, error code and parameter."""


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = str(error.get("message", response.reason_phrase))
    code = str(error.get("code", "error"))
    parameter = error.get("parameter")
    exc: MedledgerError
    if response.status_code == 413:
        exc = TooLargeError(message, parameter=parameter)
    elif response.status_code in (400, 422):
        exc = InvalidInputError(message, parameter=parameter)
    elif response.status_code == 404:
        exc = NotFoundError(message)
    elif response.status_code == 403:
        exc = AccessDeniedError(message)
    elif response.status_code == 409:
        exc = ConflictError(message)
    else:
        exc = NetworkError(f"the node answered {response.status_code}: {message}")
    exc.reason = code
    raise exc


class LedgerClient:
    """HTTP client for one node."""

    def __init__(self, base_url: str, *, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self._http.get(path, params=params or None)
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the node: {type(e).__name__}") from e
        _raise_for(response)
        return response

    # --- ledger --------------------------------------------------------------------------
    def submit(self, tx: SignedTransaction | bytes, *, wait: bool = True) -> dict[str, Any]:
        """Submit; with ``wait`` return once committed (height, log index, receipt)."""
        wire = tx.wire if isinstance(tx, SignedTransaction) else tx
        try:
            response = self._http.post(
                "/ledger/transactions",
                content=wire,
                params={"wait": "commit" if wait else "none"},
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the node: {type(e).__name__}") from e
        _raise_for(response)
        result: dict[str, Any] = response.json()
        return result

    def transaction(self, tx_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/ledger/transactions/{tx_id}").json()
        return result

    def block(self, height: int | None = None) -> dict[str, Any]:
        path = "/ledger/blocks/latest" if height is None else f"/ledger/blocks/{height}"
        result: dict[str, Any] = self._get(path).json()
        return result

    def participant(self, did: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/ledger/participants/{did}").json()
        return result

    def record(self, patient: str, record_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/ledger/records/{patient}/{record_id}").json()
        return result

    def escrow(self, escrow_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/ledger/escrows/{escrow_id}").json()
        return result

    def escrow_request(self, escrow_id: str, request_id: str) -> dict[str, Any]:
        path = f"/ledger/escrows/{escrow_id}/requests/{request_id}"
        result: dict[str, Any] = self._get(path).json()
        return result

    def network(self) -> str:
        return str(self._get("/healthz").json()["network"])

    def _post(self, path: str, content: bytes) -> dict[str, Any]:
        try:
            response = self._http.post(
                path, content=content, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the node: {type(e).__name__}") from e
        _raise_for(response)
        result: dict[str, Any] = response.json()
        return result

    # --- off-chain records ---------------------------------------------------------------
    def put_record(
        self, *, patient: str, record_id: str, resource_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The custodian's write: the node encrypts, stores and anchors a new version."""
        body = {
            "patient": patient,
            "record_id": record_id,
            "resource_type": resource_type,
            "content": dict(content),
        }
        return self._post("/records", json.dumps(body).encode())

    def key_release(self, request: SignedTransaction) -> dict[str, Any]:
        """Send a signed ``request.key_release``; the data key comes back wrapped."""
        return self._post("/records/key-release", request.wire)

    def read_record(self, request: SignedTransaction) -> dict[str, Any]:
        return self._post("/records/read", request.wire)

    def erase_record(self, request: SignedTransaction) -> dict[str, Any]:
        return self._post("/records/erase", request.wire)

    def blob(self, cid: str) -> bytes:
        return self._get(f"/blobs/{cid}").content

    # --- consent and audit ---------------------------------------------------------------
    def consents(self, patient: str) -> dict[str, Any]:
        """A patient's consents on the ledger (policy form), active and revoked."""
        result: dict[str, Any] = self._get(f"/consents/{patient}").json()
        return result

    def consent_fhir(self, patient: str, consent_id: str) -> dict[str, Any]:
        """One consent as a FHIR R4 Consent resource."""
        result: dict[str, Any] = self._get(f"/consents/{patient}/{consent_id}/fhir").json()
        return result

    def list_audit(self, request: SignedTransaction) -> dict[str, Any]:
        """Send a signed ``request.list_audit``: the patient's access events with receipts."""
        return self._post("/audit/events", request.wire)

    def review_queue(self, request: SignedTransaction) -> dict[str, Any]:
        """Send a signed ``request.review_queue``: break-glass events awaiting review."""
        return self._post("/audit/reviews", request.wire)

    def review_note(self, request: SignedTransaction) -> dict[str, Any]:
        """Send a signed ``request.review_note``: a review's note, kept off the ledger."""
        return self._post("/audit/review-notes", request.wire)

    # --- log -----------------------------------------------------------------------------
    def checkpoint(self) -> bytes:
        return self._get("/log/checkpoint").content

    def verifier_key(self) -> str:
        return self._get("/log/verifier-key").text.strip()

    def receipt(self, index: int) -> bytes:
        return self._get(f"/log/receipt/{index}").content
