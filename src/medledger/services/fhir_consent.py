"""Consent and AuditEvent through the FHIR API (issue 6, ADR 0018): neither is a stored record.

Consent (FHIR R4 Consent; the policy form of ADR 0013):
- grant (``POST /Consent``) and revoke (``DELETE /Consent/{id}``, or ``PUT`` with status
  ``inactive``) are the patient's (or delegate's) own signed transactions: the client sends the
  signed ``consent.grant`` / ``consent.revoke`` envelope with the request; the node checks
  1. the token's scope allows the interaction on Consent;
  2. the envelope's sender is the principal and its type is the one the interaction needs;
  3. its payload says exactly what the resource says (``from_fhir(resource) ==`` the payload's
     consent; for a revoke, the same patient and id);
  then submits it unchanged (the ledger verifies the signature and the patient-or-delegate
  rule) and waits for its block. The node never signs a consent for anyone.
  4. once the grant committed, the resource as submitted (narrative, extensions and all: it
  may hold PHI) is kept as the consent's *document*: an encrypted record version under the
  consent's id, anchored by this node like any record (``RecordService.put``); only its
  salted commitment and CID reach the ledger (ADR 0021).
- read (``GET /Consent/{id}``, ``GET /Consent?patient=``): the access gate's
  ``consent-export`` decision (an access event), then the document, decrypted and checked
  against its anchor, with ``status`` from the ledger (a revoked consent reads ``inactive``;
  a revocation through FHIR also writes the document's next version, ``inactive``);
  a consent with no document (granted outside FHIR, or its document not stored) reads in its
  policy form (``to_fhir``).
AuditEvent: ``GET /AuditEvent?patient=``, read-only, the patient's access events as BALP
AuditEvents (``to_audit_events``), for whom the gate's ``list-audit`` permits: the patient,
their delegate, a privacy officer of this node's organization.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from medledger.core.access.gate import AccessRequest, RecordFacts
from medledger.core.audit.fhir import to_audit_events
from medledger.core.auth.principal import Principal
from medledger.core.consent.fhir import from_fhir, to_fhir
from medledger.core.consent.model import parse_consent
from medledger.core.fhir.provenance import instant
from medledger.core.fhir.resource import check_id, with_meta, without_server_meta
from medledger.core.fhir.rows import Head, VersionAnchor
from medledger.core.fhir.search import DEFAULT_COUNT, MAX_COUNT, SearchQuery
from medledger.core.ledger.canonical import canonical_document
from medledger.core.ledger.contracts.consent import ConsentRecord, read_consent
from medledger.core.ledger.contracts.records import head_key
from medledger.core.ledger.envelope import TxLimits, decode_transaction
from medledger.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    MedledgerError,
    NotFoundError,
)
from medledger.services.access import AccessService, AuditSink, StateSource
from medledger.services.fhir import FhirIndex
from medledger.services.ledger import TxStatus
from medledger.services.records import Authorised, PutResult, ReadResult

log = logging.getLogger("medledger.fhir")

COMMIT_WAIT_S = 30.0


class LedgerPort(StateSource, Protocol):
    def submit(self, raw: bytes, now_s: int) -> TxStatus: ...
    def wait(self, tx_id: bytes, timeout_s: float) -> TxStatus: ...


class ConsentDocuments(Protocol):
    """Where a consent's submitted resource is kept: the encrypted records (``RecordService``)."""

    def put(
        self, *, patient: str, record_id: str, resource_type: str, content: bytes, now_s: int
    ) -> PutResult: ...
    def authorise_many(
        self, requests: list[tuple[AccessRequest, int | None]], now_ms: int
    ) -> list[Authorised | None]: ...
    def open(self, authorised: Authorised) -> ReadResult: ...


