"""The FHIR R4 API (issue 6) over real HTTP against a node with real SQLite: CRUD, history,
Provenance with the ledger anchor, validation, scopes and consent, and search that leaks
nothing about resources the caller may not see."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.provenance import Provenance

from medledger.core.consent.simple import permit_to

from .conftest import FhirNode, submit_and_wait

FHIR_JSON = "application/fhir+json"
DID_SYSTEM = "urn:ietf:rfc:3986"


def patient_body(did: str, family: str, given: str, birth: str, gender: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": DID_SYSTEM, "value": did}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": gender,
    }


def observation(patient_id: str, code: str, when: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "beats/min"},
    }


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/{body['resourceType']}", json=body,
                           headers={"Content-Type": FHIR_JSON})  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


def outcome(response: httpx.Response) -> OperationOutcome:
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return OperationOutcome.model_validate(response.json())


@pytest.fixture(scope="module")
def world(fhir_node: FhirNode) -> dict[str, Any]:
    """Patient 1 consents to the hospital (so its practitioners read); patient 2 to nobody.
    Dr House (the hospital) writes both patients' records."""
    node, keys = fhir_node, fhir_node.keys
    consent = permit_to("c-hospital", keys["patient-1"].did, keys["hospital"].did)
    submit_and_wait(node.node, keys["patient-1"], "consent.grant", {"consent": consent.to_json()})
    with node.as_("dr-house") as house:
        p1 = create(house, patient_body(keys["patient-1"].did, "Chalmers", "Peter", "1974-12-25",
                                        "male"))  # fmt: skip
        p2 = create(house, patient_body(keys["patient-2"].did, "Secret", "Sam", "1980-02-02",
                                        "female"))  # fmt: skip
        obs1 = [create(house, observation(p1["id"], "8867-4", f"2026-01-{d:02d}", 60 + d))
                for d in range(1, 8)]  # fmt: skip
        obs2 = [create(house, observation(p2["id"], "8867-4", f"2026-01-{d:02d}", 90 + d))
                for d in range(1, 6)]  # fmt: skip
    return {"p1": p1, "p2": p2, "obs1": obs1, "obs2": obs2}


