"""The FHIR API's pure core: validation naming the element, search parameters and queries
with their limits, urn:uuid resolution in Bundles, and the Provenance of a write."""

from __future__ import annotations

import itertools

import pytest
from fhir.resources.R4B.provenance import Provenance

from medledger.core.fhir.bundle import parse_bundle, resolve_references
from medledger.core.fhir.provenance import to_provenance
from medledger.core.fhir.resource import parse_resource, patient_did, patient_reference
from medledger.core.fhir.rows import VersionAnchor
from medledger.core.fhir.search import (
    MAX_OR_VALUES,
    MAX_PARAMETERS,
    date_range,
    extract,
    parse_query,
)
from medledger.errors import InvalidInputError

DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def test_invalid_resource_names_the_element_not_the_value() -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_resource({"resourceType": "Patient", "name": [{"family": 7}]}, "Patient")
    assert e.value.parameter == "Patient.name[0].family"
    with pytest.raises(InvalidInputError) as e:
        parse_resource({"resourceType": "Patient", "birthDate": "1999-99-99"}, "Patient")
    assert e.value.parameter == "Patient.birthDate"
    assert "1999-99-99" not in str(e.value)


def test_required_bindings_are_checked() -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_resource({"resourceType": "Patient", "gender": "xx"}, "Patient")
    assert e.value.parameter == "Patient.gender"
    with pytest.raises(InvalidInputError) as e:
        parse_resource(
            {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
             "category": ["food", "sweets"]},
            "AllergyIntolerance",
        )  # fmt: skip
    assert e.value.parameter == "AllergyIntolerance.category[1]"
    parse_resource({"resourceType": "Patient", "gender": "unknown"}, "Patient")


def test_server_assigned_meta_is_dropped_and_types_checked() -> None:
    resource = parse_resource(
        {
            "resourceType": "Patient",
            "meta": {"versionId": "9", "lastUpdated": "2020-01-01T00:00:00Z"},
        },
        "Patient",
    )
    assert "meta" not in resource
    for bad in ([], {"resourceType": "Bundle"}, {"resourceType": "Observation"}):
        with pytest.raises(InvalidInputError):
            parse_resource(bad, "Patient")


def test_patient_identity() -> None:
    patient = {"identifier": [{"system": "urn:ietf:rfc:3986", "value": DID}]}
    assert patient_did(patient) == DID
    for bad in ({}, {"identifier": [{"system": "urn:ietf:rfc:3986", "value": "did:web:x"}]}):
        with pytest.raises(InvalidInputError):
            patient_did(bad)
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient/abc"}}
    assert patient_reference(obs) == "abc"
    with pytest.raises(InvalidInputError) as e:
        patient_reference({"resourceType": "Observation", "subject": {"reference": "Group/1"}})
    assert e.value.parameter == "Observation.subject"


def test_date_ranges_cover_their_precision() -> None:
    low, high = date_range("2026")
    assert high - low == 365 * 86_400_000 - 1
    assert date_range("2026-02")[1] - date_range("2026-02")[0] == 28 * 86_400_000 - 1
    assert date_range("2026-01-01T01:00:00+01:00") == date_range("2026-01-01T00:00:00Z")
    for bad in ("yesterday", "2026-1-1", "20260101"):
        with pytest.raises(ValueError):
            date_range(bad)


def test_extract_rows() -> None:
    rows = extract(
        {
            "resourceType": "Observation",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectiveDateTime": "2026-01-05",
            "status": "final",
        }
    )
    names = {(n, v) for n, v, _, _ in rows}
    assert {("code", "8867-4"), ("code", "http://loinc.org|8867-4")} <= names
    assert {("patient", "Patient/p1"), ("subject", "p1"), ("status", "final")} <= names
    assert any(n == "date" and low is not None for n, _, low, _ in rows)


def test_query_parsing_and_limits() -> None:
    query = parse_query(
        "Observation",
        [("patient", "p1"), ("date", "ge2026-01-01,lt2025"), ("_count", "5"), ("_sort", "-date")],
    )
    assert query.count == 5 and query.sort == (("date", True),)
    assert query.clauses[0].values == ("Patient/p1",)
    assert [p for p, _, _ in query.clauses[1].ranges] == ["ge", "lt"]
    cases = [
        [("unknown", "1")],
        [("code:missing", "true")],
        [("_count", "101")],
        [("_offset", "-1")],
        [("date", "soon")],
        [("code", "x" * 300)],
        [("code", ",".join(["a"] * (MAX_OR_VALUES + 1)))],
        [("code", "a")] * (MAX_PARAMETERS + 1),
        [("_include", "Observation:code")],
        [("_revinclude", "Observation:subject")],
        [("_sort", "code")],
        [("code", "")],
    ]
    for items in cases:
        with pytest.raises(InvalidInputError):
            parse_query("Observation", items)
    with pytest.raises(InvalidInputError):
        parse_query("Spaceship", [])


def test_bundle_urn_uuid_references_are_resolved_and_dangling_ones_refused() -> None:
    patient_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Observation", "subject": {"reference": patient_url}},
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": patient_url,
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    kind, entries = parse_bundle(bundle)
    ids = (f"id{n}" for n in itertools.count())
    resolved = resolve_references(entries, lambda: next(ids))
    assert kind == "transaction"
    assert resolved[1].record_id == "id1"
    assert resolved[0].resource is not None
    assert resolved[0].resource["subject"]["reference"] == "Patient/id1"
    dangling = dict(bundle, entry=bundle["entry"][:1])
    with pytest.raises(InvalidInputError):
        resolve_references(parse_bundle(dangling)[1], lambda: "x")
    for bad in ({"resourceType": "Bundle", "type": "collection"},
                {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {}}]},
                {"resourceType": "Bundle", "type": "batch", "entry": [{}] * 101}):  # fmt: skip
        with pytest.raises(InvalidInputError):
            parse_bundle(bad)


def test_provenance_carries_the_anchor_and_is_valid_fhir() -> None:
    anchor = VersionAnchor("Observation", "abc", 2, 1_700_000_000_123, "update", DID, "ab" * 32,
                           17, 42)  # fmt: skip
    resource = to_provenance(anchor, custodian=DID)
    Provenance.model_validate(resource)
    assert resource["id"] == "abc-2"
    assert resource["recorded"] == "2023-11-14T22:13:20.123Z"
    parts = {e["url"]: e for e in resource["extension"][0]["extension"]}
    assert parts["block"]["valueUnsignedInt"] == 17
    assert parts["logIndex"]["valueUnsignedInt"] == 42
