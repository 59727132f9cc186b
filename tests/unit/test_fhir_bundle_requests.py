"""Bundle entry requests (FHIR R4 §3.1.0.11): conditional create/update/delete, GET and HEAD
entries, the transaction order, and the id each entry's resource gets; conditions are search
parameters only, bounded (ADR 0021)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from medledger.core.fhir.bundle import (
    MAX_URL_CHARS,
    ORDER,
    parse_bundle,
    parse_condition_string,
    resolve_references,
)
from medledger.core.fhir.search import MAX_PARAMETERS, date_range, parse_condition
from medledger.errors import InvalidInputError

EXAMPLE = Path(__file__).parent.parent / "vectors" / "hl7-r4-examples"


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_the_hl7_transaction_example_parses_entry_by_entry() -> None:
    raw = json.loads((EXAMPLE / "Bundle-bundle-transaction.json").read_text())
    del raw["entry"][7]  # ValueSet/$lookup: an operation (refused below)
    _, entries = parse_bundle(raw)
    shapes = [(e.method, e.resource_type, e.record_id, e.condition) for e in entries]
    assert shapes == [
        ("POST", "Patient", None, None),
        ("POST", "Patient", None, (("identifier", "http:/example.org/fhir/ids|234234"),)),
        ("PUT", "Patient", "123", None),
        ("PUT", "Patient", None, (("identifier", "http:/example.org/fhir/ids|456456"),)),
        ("PUT", "Patient", "123a", None),
        ("DELETE", "Patient", "234", None),
        ("DELETE", "Patient", None, (("identifier", "123456"),)),
        ("GET", "Patient", None, None),
        ("GET", "Patient", "12334", None),
    ]
    assert entries[4].if_match == 2
    assert entries[7].query == (("name", "peter"),)
    assert entries[8].if_none_match == 4
    assert entries[8].if_modified_since_ms == date_range("2015-08-31T08:14:33+10:00")[1]
    order = sorted(entries, key=lambda e: (ORDER[e.method], e.index))
    assert [e.method for e in order] == ["DELETE"] * 2 + ["POST"] * 2 + ["PUT"] * 3 + ["GET"] * 2


def test_the_example_as_published_is_refused_at_its_operation() -> None:
    raw = json.loads((EXAMPLE / "Bundle-bundle-transaction.json").read_text())
    with pytest.raises(InvalidInputError) as e:
        parse_bundle(raw)
    assert e.value.parameter == "Bundle.entry[7].request.url"


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "PATCH", "url": "Patient/1"},
        {"method": "PUT", "url": "Patient"},
        {"method": "PUT", "url": "Patient/1?identifier=x"},
        {"method": "DELETE", "url": "Patient/1/_history/2"},
        {"method": "GET", "url": "Patient/1/_history/x"},
        {"method": "GET", "url": "Patient/1?x=y"},
        {"method": "GET", "url": "http://elsewhere.example/Patient/1"},
        {"method": "GET", "url": "Patient/1", "ifNoneMatch": 'W/"x"'},
        {"method": "GET", "url": "Patient/1", "ifModifiedSince": "yesterday"},
        {"method": "POST", "url": "Patient", "ifNoneExist": ""},
        {"method": "POST", "url": "Patient", "ifNoneExist": 7},
        {"method": "DELETE", "url": "Patient?" + "&".join(["a=b"] * (MAX_PARAMETERS + 1))},
        {"method": "DELETE", "url": "Patient?x=" + "y" * MAX_URL_CHARS},
    ],
)
def test_malformed_requests_are_refused_naming_the_entry(request_: dict[str, Any]) -> None:
    entry = {"request": request_, "resource": {"resourceType": "Patient"}}
    with pytest.raises(InvalidInputError) as e:
        parse_bundle(bundle(entry))
    assert str(e.value.parameter).startswith("Bundle.entry[0].request")


def test_a_resource_of_another_type_than_the_url_is_refused() -> None:
    entry = {"request": {"method": "POST", "url": "Patient"},
             "resource": {"resourceType": "Observation"}}  # fmt: skip
    with pytest.raises(InvalidInputError) as e:
        parse_bundle(bundle(entry))
    assert e.value.parameter == "Bundle.entry[0].resource.resourceType"


def test_matched_and_created_ids_resolve_urn_uuid_references() -> None:
    matched_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    created_url = "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059"
    _, entries = parse_bundle(bundle(
        {"fullUrl": matched_url, "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=a|1"}},
        {"fullUrl": created_url, "resource": {"resourceType": "Patient"},
         "request": {"method": "PUT", "url": "Patient?identifier=a|2"}},
        {"resource": {"resourceType": "Observation", "subject": {"reference": matched_url},
                      "focus": [{"reference": created_url}]},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "DELETE", "url": "Patient?identifier=a|3"}},
    ))  # fmt: skip
    ids = (f"new{n}" for n in itertools.count())
    resolved = resolve_references(entries, lambda: next(ids), {0: "old", 1: None, 3: None})
    assert [e.record_id for e in resolved] == ["old", "new0", "new1", None]
    observation = resolved[2].resource
    assert observation is not None
    assert observation["subject"]["reference"] == "Patient/old"
    assert observation["focus"][0]["reference"] == "Patient/new0"


def test_conditions_take_search_parameters_only() -> None:
    query = parse_condition("Observation", parse_condition_string("identifier=a|1", "url"))
    assert [c.name for c in query.clauses] == ["identifier"]
    for text in ("_count=1&identifier=a|1", "identifier=a|1&_sort=date",
                 "_include=Observation:subject&identifier=a|1", "nonsense=1"):  # fmt: skip
        with pytest.raises(InvalidInputError):
            parse_condition("Observation", parse_condition_string(text, "url"))
    with pytest.raises(InvalidInputError):
        parse_condition("Observation", ())
    with pytest.raises(InvalidInputError):
        parse_condition_string("", "url")
    assert parse_condition("Observation", [("_id", "abc")]).clauses[0].name == "_id"