def test_metadata_is_a_truthful_capability_statement(fhir_node: FhirNode) -> None:
    response = httpx.get(fhir_node.url + "fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    types = {r.type for r in statement.rest[0].resource}
    assert {"Patient", "Observation", "Condition", "Provenance"} <= types
    patient = next(r for r in statement.rest[0].resource if r.type == "Patient")
    assert {"identifier", "name", "family", "given", "birthdate", "gender"} <= {
        p.name for p in patient.searchParam
    }


def test_create_read_update_delete_with_history_and_provenance(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    p1 = world["p1"]
    with fhir_node.as_("dr-house") as house:
        created = create(house, observation(p1["id"], "8310-5", "2026-02-01", 37.0))
        rid = created["id"]
        assert created["meta"]["versionId"] == "1"
        read = house.get(f"/Observation/{rid}")
        assert read.status_code == 200, read.text
        assert read.headers["etag"] == 'W/"1"'
        assert read.json()["valueQuantity"]["value"] == 37.0
        changed = {**read.json(), "valueQuantity": {"value": 38.5, "unit": "Cel"}}
        stale = house.put(f"/Observation/{rid}", json=changed, headers={"If-Match": 'W/"7"'})
        assert stale.status_code == 412
        assert outcome(stale).issue[0].code == "conflict"
        updated = house.put(f"/Observation/{rid}", json=changed, headers={"If-Match": 'W/"1"'})
        assert updated.status_code == 200, updated.text
        assert updated.headers["etag"] == 'W/"2"'
        provenance_ref = updated.headers["x-provenance"]
        assert house.get(f"/Observation/{rid}/_history/1").json()["valueQuantity"]["value"] == 37.0
        assert house.delete(f"/Observation/{rid}").status_code == 204
        gone = house.get(f"/Observation/{rid}")
        assert gone.status_code == 410
        assert outcome(gone).issue[0].code == "deleted"
        history = Bundle.model_validate(house.get(f"/Observation/{rid}/_history").json())
        assert [e.request.method for e in history.entry] == ["DELETE", "PUT", "POST"]
        assert history.entry[1].resource.valueQuantity.value == 38.5
        # the Provenance of the update carries the ledger anchor of version 2
        prov = house.get(f"/{provenance_ref}")
        assert prov.status_code == 200, prov.text
        Provenance.model_validate(prov.json())
        anchor = {e["url"]: e for e in prov.json()["extension"][0]["extension"]}
        tx = httpx.get(fhir_node.url + anchor["receipt"]["valueUrl"].lstrip("/")).json()
        assert tx["status"] == "committed"
        assert tx["height"] == anchor["block"]["valueUnsignedInt"]
        assert prov.json()["target"][0]["reference"] == f"Observation/{rid}/_history/2"
        who = prov.json()["agent"][0]["who"]["identifier"]["value"]
        assert who == fhir_node.keys["dr-house"].did


def test_invalid_resource_gets_operation_outcome_naming_the_element(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    bad = patient_body(fhir_node.keys["patient-3"].did, "X", "Y", "1990-13-45", "male")
    with fhir_node.as_("dr-house") as house:
        response = house.post("/Patient", json=bad)
        assert response.status_code in (400, 422)
        issue = outcome(response).issue[0]
        assert issue.expression == ["Patient.birthDate"]
        assert "1990-13-45" not in response.text  # the value (PHI) is never echoed
        for body in (b"{not json", b"[]", b'{"resourceType": "Spaceship"}'):
            response = house.post("/Observation", content=body,
                                  headers={"Content-Type": FHIR_JSON})  # fmt: skip
            assert response.status_code == 400
            outcome(response)
        wrong_type = house.post("/Patient", content=b"{}", headers={"Content-Type": "text/xml"})
        assert wrong_type.status_code == 415


def test_scope_without_permission_gets_403_operation_outcome(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    with fhir_node.as_("dr-house", "user/Patient.rs") as house:
        response = house.get(f"/Observation/{world['obs1'][0]['id']}")
        assert response.status_code == 403
        assert outcome(response).issue[0].code == "forbidden"
        assert house.post("/Observation", json=world["obs1"][0]).status_code == 403


def test_consent_gates_reads(fhir_node: FhirNode, world: dict[str, Any]) -> None:
    with fhir_node.as_("dr-house") as house:
        assert house.get(f"/Observation/{world['obs1'][0]['id']}").status_code == 200
        assert house.get(f"/Observation/{world['obs2'][0]['id']}").status_code == 403
    with fhir_node.as_("dr-clinic") as clinic:  # another organization: no consent
        assert clinic.get(f"/Observation/{world['obs1'][0]['id']}").status_code == 403


def test_patient_reads_own_data_with_patient_scope(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    did = fhir_node.keys["patient-2"].did
    with fhir_node.as_("patient-2", "patient/*.rs", patient=did) as me:
        bundle = me.get("/Observation").json()
        assert bundle["total"] == len(world["obs2"])
        assert me.get(f"/Observation/{world['obs1'][0]['id']}").status_code == 403


def test_search_total_does_not_count_denied_resources(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    with fhir_node.as_("dr-house") as house:
        bundle = house.get("/Observation", params={"code": "http://loinc.org|8867-4"}).json()
        Bundle.model_validate(bundle)
        assert bundle["total"] == len(world["obs1"])
        ids = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"}
        assert ids == {o["id"] for o in world["obs1"]}
        outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        assert outcomes and outcomes[0]["resource"]["issue"][0]["code"] == "suppressed"
        patients = house.get("/Patient", params={"family": "secret"}).json()
        assert patients["total"] == 0
        assert "Secret" not in str(patients)


def test_paging_does_not_reveal_denied_resources(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    seen: list[str] = []
    with fhir_node.as_("dr-house") as house:
        url: str | None = "/Observation?code=8867-4&_count=3&_sort=date"
        pages = 0
        while url is not None:
            bundle = house.get(url).json()
            assert bundle["total"] == len(world["obs1"])
            seen += [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
            nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            url = nxt[0] if nxt else None
            pages += 1
        assert pages == 3
        assert seen == [o["id"] for o in world["obs1"]]  # sorted by date, no gaps, no extras
        beyond = house.get("/Observation?code=8867-4&_count=3&_offset=9").json()
        assert beyond["entry"][0]["search"]["mode"] == "outcome"


def test_include_does_not_pull_in_denied_resources(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    with fhir_node.as_("dr-house") as house:
        bundle = house.get("/Observation", params={"_include": "Observation:subject"}).json()
        included = {
            e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"
        }
        assert included == {world["p1"]["id"]}
        rev = house.get("/Patient", params={"_revinclude": "Observation:subject"}).json()
        matched = {e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "match"}
        assert world["p2"]["id"] not in matched
        rev_ids = {e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "include"}
        assert not rev_ids & {o["id"] for o in world["obs2"]}
        assert {o["id"] for o in world["obs1"]} <= rev_ids


def test_search_parameters(fhir_node: FhirNode, world: dict[str, Any]) -> None:
    p1 = world["p1"]
    with fhir_node.as_("dr-house") as house:

        def total(path: str, **params: str) -> int:
            response = house.get(path, params=params)
            assert response.status_code == 200, response.text
            return int(response.json()["total"])

        assert total("/Patient", name="chal") == 1
        assert total("/Patient", given="peter", gender="male", birthdate="1974-12-25") == 1
        assert total("/Patient", identifier=f"{DID_SYSTEM}|{fhir_node.keys['patient-1'].did}") == 1
        assert total("/Patient", birthdate="lt1970") == 0
        assert total("/Observation", patient=p1["id"], date="ge2026-01-05") >= 3
        assert total("/Observation", subject=f"Patient/{p1['id']}", status="final") >= 7
        assert total("/Observation", category="vital-signs", _id=world["obs1"][0]["id"]) == 1
        assert total("/Observation", _lastUpdated="gt2000-01-01", code="8867-4") == 7
        form = house.post("/Observation/_search", data={"code": "8867-4"})
        assert form.status_code == 200 and form.json()["total"] == 7
        for bad in ({"nonsense": "1"}, {"_count": "100000"}, {"date": "yesterday"},
                    {"name:contains": "x"}, {"_sort": "status"}):  # fmt: skip
            response = house.get("/Observation", params=bad)
            assert response.status_code == 400, bad
            outcome(response)


def test_everything_holds_only_what_the_caller_may_read(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    with fhir_node.as_("dr-house") as house:
        bundle = house.get(f"/Patient/{world['p1']['id']}/$everything").json()
        ids = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"}
        assert {world["p1"]["id"], *(o["id"] for o in world["obs1"])} <= ids
        denied = house.get(f"/Patient/{world['p2']['id']}/$everything").json()
        assert denied["total"] == 0


def test_break_glass_reads_with_justification_and_is_logged(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    target = world["obs2"][0]["id"]
    with fhir_node.as_("dr-er", purpose="ETREAT") as er:
        assert er.get(f"/Observation/{target}").status_code == 403  # no justification
    why = "Unconscious on arrival; heart rate history needed now"
    with fhir_node.as_("dr-er", purpose="ETREAT", justification=why) as er:
        response = er.get(f"/Observation/{target}")
        assert response.status_code == 200, response.text
    events = fhir_node.node.audit.list_events(
        fhir_node.keys["patient-2"].did, decision="break-glass", limit=50
    )
    assert any(e.record_id == target and e.justification == why for e in events)


def test_erasure_removes_the_search_rows(fhir_node: FhirNode, world: dict[str, Any]) -> None:
    """GDPR erasure (crypto-shredding) also erases the FHIR index's rows: they are PHI."""
    from medledger.core.access.gate import AccessRequest

    node = fhir_node.node
    patient = fhir_node.keys["patient-1"].did
    with fhir_node.as_("dr-house") as house:
        body = observation(world["p1"]["id"], "2708-6", "2026-03-03", 97.0)
        body["note"] = [{"text": "erasable"}]
        rid = create(house, body)["id"]
        assert house.get("/Observation", params={"code": "2708-6"}).json()["total"] == 1
    request = AccessRequest(patient, patient, rid, "erase", "PATREQ")
    node.records.erase(request, int(time.time() * 1000))
    assert node.fhir_index.head("Observation", rid) is None
    assert node.fhir_index.versions("Observation", rid) == []
    with fhir_node.as_("dr-house") as house:
        assert house.get("/Observation", params={"code": "2708-6"}).json()["total"] == 0
        assert house.get(f"/Observation/{rid}").status_code == 404


def test_type_history_and_provenance_search_hold_only_permitted_versions(
    fhir_node: FhirNode, world: dict[str, Any]
) -> None:
    denied = {o["id"] for o in world["obs2"]}
    with fhir_node.as_("dr-house") as house:
        history = house.get("/Observation/_history", params={"_count": "100"})
        assert history.status_code == 200, history.text
        entries = history.json()["entry"]
        seen = {e["fullUrl"].rsplit("/", 1)[1] for e in entries if "fullUrl" in e}
        assert {o["id"] for o in world["obs1"]} <= seen
        assert not seen & denied
        assert entries[-1]["resource"]["issue"][0]["code"] == "suppressed"
        target = world["obs1"][0]["id"]
        provenances = house.get("/Provenance", params={"target": f"Observation/{target}"})
        assert provenances.json()["total"] == 1
        hidden = house.get(
            "/Provenance", params={"target": f"Observation/{world['obs2'][0]['id']}"}
        )
        assert hidden.json()["total"] == 0


@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-token", "Bearer a.b.c", "Basic dXNlcjpwYXNz"]
)
def test_a_request_without_a_valid_token_is_401_with_an_operation_outcome(
    fhir_node: FhirNode, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(fhir_node.url + "fhir/Patient", headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("OPTIONS", "fhir/Patient", 405, "not-supported"),
        ("PATCH", "fhir/Patient/p-1", 404, "not-found"),
        ("DELETE", "fhir/metadata", 404, "not-found"),
    ],
)
def test_a_method_or_path_the_api_does_not_serve_gets_an_operation_outcome(
    fhir_node: FhirNode, method: str, path: str, status: int, code: str
) -> None:
    """Not the web framework's own error body: a FHIR client reads an OperationOutcome."""
    response = httpx.request(method, fhir_node.url + path, timeout=30)
    assert response.status_code == status, response.text
    assert outcome(response).issue[0].code == code
