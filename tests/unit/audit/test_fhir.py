"""Access events as FHIR R4 AuditEvents (medledger.core.audit.fhir), following IHE Basic
Audit Log Patterns; every resource validated with fhir.resources (R4B = R4 for AuditEvent)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

from medledger.core.audit.event import ACTIONS, AccessEvent
from medledger.core.audit.fhir import (
    PROFILE_AUTHZ_CONSENT,
    PROFILE_PATIENT_QUERY,
    PROFILE_PATIENT_READ,
    to_audit_events,
)
from tests.unit.audit.events import DOCTOR, HOSPITAL, NODE, PATIENT, break_glass, make_event

NAME = "Local Hospital"
URL = "https://hospital.example/fhir"


def deny(**changes: Any) -> AccessEvent:
    return make_event(decision="deny", reasons=("no-consent",), consents=(), **changes)


def search() -> AccessEvent:
    return make_event(action="search", record_id=None, version=None)


def resources(event: AccessEvent, **kw: Any) -> list[dict[str, Any]]:
    out = to_audit_events(event, node_name=NAME, node_url=URL, **kw)
    for resource in out:
        FhirAuditEvent.model_validate(resource)  # raises on anything not valid R4
    return out


def profiles(event: AccessEvent) -> list[str]:
    return [r["meta"]["profile"][0] for r in resources(event)]


def codes(concepts: list[dict[str, Any]]) -> list[str]:
    return [c["coding"][0]["code"] for c in concepts]


CASES = [
    make_event(),
    make_event(action="key-release"),
    make_event(version=None),
    deny(),
    break_glass(),
    search(),
    make_event(action="search", resource_type=None, record_id=None, version=None),
    *(make_event(action=a, record_id=None, version=None) for a in ACTIONS),
    make_event(actor=PATIENT, actor_org=None, reasons=("patient-own-record",), consents=()),
]


@pytest.mark.parametrize("event", CASES)
def test_every_resource_is_valid_fhir_r4(event: AccessEvent) -> None:
    for resource in resources(event):
        assert resource["resourceType"] == "AuditEvent"
        assert resource["id"].startswith(event.event_id)
        assert resource["recorded"] == "2023-11-14T22:13:20.000Z"


@pytest.mark.parametrize("event", CASES)
def test_every_decision_gives_one_authz_consent_first(event: AccessEvent) -> None:
    authz = resources(event)[0]
    assert authz["meta"]["profile"] == [PROFILE_AUTHZ_CONSENT]
    assert authz["type"]["code"] == "110113"
    assert authz["subtype"][0]["code"] == "AuthZ-Consent"
    assert authz["action"] == "E"
    assert authz["outcome"] == ("8" if event.decision == "deny" else "0")
    assert authz["outcomeDesc"] == ", ".join(event.reasons)
    assert authz["source"]["site"] == NAME
    assert authz["source"]["type"][0]["code"] == "6"


def test_a_permitted_read_adds_patient_read() -> None:
    assert profiles(make_event()) == [PROFILE_AUTHZ_CONSENT, PROFILE_PATIENT_READ]
    assert profiles(make_event(action="key-release"))[1] == PROFILE_PATIENT_READ
    read = resources(make_event())[1]
    assert read["type"]["code"] == "rest"
    assert read["subtype"][0]["code"] == "vread"
    assert read["action"] == "R"
    data = read["entity"][1]
    assert data["what"]["reference"] == "Observation/obs-1/_history/1"
    assert data["role"]["code"] == "4"
    assert resources(make_event(version=None))[1]["subtype"][0]["code"] == "read"


def test_a_permitted_search_adds_patient_query() -> None:
    assert profiles(search()) == [PROFILE_AUTHZ_CONSENT, PROFILE_PATIENT_QUERY]
    query = resources(search())[1]
    assert query["subtype"][0]["code"] == "search-type"
    assert (
        base64.b64decode(query["entity"][1]["query"]).decode() == f"Observation?patient={PATIENT}"
    )


@pytest.mark.parametrize("event", [deny(), deny(action="search", record_id=None, version=None)])
def test_a_denial_is_only_the_decision(event: AccessEvent) -> None:
    assert profiles(event) == [PROFILE_AUTHZ_CONSENT]


@pytest.mark.parametrize("action", ["erase", "list-audit", "consent-export"])
def test_other_actions_are_only_the_decision(action: str) -> None:
    assert profiles(make_event(action=action, record_id=None, version=None)) == [
        PROFILE_AUTHZ_CONSENT
    ]


def test_agents_and_entities_follow_the_authz_consent_slices() -> None:
    authz = resources(make_event(consents=("consent-1", "consent-2")))[0]
    agents = {a["type"]["coding"][0]["code"]: a for a in authz["agent"]}
    assert set(agents) == {"110150", "IRCP", "PROV", "authserver"}
    assert agents["IRCP"]["requestor"] is True
    assert agents["IRCP"]["who"]["identifier"]["value"] == DOCTOR
    assert agents["IRCP"]["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert agents["PROV"]["who"]["identifier"]["value"] == HOSPITAL
    assert agents["authserver"]["who"]["identifier"]["value"] == NODE
    patient, *consents = authz["entity"]
    assert patient["what"] == {
        "identifier": {"system": "urn:ietf:rfc:3986", "value": PATIENT},
        "type": "Patient",
    }
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")
    assert [c["what"]["reference"] for c in consents] == ["Consent/consent-1", "Consent/consent-2"]


def test_a_patient_acting_for_themself_has_no_organization_agent() -> None:
    event = make_event(actor=PATIENT, actor_org=None, reasons=("patient-own-record",))
    agents = [a["type"]["coding"][0]["code"] for a in resources(event)[0]["agent"]]
    assert "PROV" not in agents


def test_break_glass_is_marked_with_btg() -> None:
    for resource in resources(break_glass()):
        assert codes(resource["purposeOfEvent"]) == ["ETREAT", "BTG"]
        assert resource["meta"]["tag"][0]["code"] == "BTG"
    assert "tag" not in resources(make_event())[0]["meta"]
    btg_only = break_glass(purpose="BTG")
    assert codes(resources(btg_only)[0]["purposeOfEvent"]) == ["BTG"]


def test_the_justification_is_exported_only_when_asked_for() -> None:
    event = break_glass()
    assert event.justification is not None
    plain = json.dumps(resources(event))
    assert event.justification not in plain
    shown = resources(event, include_justification=True)
    assert shown[0]["purposeOfEvent"][-1]["text"] == event.justification
    assert event.justification not in json.dumps(shown[1:])


def test_parties_appear_only_as_pseudonymous_identifiers() -> None:
    """No resource names a person: every party is a did:key identifier."""
    for event in CASES:
        for resource in resources(event):
            text = json.dumps(resource)
            for agent in resource["agent"]:
                assert set(agent["who"]) <= {"identifier", "type"}
                assert agent["who"]["identifier"]["value"].startswith("did:key:")
            assert "name" not in text.replace("node_name", "")


def test_the_node_url_is_the_servers_network_address() -> None:
    read = resources(make_event())[1]
    server = next(a for a in read["agent"] if a["type"]["coding"][0]["code"] == "110153")
    assert server["network"] == {"address": URL, "type": "5"}
    bare = to_audit_events(make_event(), node_name=NAME)[1]
    assert all("network" not in a for a in bare["agent"])
