"""Consent and AuditEvent through the FHIR API: a consent is the patient's own signed ledger
transaction (the node only checks and submits it); AuditEvent is the access-event log, read-only,
for the patient (or their delegate, or a privacy officer)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from medledger.client import new_transaction
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.consent.fhir import to_fhir
from medledger.core.consent.simple import permit_to
from medledger.core.note import parse_verifier_key
from medledger.errors import MedledgerError

from .conftest import FhirNode

SIGNED = "X-Medledger-Signed-Transaction"


def signed(node: FhirNode, who: str, tx_type: str, payload: dict[str, Any]) -> str:
    stx = new_transaction(node.keys[who], network=node.node.genesis.network, tx_type=tx_type,
                          payload=payload, now_s=int(time.time()))  # fmt: skip
    return base64.urlsafe_b64encode(stx.wire).decode().rstrip("=")


def test_consent_is_granted_read_and_revoked_by_the_patient(fhir_node: FhirNode) -> None:
    patient = fhir_node.keys["patient-5"].did
    nurse = fhir_node.keys["nurse-joy"].did
    consent = permit_to("c-fhir-nurse", patient, nurse, classes=("Observation",))
    resource = to_fhir(consent)
    grant = signed(fhir_node, "patient-5", "consent.grant", {"consent": consent.to_json()})
    me = fhir_node.as_("patient-5", "patient/Consent.cruds patient/AuditEvent.rs",
                       patient=patient)  # fmt: skip
    with me:
        # a practitioner cannot pass off the patient's signed grant as theirs
        with fhir_node.as_("dr-house") as house:
            stolen = house.post("/Consent", json=resource, headers={SIGNED: grant})
            assert stolen.status_code == 403
        # the signed consent must be the resource
        other = to_fhir(permit_to("c-fhir-nurse", patient, nurse))
        assert me.post("/Consent", json=other, headers={SIGNED: grant}).status_code == 400
        assert me.post("/Consent", json=resource).status_code == 400  # unsigned
        created = me.post("/Consent", json=resource, headers={SIGNED: grant})
        assert created.status_code == 201, created.text
        assert created.json()["id"] == "c-fhir-nurse"
        back = me.get("/Consent/c-fhir-nurse")
        assert back.status_code == 200 and back.json()["status"] == "active"
        listed = me.get("/Consent").json()
        assert "c-fhir-nurse" in {e["resource"]["id"] for e in listed["entry"]}
        with fhir_node.as_("dr-clinic") as clinic:
            assert clinic.get("/Consent/c-fhir-nurse").status_code == 403
        revoke = signed(fhir_node, "patient-5", "consent.revoke",
                        {"patient": patient, "consent_id": "c-fhir-nurse"})  # fmt: skip
        assert me.delete("/Consent/c-fhir-nurse", headers={SIGNED: revoke}).status_code == 204
        assert me.get("/Consent/c-fhir-nurse").json()["status"] == "inactive"


def test_audit_events_are_read_only_and_only_for_the_patient(fhir_node: FhirNode) -> None:
    patient = fhir_node.keys["patient-1"].did
    with fhir_node.as_("dr-clinic") as clinic:  # leaves a denied access event
        clinic.get("/Observation")
        assert clinic.get("/AuditEvent", params={"patient": "x"}).status_code in (403, 404)
    with fhir_node.as_("patient-1", "patient/AuditEvent.rs", patient=patient) as me:
        response = me.get("/AuditEvent", params={"_count": "50"})
        assert response.status_code == 200, response.text
        events = [e["resource"] for e in response.json()["entry"]]
        assert events
        for event in events:
            AuditEvent.model_validate(event)
        assert me.post("/AuditEvent", json=events[0]).status_code == 405
    with fhir_node.as_("patient-2", "patient/AuditEvent.rs",
                       patient=fhir_node.keys["patient-2"].did) as other:  # fmt: skip
        assert isinstance(other, httpx.Client)


def listed_denials(
    node: FhirNode, http: httpx.Client, who: str, actor: str, record_id: str
) -> list[dict[str, Any]]:
    """The patient's signed ``request.list_audit``: the actor's denials of ``record_id``."""
    request = new_transaction(
        node.keys[who], network=node.node.genesis.network, tx_type="request.list_audit",
        payload={"patient": node.keys[who].did, "purpose": "PATADMIN", "actor": actor,
                 "decision": "deny", "wait_ms": 2000},
        now_s=int(time.time()), ttl_s=60,
    )  # fmt: skip
    answer = http.post("/audit/events", content=request.wire,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["events"] if r["event"]["record_id"] == record_id]
    assert len(rows) == 1, answer.text
    return rows


def test_a_denied_fhir_read_is_in_the_patients_audit_with_a_receipt_that_verifies(
    fhir_node: FhirNode,
) -> None:
    """Issue 6, done when: a denied read shows up in the patient's audit (FHIR AuditEvent and
    the signed ``/audit/events`` listing) with a receipt that verifies offline, log key only."""
    patient = fhir_node.keys["patient-2"].did
    clinic = fhir_node.keys["dr-clinic"].did
    with fhir_node.as_("dr-house") as house:
        made = house.post("/Patient", json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": patient}]})  # fmt: skip
        assert made.status_code == 201, made.text
        observation = house.post("/Observation", json={
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{made.json()['id']}"}})  # fmt: skip
        assert observation.status_code == 201, observation.text
    record_id = observation.json()["id"]
    # 1. the read is denied: 403 with an OperationOutcome, nothing of the record in it
    with fhir_node.as_("dr-clinic") as other:
        denied = other.get(f"/Observation/{record_id}")
    assert denied.status_code == 403
    outcome = denied.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"
    assert "8867-4" not in denied.text
    # 2. the patient sees it as a FHIR AuditEvent: the clinic's doctor, denied (no consent)
    with fhir_node.as_("patient-2", "patient/AuditEvent.rs", patient=patient) as me:
        listed = me.get("/AuditEvent", params={"_count": "100"})
    assert listed.status_code == 200, listed.text
    denials = [
        e["resource"]
        for e in listed.json()["entry"]
        if e["resource"]["outcome"] == "8"
        and any(a["who"]["identifier"]["value"] == clinic for a in e["resource"]["agent"])
    ]
    assert len(denials) == 1, listed.text
    AuditEvent.model_validate(denials[0])
    assert denials[0]["outcomeDesc"] == "no-consent"
    assert "8867-4" not in listed.text  # codes (PHI) never reach the audit trail
    # 3. ... and in the signed /audit/events listing, with a receipt that verifies offline
    with httpx.Client(base_url=fhir_node.url, timeout=30) as http:
        log_key = http.get("/log/verifier-key").text.strip()
        rows = listed_denials(fhir_node, http, "patient-2", clinic, record_id)
        for _ in range(5):  # the server waits up to 2 s a listing for pending receipts
            if rows[0]["receipt"] is not None:
                break
            rows = listed_denials(fhir_node, http, "patient-2", clinic, record_id)
    assert rows[0]["receipt"] is not None
    verified = verify_event_receipt(rows[0]["receipt"].encode(), parse_verifier_key(log_key))
    assert (verified.actor, verified.patient, verified.record_id, verified.decision) == (
        clinic,
        patient,
        record_id,
        "deny",
    )
    assert verified.action == "read" and verified.resource_type == "Observation"
    # a receipt whose event names another record does not verify
    tampered = rows[0]["receipt"].replace(
        record_id, record_id[:-1] + ("1" if record_id[-1] != "1" else "2")
    )
    assert tampered != rows[0]["receipt"]
    with pytest.raises(MedledgerError):
        verify_event_receipt(tampered.encode(), parse_verifier_key(log_key))
