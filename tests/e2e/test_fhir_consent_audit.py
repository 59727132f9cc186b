"""Consent and AuditEvent through the FHIR API: a consent is the patient's own signed ledger
transaction (the node only checks and submits it); AuditEvent is the access-event log, read-only,
for the patient (or their delegate, or a privacy officer)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from fhir.resources.R4B.auditevent import AuditEvent

from medledger.client import new_transaction
from medledger.core.consent.fhir import to_fhir
from medledger.core.consent.simple import permit_to

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
