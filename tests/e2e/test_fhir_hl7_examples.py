"""HL7 FHIR R4 examples (tests/vectors/hl7-r4-examples) in through the API and back, equal
(``meta`` aside); and transaction Bundles: ``urn:uuid`` references resolved, all or nothing."""

from __future__ import annotations

import base64
import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.client import new_transaction
from medledger.core.consent.fhir import from_fhir

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


# --- the HL7 Consent examples (tests/vectors/hl7-r4-consent) --------------------------------
CONSENTS = Path(__file__).parent.parent / "vectors" / "hl7-r4-consent"
CONSENT_NAMES = sorted(
    p.stem.removeprefix("Consent-consent-example-") for p in CONSENTS.glob("Consent-*.json")
)
SIGNED = "X-Medledger-Signed-Transaction"
#: Who each example's references stand for on the test network (as in the unit tests,
#: tests/unit/consent/test_hl7_examples.py): demo users with registered did:keys.
STAND_INS = {
    "Organization/f001": "hospital",
    "Practitioner/f204": "nurse-joy",
    "Practitioner/13": "dr-house",
    "Practitioner/xcda-author": "dr-clinic",
    "RelatedPerson/peter": "patient-2",
}


def hl7_consent(name: str) -> dict[str, Any]:
    return dict(json.loads((CONSENTS / f"Consent-consent-example-{name}.json").read_text()))


def with_stand_ins(node: FhirNode, name: str, patient_ref: str) -> dict[str, Any]:
    """The example with its references substituted (the only change): the patient's become
    ``Patient/{id}`` of this server; any other party's a did:key identifier reference, its
    ``display`` kept. In ``grantor`` ``Patient/example`` is the person given access, so it is
    another party (patient-2) there."""
    stand_ins = {k: node.keys[v].did for k, v in STAND_INS.items()}
    if name == "grantor":
        stand_ins["Patient/example"] = node.keys["patient-2"].did

    def swap(value: object, key: str = "") -> object:
        if isinstance(value, list):
            return [swap(item, key) for item in value]
        if not isinstance(value, dict):
            return value
        out = {k: swap(v, k) for k, v in value.items()}
        literal = value.get("reference")
        if key == "data" or not isinstance(literal, str):  # provision.data: record references
            return out
        if literal in stand_ins:
            del out["reference"]
            out["identifier"] = {"system": DID_SYSTEM, "value": stand_ins[literal]}
        elif literal.startswith("Patient/"):
            out["reference"] = patient_ref
        return out

    swapped = swap(hl7_consent(name))
    assert isinstance(swapped, dict)
    return swapped


def grant_header(node: FhirNode, who: str, consent: Any) -> str:
    stx = new_transaction(node.keys[who], network=node.node.genesis.network,
                          tx_type="consent.grant", payload={"consent": consent.to_json()},
                          now_s=int(time.time()))  # fmt: skip
    return base64.urlsafe_b64encode(stx.wire).decode().rstrip("=")


@pytest.fixture(scope="module")
def patient_1(fhir_node: FhirNode) -> str:
    with fhir_node.as_("dr-house") as house:
        response = house.post("/Patient", json=hl7_patient(fhir_node.keys["patient-1"].did))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.mark.parametrize("name", CONSENT_NAMES)
def test_hl7_consent_examples_round_trip_through_the_api(
    fhir_node: FhirNode, patient_1: str, name: str
) -> None:
    did = fhir_node.keys["patient-1"].did
    sent = with_stand_ins(fhir_node, name, f"Patient/{patient_1}")
    consent = from_fhir(sent, {f"Patient/{patient_1}": did}.get)  # what the patient signs
    narrative = sent["text"]["div"]
    me = fhir_node.as_("patient-1", "patient/Consent.cruds", patient=did)
    with me:
        created = me.post("/Consent", json=sent, headers={SIGNED: grant_header(
            fhir_node, "patient-1", consent)})  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json()["id"] == consent.consent_id
        back = me.get(f"/Consent/{consent.consent_id}")
        assert back.status_code == 200, back.text
        assert without_meta(back.json()) == without_meta(sent)
        assert back.json()["id"] == sent["id"]
        listed = me.get("/Consent").json()
        [found] = [e["resource"] for e in listed["entry"] if e["resource"]["id"] == sent["id"]]
        assert without_meta(found) == without_meta(sent)
    # reads are gated as before: another organization's doctor is denied
    with fhir_node.as_("dr-clinic") as clinic:
        denied = clinic.get(f"/Consent/{consent.consent_id}")
        assert denied.status_code == 403
        assert narrative not in denied.text
    # the narrative (PHI) never reaches the ledger: not in the consent, not in the anchor
    with httpx.Client(base_url=fhir_node.url, timeout=30) as http:
        on_ledger = http.get(f"/consents/{did}").text
        anchor = http.get(f"/ledger/records/{did}/{consent.consent_id}").text
    assert consent.consent_id in on_ledger and consent.consent_id in anchor
    for phi in (narrative, "van de Heuvel", "Good Health Clinic", "lawyer speak"):
        assert phi not in on_ledger and phi not in anchor


def test_a_revoked_hl7_consent_reads_inactive_and_otherwise_equal(
    fhir_node: FhirNode, patient_1: str
) -> None:
    did = fhir_node.keys["patient-1"].did
    sent = with_stand_ins(fhir_node, "notThem", f"Patient/{patient_1}")
    sent["id"] = "notthem-revoked"
    consent = from_fhir(sent, {f"Patient/{patient_1}": did}.get)
    with fhir_node.as_("patient-1", "patient/Consent.cruds", patient=did) as me:
        header = grant_header(fhir_node, "patient-1", consent)
        assert me.post("/Consent", json=sent, headers={SIGNED: header}).status_code == 201
        # the same id again, another narrative: the ledger refuses, nothing is overwritten
        rewritten = {**sent, "text": {"status": "generated", "div": "<div>other</div>"}}
        second = grant_header(fhir_node, "patient-1", consent)
        again = me.post("/Consent", json=rewritten, headers={SIGNED: second})
        assert again.status_code == 409, again.text
        kept = me.get("/Consent/notthem-revoked").json()
        assert without_meta(kept) == without_meta(sent) and kept["meta"]["versionId"] == "1"
        stx = new_transaction(fhir_node.keys["patient-1"], network=fhir_node.node.genesis.network,
                              tx_type="consent.revoke",
                              payload={"patient": did, "consent_id": "notthem-revoked"},
                              now_s=int(time.time()))  # fmt: skip
        revoke = base64.urlsafe_b64encode(stx.wire).decode().rstrip("=")
        assert me.delete("/Consent/notthem-revoked", headers={SIGNED: revoke}).status_code == 204
        back = me.get("/Consent/notthem-revoked").json()
        assert back["status"] == "inactive"
        assert without_meta(back) == without_meta({**sent, "status": "inactive"})
        assert back["meta"]["versionId"] == "2"
    # each version has its Provenance: the patient's grant, then their revocation
    with fhir_node.as_("patient-1", "patient/*.rs", patient=did) as reader:
        provenances = reader.get("/Provenance", params={"target": "Consent/notthem-revoked"})
        assert provenances.status_code == 200, provenances.text
        entities = sorted(
            (e["resource"]["id"], e["resource"]["entity"][0]["what"]["identifier"]["value"])
            for e in provenances.json()["entry"]
        )
        assert [i for i, _ in entities] == ["notthem-revoked-1", "notthem-revoked-2"]
        assert entities[1][1].endswith(stx.tx_id.hex())
        assert reader.get("/Provenance/notthem-revoked-2").status_code == 200
