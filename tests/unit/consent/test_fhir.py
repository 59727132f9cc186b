"""FHIR R4 Consent import and export: the round trip, what import refuses (naming the FHIR
path, never a traceback), what it drops, and how dateTimes become ms."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent as FhirConsent
from hypothesis import given, settings

from medledger.core.consent.fhir import PRACTITIONER_ROLE_URL, from_fhir, to_fhir
from medledger.core.consent.model import ActorRule, Consent, Period, Provision
from medledger.errors import InvalidInputError
from tests.unit.consent.fixtures import DOCTOR, GHH, PATIENT, consent
from tests.unit.consent.strategies import consents
from tests.unit.consent.test_hl7_examples import REFERENCES, at, raw

resolve = REFERENCES.get


@settings(max_examples=100, deadline=None)
@given(consents())
def test_round_trip(c: Consent) -> None:
    exported = to_fhir(c)
    FhirConsent.model_validate(exported)
    assert from_fhir(exported, lambda _: None) == c


def test_role_only_actor_and_odd_ids_survive_the_round_trip() -> None:
    c = consent(
        Provision(
            type="permit", actors=(ActorRule("PRCP", practitioner_role="emergency-physician"),)
        ),
        consent_id="grant_2024.v1",  # "_" is not allowed in a FHIR id: kept in an identifier
    )
    exported = to_fhir(c)
    assert "id" not in exported
    actor = exported["provision"]["actor"][0]  # type: ignore[index]
    assert actor["extension"] == [
        {"url": PRACTITIONER_ROLE_URL, "valueCode": "emergency-physician"}
    ]
    FhirConsent.model_validate(exported)
    assert from_fhir(exported, lambda _: None) == c


def test_a_did_identifier_needs_no_resolver() -> None:
    resource = raw("notThem")
    resource["patient"] = {"identifier": {"system": "urn:ietf:rfc:3986", "value": PATIENT}}
    resource["organization"] = [{"identifier": {"system": "urn:ietf:rfc:3986", "value": GHH}}]
    assert from_fhir(resource, {"Practitioner/f204": DOCTOR}.get).patient == PATIENT


def _rejects(resource: dict[str, Any], parameter: str, **kw: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        from_fhir(resource, resolve, **kw)
    assert info.value.parameter == parameter, str(info.value)


@pytest.mark.parametrize(
    ("mutate", "parameter"),
    [
        (lambda r: r.pop("scope"), "scope"),
        (lambda r: r.update(resourceType="Patient"), "resourceType"),
        (lambda r: r.update(dateTime="2015-13-45"), "dateTime"),
        (lambda r: r["provision"].update(type=7), "provision.type"),
        (lambda r: r["provision"]["actor"][0].pop("role"), "provision.actor.0.role"),
        (lambda r: r.update(status="revoked"), "status"),
        (lambda r: r.update(patient={"reference": "Patient/unknown"}), "patient"),
        (
            lambda r: r.update(
                patient={"identifier": {"system": "urn:ietf:rfc:3986", "value": "did:web:x"}}
            ),
            "patient",
        ),
        (
            lambda r: r["provision"]["actor"][0].update(reference={"reference": "Practitioner/x"}),
            "provision.actor[0].reference",
        ),
        (
            lambda r: r["provision"]["actor"][0]["role"]["coding"][0].update(code="FRIEND"),
            "provision.actor[0].role",
        ),
        (
            lambda r: r["provision"]["action"][0]["coding"][0].update(code="delete"),
            "provision.action[0]",
        ),
        (
            lambda r: r["provision"].update(purpose=[{"system": "x:y", "code": "TREAT"}]),
            "provision.purpose[0]",
        ),
        (
            lambda r: r["provision"].update(securityLabel=[{"system": "x:y", "code": "R"}]),
            "provision.securityLabel[0]",
        ),
        (
            lambda r: r["provision"].update(**{"class": [{"system": "x:y", "code": "Obs"}]}),
            "provision.class[0]",
        ),
        (
            lambda r: r["provision"].update(
                data=[{"meaning": "instance", "reference": {"reference": "https://x/Task/1"}}]
            ),
            "provision.data[0].reference",
        ),
        (
            lambda r: r["provision"].update(period={"start": "2016", "end": "2015"}),
            "provision.period.end_ms",
        ),
        (
            lambda r: r["provision"].update(
                modifierExtension=[{"url": "x:y", "valueBoolean": True}]
            ),
            "provision.modifierExtension",
        ),
        (lambda r: r.update(implicitRules="http://example.org/rules"), "implicitRules"),
        (lambda r: r.pop("id"), "id"),
        (
            lambda r: r["provision"].update(
                provision=[
                    {
                        "type": "deny",
                        "provision": [
                            {
                                "type": "permit",
                                "provision": [{"type": "deny", "provision": [{"type": "permit"}]}],
                            }
                        ],
                    }
                ]
            ),
            "provision.provisions",
        ),
    ],
)
def test_import_refuses_naming_the_field(mutate: Any, parameter: str) -> None:
    resource = raw("notThem")
    mutate(resource)
    _rejects(resource, parameter)


def test_import_refuses_a_root_type_that_contradicts_the_caller() -> None:
    _rejects(raw("notOrg"), "provision.type", root_type="permit")
    assert from_fhir(raw("notOrg"), resolve, root_type="deny") == from_fhir(raw("notOrg"), resolve)


def test_import_drops_what_can_carry_phi() -> None:
    resource = raw("notThem")
    resource["extension"] = [{"url": "http://example.org/nickname", "valueString": "Bill T"}]
    resource["contained"] = [{"resourceType": "Basic", "id": "x", "code": {"text": "Bill T"}}]
    resource["sourceAttachment"] = {"title": "Bill T Lookafter", "data": "QmlsbA=="}
    resource["identifier"] = [{"system": "urn:oid:1.2", "value": "Bill T"}]
    resource["policy"] = [{"uri": "http://example.org/Bill-T"}]
    resource["verification"] = [{"verified": True, "verificationDate": "2016-01-01"}]
    resource["category"][0]["text"] = "Bill T"
    imported = from_fhir(resource, resolve)
    assert imported == from_fhir(raw("notThem"), resolve)
    assert "Bill" not in json.dumps(to_fhir(imported))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2015", "2015", (at("2015-01-01"), at("2016-01-01"))),
        ("2015-02", "2015-02", (at("2015-02-01"), at("2015-03-01"))),
        ("2015-02-03", "2015-02-03", (at("2015-02-03"), at("2015-02-04"))),
        (
            "2015-02-03T10:00:00Z",
            "2015-02-03T10:00:00Z",
            (at("2015-02-03T10:00:00"), at("2015-02-03T10:00:01")),
        ),
        (
            "2015-02-03T10:00:00+10:00",
            "2015-02-03T10:00:00.5+10:00",
            (at("2015-02-03T00:00:00"), at("2015-02-03T00:00:00.6")),
        ),
        (
            "2015-02-03T10:00:00.123Z",
            "2015-02-03T10:00:00.1234Z",
            (at("2015-02-03T10:00:00.123"), at("2015-02-03T10:00:00.124")),
        ),
        ("0001-01-01", "9999", (at("0001-01-01"), 253_402_300_800_000)),
    ],
)
def test_a_period_end_is_inclusive_at_its_precision(
    start: str, end: str, expected: tuple[int, int]
) -> None:
    resource = raw("notTime")
    resource["provision"]["period"] = {"start": start, "end": end}
    provision = from_fhir(resource, resolve).provision
    assert provision is not None and provision.period == Period(*expected)
    again = from_fhir(to_fhir(from_fhir(resource, resolve)), resolve).provision
    assert again is not None and again.period == Period(*expected)


def test_the_exported_resource_is_plain_json() -> None:
    exported = to_fhir(from_fhir(raw("pkb"), {**REFERENCES, "Patient/example": PATIENT}.get))
    assert json.loads(json.dumps(exported)) == copy.deepcopy(exported)
