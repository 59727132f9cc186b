"""Independent FHIR clients against a running node: SMART's ``fhirclient`` and ``fhirpy``
(metadata, create, read, update, search with paging, delete), with real SMART bearer tokens."""

from __future__ import annotations

from typing import Any

import fhirclient.client as fhirclient_client
import fhirpy
import pytest

from medledger.core.consent.simple import permit_to

from .conftest import FhirNode, submit_and_wait


def observation(patient_id: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-03-01",
        "valueQuantity": {"value": value, "unit": "kg"},
    }


@pytest.fixture(scope="module")
def setting(fhir_node: FhirNode) -> tuple[FhirNode, dict[str, str], str]:
    keys = fhir_node.keys
    consent = permit_to("c-clients", keys["patient-1"].did, keys["hospital"].did)
    submit_and_wait(fhir_node.node, keys["patient-1"], "consent.grant",
                    {"consent": consent.to_json()})  # fmt: skip
    with fhir_node.as_("dr-house") as house:
        # the same real bearer token the external clients will send
        headers = {"Authorization": house.headers["Authorization"]}
        patient = house.post("/Patient", json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": keys["patient-1"].did}],
            "name": [{"family": "Client"}]})  # fmt: skip
        assert patient.status_code == 201, patient.text
    return fhir_node, headers, str(patient.json()["id"])


def test_fhirclient(setting: tuple[FhirNode, dict[str, str], str]) -> None:
    from fhirclient.models.fhirsearch import FHIRSearch
    from fhirclient.models.observation import Observation

    node, headers, patient_id = setting
    smart = fhirclient_client.FHIRClient(
        settings={"app_id": "medledger-e2e", "api_base": node.url + "fhir/"}
    )
    server = smart.server
    server.session.headers.update(headers)
    assert server.request_json("metadata")["fhirVersion"] == "4.0.1"
    ids = []
    for value in range(5):
        created = Observation(observation(patient_id, 70.0 + value)).create(server)
        ids.append(created["id"])
    read = Observation.read(ids[0], server)
    assert read.valueQuantity.value == 70.0
    read.valueQuantity.value = 71.5
    read.update(server)
    assert Observation.read(ids[0], server).valueQuantity.value == 71.5
    search = FHIRSearch(Observation, struct={"code": "29463-7", "_count": "2"})
    found = [r.id for r in search.perform_resources_iter(server)]
    assert sorted(found) == sorted(ids)
    Observation.read(ids[1], server).delete(server)
    with pytest.raises(Exception, match="410"):
        Observation.read(ids[1], server)


def test_fhirpy(setting: tuple[FhirNode, dict[str, str], str]) -> None:
    node, headers, patient_id = setting
    client = fhirpy.SyncFHIRClient(node.url + "fhir", extra_headers=headers)
    assert client.execute("metadata", method="get")["fhirVersion"] == "4.0.1"
    created = []
    for value in range(5):
        resource = client.resource("Observation", **observation(patient_id, 80.0 + value))
        resource["code"]["coding"][0]["code"] = "8302-2"
        resource.save()
        created.append(resource.id)
    first = client.reference("Observation", created[0]).to_resource()
    assert first["valueQuantity"]["value"] == 80.0
    first["valueQuantity"]["value"] = 81.0
    first.save()
    assert client.reference("Observation", created[0]).to_resource()["meta"]["versionId"] == "2"
    # (fhirpy's count() sends Aidbox's _totalMethod, which this server refuses as unknown)
    search = client.resources("Observation").search(code="8302-2").limit(2)
    assert sorted(r.id for r in search.fetch_all()) == sorted(created)
    client.reference("Observation", created[1]).to_resource().delete()
    assert len(search.fetch_all()) == 4
