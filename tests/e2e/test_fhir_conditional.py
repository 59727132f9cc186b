"""Conditional interactions over real HTTP (FHIR R4 §3.1.0.8 create ``If-None-Exist``,
§3.1.0.4.3 update by search, §3.1.0.7.1 delete by search, ADR 0021), the failure paths, how
matching respects consent, and the specification's transaction Bundle example
(tests/vectors/hl7-r4-examples/Bundle-bundle-transaction.json) through ``POST /fhir``."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.core.consent.simple import permit_to
from medledger.core.identity.keys import ParticipantKey

from .conftest import FhirNode, submit_and_wait

VECTORS = Path(__file__).parent.parent / "vectors" / "hl7-r4-examples"
DID_SYSTEM = "urn:ietf:rfc:3986"
IDS = "http://example.org/fhir/ids"
SAME_WORDS = "the condition does not select exactly one resource this request may use"


def new_patient(node: FhirNode, *, consent_to_hospital: bool, name: str | None = None) -> str:
    """A newly registered patient (its key kept as ``node.keys[name]``); with a consent
    letting the hospital's staff read, or none."""
    key = ParticipantKey.from_seed(secrets.token_bytes(32))
    if name is not None:
        node.keys[name] = key
    submit_and_wait(node.node, node.keys["hospital"], "participant.register",
                    {"did": key.did, "kind": "patient", "roles": []})  # fmt: skip
    if consent_to_hospital:
        consent = permit_to(f"to-hospital-{secrets.token_hex(4)}", key.did,
                            node.keys["hospital"].did)  # fmt: skip
        submit_and_wait(node.node, key, "consent.grant", {"consent": consent.to_json()})
    return key.did


def patient_resource(did: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient",
            "identifier": [{"system": DID_SYSTEM, "value": did}], **extra}  # fmt: skip


def observation(patient_id: str, tag: str, value: float = 72) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": IDS, "value": tag}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


@pytest.fixture(scope="module")
def house(fhir_node: FhirNode) -> Iterator[httpx.Client]:
    with fhir_node.as_("dr-house") as client:
        yield client


@pytest.fixture(scope="module")
def consenting(fhir_node: FhirNode, house: httpx.Client) -> str:
    """The Patient id of a patient who lets the hospital's staff read."""
    did = new_patient(fhir_node, consent_to_hospital=True)
    response = house.post("/Patient", json=patient_resource(did))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def withholding(fhir_node: FhirNode, house: httpx.Client) -> tuple[str, str]:
    """(Patient id, did) of a patient who consented to nobody: Dr House writes, never reads."""
    did = new_patient(fhir_node, consent_to_hospital=False, name="withholding")
    response = house.post("/Patient", json=patient_resource(did))
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), did


def count(house: httpx.Client, tag: str) -> int:
    found = house.get("/Observation", params={"identifier": f"{IDS}|{tag}"})
    assert found.status_code == 200, found.text
    return int(found.json()["total"])


# --- conditional create -----------------------------------------------------------------------
def test_conditional_create_creates_once_then_returns_the_match(
    house: httpx.Client, consenting: str
) -> None:
    body = observation(consenting, "cc-1")
    header = {"If-None-Exist": f"identifier={IDS}|cc-1"}
    first = house.post("/Observation", json=body, headers=header)
    assert first.status_code == 201, first.text
    again = house.post("/Observation", json={**body, "status": "amended"}, headers=header)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "final"  # the post was ignored
    assert again.headers["ETag"] == 'W/"1"'
    assert again.headers["Location"].endswith(f"/Observation/{first.json()['id']}/_history/1")
    assert count(house, "cc-1") == 1


def test_conditional_create_with_two_matches_is_412_and_creates_nothing(
    house: httpx.Client, consenting: str
) -> None:
    for _ in range(2):
        assert house.post("/Observation", json=observation(consenting, "cc-2")).status_code == 201
    response = house.post("/Observation", json=observation(consenting, "cc-2"),
                          headers={"If-None-Exist": f"identifier={IDS}|cc-2"})  # fmt: skip
    assert response.status_code == 412
    assert response.json()["issue"][0]["diagnostics"] == SAME_WORDS
    assert count(house, "cc-2") == 2


