"""Patients' consents over HTTP, read from the committed ledger state.

Grants, revocations and delegations are transactions (``POST /ledger/transactions``), signed by
the patient or a delegate; these routes only read: a patient's consents in the policy form
(``GET /consents/{patient}``), one of them as a FHIR R4 ``Consent``
(``GET /consents/{patient}/{consent_id}/fhir``, ``application/fhir+json``). The consent state
holds DIDs and codes only, like the rest of the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from medledger.core.consent.fhir import to_fhir
from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.contracts.consent import (
    CONSENT_ID,
    ConsentRecord,
    consent_key,
    read_consent,
)
from medledger.core.ledger.runtime import StateReader
from medledger.errors import InvalidInputError, NotFoundError

#: Consent records one listing returns (a patient holds at most 500 active ones).
MAX_LISTED = 1000
FHIR_JSON = "application/fhir+json"


class _Reader:
    def __init__(self, get: Callable[[str], bytes | None]) -> None:
        self.get = get


def _patient(value: str) -> str:
    if not is_did_key(value):
        raise InvalidInputError("patient must be an Ed25519 did:key", parameter="patient")
    return value


def _row(consent_id: str, record: ConsentRecord) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "status": record.status,
        "granted_by": record.granted_by,
        "granted_height": record.granted_height,
        "revoked_by": record.revoked_by,
        "revoked_height": record.revoked_height,
        "consent": None if record.consent is None else record.consent.to_json(),
    }


def router(
    *,
    state_get: Callable[[str], bytes | None],
    state_scan: Callable[[str, str, int], list[tuple[str, bytes]]],
    authorize: Callable[[Request], None],
) -> APIRouter:
    r = APIRouter(tags=["consent"], dependencies=[Depends(authorize)])
    state: StateReader = _Reader(state_get)

    def _listing(patient: str) -> dict[str, Any]:
        prefix = consent_key(patient, "")
        rows = [
            _row(key[len(prefix) :], ConsentRecord.from_state(raw))
            for key, raw in state_scan(prefix, "", MAX_LISTED)
        ]
        delegates = [
            {"delegate": key.rsplit("/", 1)[1], **json.loads(raw)}
            for key, raw in state_scan(f"consent/delegate/{patient}/", "", 100)
        ]
        return {"patient": patient, "consents": rows, "delegates": delegates}

    @r.get("/consents/{patient}", summary="A patient's consents (active and revoked)")
    async def consents(patient: str) -> dict[str, Any]:
        return await run_in_threadpool(_listing, _patient(patient))

    @r.get(
        "/consents/{patient}/{consent_id}/fhir",
        summary="One consent as a FHIR R4 Consent",
        response_class=JSONResponse,
    )
    async def consent_fhir(patient: str, consent_id: str) -> JSONResponse:
        if not CONSENT_ID.fullmatch(consent_id):
            raise InvalidInputError("consent_id is malformed", parameter="consent_id")
        record = await run_in_threadpool(read_consent, state, _patient(patient), consent_id)
        if record is None or record.consent is None:
            raise NotFoundError("no such consent")
        resource = to_fhir(record.consent)
        if record.status == "revoked":
            resource["status"] = "inactive"
        return JSONResponse(resource, media_type=FHIR_JSON)

    return r
