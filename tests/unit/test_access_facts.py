"""The facts an access decision reads from a FHIR resource (medledger.core.access.facts)."""

from __future__ import annotations

import pytest

from medledger.core.access.facts import ResourceFacts, parse_fhir_instant, resource_facts
from medledger.errors import TamperError

LOINC = "http://loinc.org"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def test_labels_codes_and_time_of_an_observation() -> None:
    facts = resource_facts(
        {
            "resourceType": "Observation",
            "meta": {"security": [{"system": CONF, "code": "R"}, {"system": ACT, "code": "HIV"}]},
            "code": {"coding": [{"system": LOINC, "code": "75622-1"}]},
            "category": [{"coding": [{"system": "urn:x", "code": "laboratory"}]}],
            "effectiveDateTime": "2026-03-01T10:00:00Z",
        }
    )
    assert facts.security_labels == {"R", "HIV"}
    assert facts.codes == {f"{LOINC}|75622-1", "urn:x|laboratory"}
    assert facts.data_time_ms == 1772359200000


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"effectivePeriod": {"start": "2026-03-01"}}, "2026-03-01T00:00:00Z"),
        ({"recordedDate": "2026-03"}, "2026-03-01T00:00:00Z"),
        ({"authoredOn": "2026"}, "2026-01-01T00:00:00Z"),
        ({"issued": "2026-03-01T12:00:00+02:00"}, "2026-03-01T10:00:00Z"),
    ],
)
def test_data_time_fields(resource: dict[str, object], expected: str) -> None:
    assert resource_facts(resource).data_time_ms == parse_fhir_instant(expected)


@pytest.mark.parametrize(
    "resource",
    [
        {},
        {"meta": "x", "code": 3, "effectiveDateTime": "yesterday"},
        {"meta": {"security": [1, {"code": 2}, {"system": 3, "code": "R"}]}},
        {"code": {"coding": "x"}, "category": [None]},
        {"effectiveDateTime": "2026-13-45"},
    ],
)
def test_unreadable_facts_are_absent_never_an_error(resource: dict[str, object]) -> None:
    assert resource_facts(resource) == ResourceFacts()


def test_facts_round_trip_and_tamper() -> None:
    facts = ResourceFacts(frozenset({"R"}), frozenset({"urn:x|1"}), 5)
    assert ResourceFacts.from_bytes(facts.to_bytes()) == facts
    for raw in (b"", b"[]", b'{"labels":[1],"codes":[],"time_ms":null}', b'{"labels":[]}'):
        with pytest.raises(TamperError):
            ResourceFacts.from_bytes(raw)


def test_label_and_code_counts_are_bounded() -> None:
    many = [{"system": CONF, "code": f"L{i}"} for i in range(100)]
    codes = [{"system": LOINC, "code": str(i)} for i in range(100)]
    facts = resource_facts({"meta": {"security": many}, "code": {"coding": codes}})
    assert len(facts.security_labels) == 32 and len(facts.codes) == 64