# --- conditional update -----------------------------------------------------------------------
def test_conditional_update_creates_then_updates(house: httpx.Client, consenting: str) -> None:
    url = f"/Observation?identifier={IDS}|cu-1"
    created = house.put(url, json=observation(consenting, "cu-1", 70))
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    updated = house.put(url, json=observation(consenting, "cu-1", 75))
    assert updated.status_code == 200, updated.text
    assert (updated.json()["id"], updated.headers["ETag"]) == (record_id, 'W/"2"')
    back = house.get(f"/Observation/{record_id}").json()
    assert without_meta(back) == {**observation(consenting, "cu-1", 75), "id": record_id}
    # If-Match on a conditional update: the version must be the match's
    stale = house.put(url, json=observation(consenting, "cu-1", 80), headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    # the id in the body must be the match's
    other = {**observation(consenting, "cu-1", 80), "id": "someone-else"}
    assert house.put(url, json=other).status_code == 400
    assert house.get(f"/Observation/{record_id}").json()["meta"]["versionId"] == "2"


def test_conditional_update_refusals(house: httpx.Client, consenting: str) -> None:
    for _ in range(2):
        assert house.post("/Observation", json=observation(consenting, "cu-2")).status_code == 201
    ambiguous = house.put(f"/Observation?identifier={IDS}|cu-2",
                          json=observation(consenting, "cu-2", 99))  # fmt: skip
    assert ambiguous.status_code == 412
    # nothing matches and the body names an id: no update-as-create here
    with_id = {**observation(consenting, "cu-3"), "id": "client-chosen"}
    refused = house.put(f"/Observation?identifier={IDS}|cu-3", json=with_id)
    assert refused.status_code == 400 and refused.json()["issue"][0]["expression"] == ["id"]
    assert count(house, "cu-3") == 0
    # a condition takes search parameters only, and at least one
    for url in ("/Observation", "/Observation?_count=1", "/Observation?nonsense=1",
                f"/Observation?identifier={IDS}|cu-3&_sort=date"):  # fmt: skip
        response = house.put(url, json=observation(consenting, "cu-3"))
        assert response.status_code == 400, url
        assert response.json()["resourceType"] == "OperationOutcome"
    assert count(house, "cu-3") == 0


# --- conditional delete -----------------------------------------------------------------------
def test_conditional_delete_deletes_the_one_match(house: httpx.Client, consenting: str) -> None:
    created = house.post("/Observation", json=observation(consenting, "cd-1"))
    record_id = created.json()["id"]
    deleted = house.delete(f"/Observation?identifier={IDS}|cd-1")
    assert deleted.status_code == 204 and deleted.headers["ETag"] == 'W/"2"'
    assert house.get(f"/Observation/{record_id}").status_code == 410
    nothing = house.delete(f"/Observation?identifier={IDS}|cd-1")  # no match any more
    assert nothing.status_code == 204 and "ETag" not in nothing.headers
    for _ in range(2):
        assert house.post("/Observation", json=observation(consenting, "cd-2")).status_code == 201
    assert house.delete(f"/Observation?identifier={IDS}|cd-2").status_code == 412
    assert count(house, "cd-2") == 2
    assert house.delete("/Observation").status_code == 400  # deleting "everything": no


# --- consent ----------------------------------------------------------------------------------
def test_matching_respects_consent_and_tells_nothing_about_a_denied_resource(
    fhir_node: FhirNode, house: httpx.Client, withholding: tuple[str, str]
) -> None:
    """Dr House may write for this patient but not read: a condition matching their record
    is refused like an ambiguous one (412, same words), no id or content in the answer,
    nothing written, and the denied decision is in the patient's audit trail."""
    patient_id, did = withholding
    created = house.post("/Observation", json=observation(patient_id, "cx-1"))
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    condition = f"identifier={IDS}|cx-1"
    answers = [
        house.post("/Observation", json=observation(patient_id, "cx-1"),
                   headers={"If-None-Exist": condition}),
        house.put(f"/Observation?{condition}", json=observation(patient_id, "cx-1", 1)),
        house.delete(f"/Observation?{condition}"),
    ]  # fmt: skip
    for answer in answers:
        assert answer.status_code == 412, answer.text
        assert answer.json()["issue"][0]["diagnostics"] == SAME_WORDS
        assert record_id not in answer.text and "ETag" not in answer.headers
    with fhir_node.as_("hospital") as node:  # the custodian node itself reads
        back = node.get(f"/Observation/{record_id}")
        assert back.status_code == 200 and back.json()["meta"]["versionId"] == "1"
        assert node.get("/Observation", params={"identifier": f"{IDS}|cx-1"}).json()["total"] == 1
    house_did = fhir_node.keys["dr-house"].did
    with fhir_node.as_("withholding", "patient/AuditEvent.rs", patient=did) as owner:
        events = [e["resource"] for e in owner.get("/AuditEvent").json()["entry"]]
    denied = [
        e
        for e in events
        if e["outcome"] == "8"
        and any(a["who"]["identifier"]["value"] == house_did for a in e["agent"])
    ]
    assert len(denied) == 3  # one gate decision per conditional interaction


def test_conditional_create_needs_the_search_scope(fhir_node: FhirNode, consenting: str) -> None:
    with fhir_node.as_("dr-house", "user/Observation.c") as create_only:
        condition = {"If-None-Exist": f"identifier={IDS}|cs-1"}
        body = observation(consenting, "cs-1")
        response = create_only.post("/Observation", json=body, headers=condition)
        assert response.status_code == 403
        plain = create_only.post("/Observation", json=observation(consenting, "cs-1"))
        assert plain.status_code == 201


def test_the_capability_statement_says_so(house: httpx.Client) -> None:
    statement = house.get("/metadata").json()
    observation_caps = next(
        r for r in statement["rest"][0]["resource"] if r["type"] == "Observation"
    )
    assert observation_caps["conditionalCreate"] is True
    assert observation_caps["conditionalUpdate"] is True
    assert observation_caps["conditionalDelete"] == "single"
    assert observation_caps["updateCreate"] is False


# --- the HL7 transaction Bundle example -------------------------------------------------------
def example_bundle() -> dict[str, Any]:
    return dict(json.loads((VECTORS / "Bundle-bundle-transaction.json").read_text()))


def hl7_patient(did: str, **extra: Any) -> dict[str, Any]:
    """The Peter James Chalmers of the example, with a registered patient's did:key."""
    resource = copy.deepcopy(example_bundle()["entry"][0]["resource"])
    return {**resource, "identifier": [{"system": DID_SYSTEM, "value": did}], **extra}


@pytest.fixture(scope="module")
def bundle_setup(fhir_node: FhirNode, house: httpx.Client) -> dict[str, Any]:
    """What the example's entries reference, pre-created (README of the vectors): Patient/123
    (also read as Patient/12334), Patient/123a at version 2, Patient/234, and the Patient
    with identifier 123456; plus the did:keys the example's new Patients are given."""
    dids = {name: new_patient(fhir_node, consent_to_hospital=True)
            for name in ("A", "B", "C", "D", "E", "F", "G")}  # fmt: skip
    ids = {}
    for name in ("C", "E", "F"):
        made = house.post("/Patient", json=hl7_patient(dids[name]))
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    again = house.put(f"/Patient/{ids['E']}", json={**hl7_patient(dids["E"]), "id": ids["E"],
                                                    "active": False})  # fmt: skip
    assert again.status_code == 200 and again.headers["ETag"] == 'W/"2"'
    g = hl7_patient(dids["G"])
    g["identifier"].append({"value": "123456"})
    made = house.post("/Patient", json=g)
    assert made.status_code == 201, made.text
    ids["G"] = made.json()["id"]
    return {"dids": dids, "ids": ids}


def substituted(setup: dict[str, Any]) -> dict[str, Any]:
    """The example with the documented substitutions only (vectors README)."""
    dids, ids = setup["dids"], setup["ids"]
    bundle = example_bundle()
    entries = bundle["entry"]
    for index, name in ((0, "A"), (1, "B"), (2, "C"), (3, "D"), (4, "E")):
        resource = entries[index]["resource"]
        resource["identifier"] = [*resource.get("identifier", []),
                                  {"system": DID_SYSTEM, "value": dids[name]}]  # fmt: skip
    for index, old, new in ((2, "123", ids["C"]), (4, "123a", ids["E"])):
        assert entries[index]["request"]["url"] == f"Patient/{old}"
        entries[index]["fullUrl"] = f"http://example.org/fhir/Patient/{new}"
        entries[index]["resource"]["id"] = new
        entries[index]["request"]["url"] = f"Patient/{new}"
    entries[5]["request"]["url"] = f"Patient/{ids['F']}"
    entries[9]["request"]["url"] = f"Patient/{ids['C']}"
    return bundle


def test_the_hl7_transaction_bundle_is_all_or_nothing(
    fhir_node: FhirNode, house: httpx.Client, bundle_setup: dict[str, Any]
) -> None:
    bundle = substituted(bundle_setup)
    ids, dids = bundle_setup["ids"], bundle_setup["dids"]
    # as published, its ValueSet/$lookup entry (an operation) is refused, naming it
    refused = house.post("", json=bundle)
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"][0].startswith("Bundle.entry[7]")
    # without it, but with a stale If-Match on Patient/123a: 412, and nothing written
    del bundle["entry"][7]
    stale = copy.deepcopy(bundle)
    stale["entry"][4]["request"]["ifMatch"] = 'W/"1"'
    response = house.post("", json=stale)
    assert response.status_code == 412, response.text
    assert response.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[4]")
    for name in ("A", "B", "D"):
        found = house.get("/Patient", params={"identifier": f"{DID_SYSTEM}|{dids[name]}"})
        assert found.json()["total"] == 0, name
    for name, version in (("C", "1"), ("E", "2"), ("F", "1"), ("G", "1")):
        assert house.get(f"/Patient/{ids[name]}").json()["meta"]["versionId"] == version


def test_the_hl7_transaction_bundle_goes_in_and_comes_back_equal(
    fhir_node: FhirNode, house: httpx.Client, bundle_setup: dict[str, Any]
) -> None:
    bundle = substituted(bundle_setup)
    del bundle["entry"][7]  # ValueSet/$lookup: no terminology operations (vectors README)
    ids = bundle_setup["ids"]
    response = house.post("", json=bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "201 Created", "200 OK", "201 Created", "200 OK",
                        "204 No Content", "204 No Content", "200 OK", "200 OK"]  # fmt: skip
    # the created and updated Patients come back equal, meta aside
    sent = [e["resource"] for e in bundle["entry"][:5]]
    got = [e["resource"] for e in answer["entry"][:5]]
    for index, (mine, theirs) in enumerate(zip(sent, got, strict=True)):
        back = house.get(f"/Patient/{theirs['id']}")
        assert back.status_code == 200, back.text
        expected = {k: v for k, v in mine.items() if k != "id"}
        assert {k: v for k, v in without_meta(back.json()).items() if k != "id"} == expected
        if index in (2, 4):  # updates keep their ids
            assert back.json()["id"] == mine["id"]
    assert got[2]["meta"]["versionId"] == "2" and got[4]["meta"]["versionId"] == "3"
    # the deletes: Patient/234 and the one with identifier 123456
    assert house.get(f"/Patient/{ids['F']}").status_code == 410
    assert house.get(f"/Patient/{ids['G']}").status_code == 410
    # the GET entries ran last: the search sees the new Patients, the read the update
    search = answer["entry"][7]["resource"]
    assert search["resourceType"] == "Bundle" and search["type"] == "searchset"
    named = {e["resource"]["id"] for e in search["entry"] if e["search"]["mode"] == "match"}
    assert {g["id"] for g in got} <= named
    read = answer["entry"][8]["resource"]
    assert read["id"] == ids["C"] and read["meta"]["versionId"] == "2"
    # conditional create again: the Patient with identifier 234234 exists now, so no new one
    again = house.post("", json={"resourceType": "Bundle", "type": "transaction",
                                 "entry": [bundle["entry"][1]]})  # fmt: skip
    assert again.status_code == 200, again.text
    matched = again.json()["entry"][0]
    assert matched["response"]["status"] == "200 OK"
    assert matched["response"]["location"].startswith(f"Patient/{got[1]['id']}/_history/1")


def test_concurrent_conditional_creates_make_one_resource(
    fhir_node: FhirNode, consenting: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> int:
        with fhir_node.as_("dr-house") as client:
            condition = {"If-None-Exist": f"identifier={IDS}|cc-race"}
            body = observation(consenting, "cc-race")
            return client.post("/Observation", json=body, headers=condition).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(create, range(6)))
    assert statuses == [200] * 5 + [201]
    with fhir_node.as_("dr-house") as house:
        assert count(house, "cc-race") == 1