class FhirConsentService:
    def __init__(
        self,
        *,
        ledger: LedgerPort,
        documents: ConsentDocuments,
        access: AccessService,
        audit: AuditSink,
        index: FhirIndex,
        node_did: str,
        node_name: str,
    ) -> None:
        self._ledger = ledger
        self._documents = documents
        self._access = access
        self._audit = audit
        self._index = index
        self._node = node_did
        self._node_name = node_name

    # --- helpers ----------------------------------------------------------------------------
    def _resolve(self, reference: str) -> str | None:
        """``Patient/{id}`` on this server -> the patient's did:key."""
        kind, _, record_id = reference.partition("/")
        head = self._index.head(kind, record_id) if kind == "Patient" else None
        return None if head is None or head.deleted else head.patient

    def _signed(self, principal: Principal, wire: bytes, tx_type: str) -> Any:
        stx = decode_transaction(wire, TxLimits())
        if stx.tx.type != tx_type or stx.tx.sender != principal.did:
            raise AccessDeniedError(
                f"the signed transaction must be a {tx_type} sent by the principal"
            )
        return stx

    def _submit(self, wire: bytes, tx_id: bytes, now_ms: int) -> TxStatus:
        self._ledger.submit(wire, now_ms // 1000)
        status = self._ledger.wait(tx_id, COMMIT_WAIT_S)
        if status.status != "committed":
            raise ConflictError("the consent transaction is not committed yet")
        if not status.ok:
            raise ConflictError(f"the ledger refused the consent: {status.reason}")
        return status

    def _scope(self, principal: Principal, interaction: Any) -> None:
        if principal.scopes.allows("Consent", interaction) is None:
            raise AccessDeniedError(f"the token's scopes do not allow {interaction!r} on Consent")

    def _patient_did(self, principal: Principal, patient: str | None) -> str:
        """``patient`` search value (``Patient/{id}``, an id, or absent: the token's patient)."""
        if patient is None:
            if principal.patient is None:
                raise InvalidInputError("patient: required", parameter="patient")
            return principal.patient
        did = self._resolve(patient if "/" in patient else f"Patient/{patient}")
        if did is None:
            raise NotFoundError("no such Patient")
        return did

    def _record(self, principal: Principal, consent_id: str, patient: str, *,
                status: TxStatus, tx_id: bytes, activity: Any, now_ms: int) -> int:  # fmt: skip
        head = self._index.head("Consent", consent_id)
        version = 1 if head is None else head.version + 1
        self._index.record(
            Head("Consent", consent_id, patient, version, now_ms, False),
            VersionAnchor("Consent", consent_id, version, now_ms, activity, principal.did,
                          tx_id.hex(), int(status.height or 0), int(status.log_index or 0)),
            [],
        )  # fmt: skip
        return version

    # --- consent ----------------------------------------------------------------------------
    def grant(self, principal: Principal, body: object, wire: bytes, now_ms: int) -> dict[str, Any]:
        self._scope(principal, "c")
        if not isinstance(body, dict) or body.get("resourceType") != "Consent":
            raise InvalidInputError("resourceType: must be Consent", parameter="resourceType")
        consent = from_fhir(body, self._resolve)
        check_id(consent.consent_id)
        stx = self._signed(principal, wire, "consent.grant")
        payload = stx.tx.payload
        signed = payload.get("consent")
        if not isinstance(signed, Mapping) or parse_consent(signed) != consent:
            raise InvalidInputError(
                "X-Medledger-Signed-Transaction: the signed consent is not this resource",
                parameter="X-Medledger-Signed-Transaction",
            )
        status = self._submit(stx.wire, stx.tx_id, now_ms)
        version = self._record(principal, consent.consent_id, consent.patient, status=status,
                               tx_id=stx.tx_id, activity="create", now_ms=now_ms)  # fmt: skip
        document = {**without_server_meta(body), "id": consent.consent_id}
        try:
            self._documents.put(patient=consent.patient, record_id=consent.consent_id,
                                resource_type="Consent", content=canonical_document(document),
                                now_s=now_ms // 1000)  # fmt: skip
        except MedledgerError as e:
            # The consent is in force (the patient's transaction committed) and reads in its
            # policy form; only the document is missing: say so, never pretend it is kept.
            log.error("consent document not stored: %s", type(e).__name__)
            raise
        return with_meta(document, version, instant(now_ms))

    def revoke(self, principal: Principal, consent_id: str, wire: bytes, now_ms: int) -> None:
        self._scope(principal, "d")
        check_id(consent_id)
        head = self._index.head("Consent", consent_id)
        if head is None:
            raise NotFoundError("no such Consent")
        stx = self._signed(principal, wire, "consent.revoke")
        payload = stx.tx.payload
        if (payload.get("patient"), payload.get("consent_id")) != (head.patient, consent_id):
            raise InvalidInputError(
                "X-Medledger-Signed-Transaction: the signed revocation is not of this consent",
                parameter="X-Medledger-Signed-Transaction",
            )
        status = self._submit(stx.wire, stx.tx_id, now_ms)
        self._record(principal, consent_id, head.patient, status=status, tx_id=stx.tx_id,
                     activity="update", now_ms=now_ms)  # fmt: skip
        if self._has_document(head):
            self._document_revoked(head, now_ms)

    def _document_revoked(self, head: Head, now_ms: int) -> None:
        """The document's next version says ``inactive`` (its versions follow the consent's,
        so each version's Provenance has its document). Read back by this node, the
        custodian, as a system (an access event like any read)."""
        request = AccessRequest(self._node, head.patient, head.record_id, "read", "HOPERAT")
        (authorised,) = self._documents.authorise_many([(request, None)], now_ms)
        if authorised is None:
            raise ConflictError("the consent's document could not be read back")
        document = json.loads(self._documents.open(authorised).content)
        document["status"] = "inactive"
        self._documents.put(patient=head.patient, record_id=head.record_id,
                            resource_type="Consent", content=canonical_document(document),
                            now_s=now_ms // 1000)  # fmt: skip

    def _export(self, principal: Principal, patient: str, now_ms: int) -> None:
        request = AccessRequest(principal.did, patient, None, "consent-export",
                                principal.purpose, principal.justification)  # fmt: skip
        self._access.require(request, RecordFacts(custodian=self._node,
                                                  resource_type="Consent"), now_ms)  # fmt: skip

    def _consent(self, head: Head) -> ConsentRecord | None:
        record = read_consent(self._ledger.state_reader(), head.patient, head.record_id)
        return None if record is None or record.consent is None else record

    def _has_document(self, head: Head) -> bool:
        return self._ledger.state_reader().get(head_key(head.patient, head.record_id)) is not None

    def _served(
        self, head: Head, record: ConsentRecord, document: Authorised | None
    ) -> dict[str, Any]:
        """The document as submitted (else the policy form), ``status`` from the ledger."""
        if document is not None:
            resource = json.loads(self._documents.open(document).content)
        elif record.consent is not None:
            resource = to_fhir(record.consent)
        else:  # pragma: no cover - ``_consent`` returns none without a consent
            raise NotFoundError("no such Consent")
        if record.status == "revoked":
            resource["status"] = "inactive"
        return with_meta(resource, head.version, instant(head.time_ms))

    def _export_request(self, principal: Principal, head: Head) -> AccessRequest:
        return AccessRequest(principal.did, head.patient, head.record_id, "consent-export",
                             principal.purpose, principal.justification)  # fmt: skip

    def read(self, principal: Principal, consent_id: str, now_ms: int) -> dict[str, Any]:
        self._scope(principal, "r")
        check_id(consent_id)
        head = self._index.head("Consent", consent_id)
        record = None if head is None else self._consent(head)
        if head is None or record is None:
            raise NotFoundError("no such Consent")
        if not self._has_document(head):
            self._export(principal, head.patient, now_ms)
            return self._served(head, record, None)
        request = self._export_request(principal, head)
        (document,) = self._documents.authorise_many([(request, None)], now_ms)
        if document is None:
            raise AccessDeniedError("access denied")
        return self._served(head, record, document)

    def search(
        self, principal: Principal, patient: str | None, now_ms: int
    ) -> list[dict[str, Any]]:
        """The patient's consents, if the gate lets the principal export them (one decision);
        each document is then decided on its own (an access event each): a denied one is
        absent."""
        self._scope(principal, "s")
        did = self._patient_did(principal, patient)
        self._export(principal, did, now_ms)
        heads = self._index.search(SearchQuery("Consent"), patient=did, limit=MAX_COUNT * 10)
        found = [(h, r) for h in heads if (r := self._consent(h)) is not None]
        stored = [(h, r) for h, r in found if self._has_document(h)]
        decided = self._documents.authorise_many(
            [(self._export_request(principal, h), None) for h, _ in stored], now_ms
        ) if stored else []  # fmt: skip
        permitted = {h.record_id: d for (h, _), d in zip(stored, decided, strict=True)}
        out = []
        for head, record in found:
            if head.record_id not in permitted:
                out.append(self._served(head, record, None))
            elif (document := permitted[head.record_id]) is not None:
                out.append(self._served(head, record, document))
        return out

    # --- audit events -----------------------------------------------------------------------
    def audit_events(
        self, principal: Principal, patient: str | None, count: int | None, now_ms: int
    ) -> list[dict[str, Any]]:
        if principal.scopes.allows("AuditEvent", "s") is None:
            raise AccessDeniedError("the token's scopes do not allow 's' on AuditEvent")
        did = self._patient_did(principal, patient)
        request = AccessRequest(principal.did, did, None, "list-audit", principal.purpose)
        self._access.require(request, RecordFacts(custodian=self._node), now_ms)
        limit = min(count or DEFAULT_COUNT, MAX_COUNT)
        events: Sequence[Any] = self._audit.list_events(did, limit=limit)
        out: list[dict[str, Any]] = []
        for event in events:
            out += to_audit_events(event, node_name=self._node_name, include_justification=True)
        return out
