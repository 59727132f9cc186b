"""HL7 FHIR R4 examples (tests/vectors/hl7-r4-examples) in through the API and back, equal
(``meta`` aside); and transaction Bundles: ``urn:uuid`` references resolved, all or nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import FhirNode

VECTORS = Path(__file__).parent.parent / "vectors" / "hl7-r4-examples"
DID_SYSTEM = "urn:ietf:rfc:3986"


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((VECTORS / f"{name}.json").read_text()))


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "id")}


def hl7_patient(did: str) -> dict[str, Any]:
    patient = example("Patient-example")
    patient["identifier"] = [*patient["identifier"], {"system": DID_SYSTEM, "value": did}]
    return patient


def about(resource: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    resource = copy.deepcopy(resource)
    resource["subject"] = {**resource["subject"], "reference": patient_ref}
    return resource


@pytest.fixture(scope="module")
def patient_3(fhir_node: FhirNode) -> str:
    """Patient 3's HL7 Patient, created by Dr House (patient 3 reads their own data)."""
    with fhir_node.as_("dr-house") as house:
        response = house.post("/Patient", json=hl7_patient(fhir_node.keys["patient-3"].did))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def test_hl7_examples_round_trip_through_the_api(fhir_node: FhirNode, patient_3: str) -> None:
    did = fhir_node.keys["patient-3"].did
    sent = {
        "Patient": hl7_patient(did),
        "Observation": about(example("Observation-example"), f"Patient/{patient_3}"),
        "Condition": about(example("Condition-example"), f"Patient/{patient_3}"),
    }
    ids = {"Patient": patient_3}
    with fhir_node.as_("dr-house") as house:
        for kind in ("Observation", "Condition"):
            response = house.post(f"/{kind}", json=sent[kind])
            assert response.status_code == 201, response.text
            ids[kind] = response.json()["id"]
    with fhir_node.as_("patient-3", "patient/*.rs", patient=did) as me:
        for kind, body in sent.items():
            back = me.get(f"/{kind}/{ids[kind]}")
            assert back.status_code == 200, back.text
            assert without_meta(back.json()) == without_meta(body), kind


def test_transaction_bundle_resolves_urn_uuid_references(fhir_node: FhirNode) -> None:
    did = fhir_node.keys["patient-4"].did
    patient_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
             "resource": about(example("Observation-example"), patient_url),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": patient_url, "resource": hl7_patient(did),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": about(example("Condition-example"), patient_url),
             "request": {"method": "POST", "url": "Condition"}},
        ],
    }  # fmt: skip
    with fhir_node.as_("dr-house") as house:
        response = house.post("", json=bundle)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in answer["entry"]]
        assert statuses == ["201 Created"] * 3
        patient_id = answer["entry"][1]["resource"]["id"]
        observation = answer["entry"][0]["resource"]
        assert observation["subject"]["reference"] == f"Patient/{patient_id}"
    with fhir_node.as_("patient-4", "patient/*.rs", patient=did) as me:
        back = me.get(f"/Observation/{observation['id']}").json()
        assert back["subject"]["reference"] == f"Patient/{patient_id}"
        assert me.get("/Condition", params={"patient": patient_id}).json()["total"] == 1


def test_failed_transaction_writes_nothing(fhir_node: FhirNode) -> None:
    did = fhir_node.keys["patient-5"].did
    patient_url = "urn:uuid:0d3ab8a0-84d5-4c2e-9a4f-0d1c5e0b7a11"
    broken = about(example("Condition-example"), patient_url)
    broken["onsetDateTime"] = "not-a-date"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": patient_url, "resource": hl7_patient(did),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": about(example("Observation-example"), patient_url),
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": broken, "request": {"method": "POST", "url": "Condition"}},
        ],
    }  # fmt: skip
    with fhir_node.as_("dr-house") as house:
        response = house.post("", json=bundle)
        assert response.status_code == 400, response.text
        issue = response.json()["issue"][0]
        assert issue["expression"][0].startswith("Bundle.entry[2]")
        assert "onsetDateTime" in issue["expression"][0]
        nowhere = "urn:uuid:00000000-0000-0000-0000-000000000000"
        dangling = dict(bundle, entry=[*bundle["entry"][:2], {
            "resource": about(example("Condition-example"), nowhere),
            "request": {"method": "POST", "url": "Condition"}}])  # fmt: skip
        assert house.post("", json=dangling).status_code == 400
    with fhir_node.as_("patient-5", "patient/*.rs", patient=did) as me:
        for kind in ("Patient", "Observation", "Condition"):
            assert me.get(f"/{kind}").json()["total"] == 0, kind


def test_batch_reports_each_entry(fhir_node: FhirNode, patient_3: str) -> None:
    good = about(example("Observation-example"), f"Patient/{patient_3}")
    bad = dict(good, status="not-a-status")
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    with fhir_node.as_("dr-house") as house:
        answer = house.post("", json=bundle).json()
        assert answer["type"] == "batch-response"
        assert answer["entry"][0]["response"]["status"] == "201 Created"
        assert answer["entry"][1]["response"]["status"] == "400"
        assert answer["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
