"""The twelve HL7 FHIR R4 Consent examples (tests/vectors/hl7-r4-consent, CC0): each imports,
exports, validates, re-imports to the same consent, and decides what its narrative says --
or, where its encoding contradicts its narrative, what the encoding says (ADR 0013, "the HL7
examples").

The Canadian "not*" examples withdraw consent from a default of implied consent for care; we
deny by default, so they are evaluated next to ``IMPLIED``, an explicit permit standing in for
that default: "the named one denied, another permitted" is then a deny overriding a permit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent as FhirConsent

from medledger.core.consent.decision import Match
from medledger.core.consent.fhir import from_fhir, to_fhir
from medledger.core.consent.model import ActorRule, Consent, Period, Provision
from medledger.core.consent.vocab import ProvisionType
from tests.unit.consent.fixtures import (
    CLINIC,
    DOCTOR,
    GHH,
    NURSE,
    PATIENT,
    RELATIVE,
    consent,
    decide,
    did,
    request,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "hl7-r4-consent"
XCDA_AUTHOR = did("practitioner:xcda-author")
REFERENCES = {
    "Patient/f001": PATIENT,
    "Patient/72": PATIENT,
    "Patient/xcda": PATIENT,
    "Organization/f001": GHH,
    "Practitioner/f204": NURSE,
    "Practitioner/13": DOCTOR,
    "Practitioner/xcda-author": XCDA_AUTHOR,
    "RelatedPerson/peter": RELATIVE,
}
#: Patient/example is the patient in pkb, and the person given access in grantor.
EXAMPLE_PATIENT = {"pkb": PATIENT, "grantor": RELATIVE}
#: The root type each narrative intends where the example states none (FHIR R4: the policy's).
ROOT_TYPE: dict[str, ProvisionType | None] = {
    "basic": "permit",  # "Authorize Normal access for Treatment"
    "grantor": "permit",  # "read-only access" for the representative
    "pkb": "permit",  # sharing with Good Health
    "signature": "permit",  # OPTIN for Practitioner/13
    "Out": "deny",  # "no data at the Good Health Psychiatric Hospital available"
    "notAuthor": "deny",
    "notThem": "deny",
    "notThis": "deny",
    "notTime": "deny",
    "notOrg": None,  # states deny itself
    "Emergency": None,  # an untyped root scoping its nested deny
    "smartonfhir": None,  # an untyped root scoping its nested permit
}
IMPLIED = consent(Provision(type="permit"), consent_id="implied-care")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (VECTORS / f"Consent-consent-example-{name}.json").read_text()
    )
    return data


def load(name: str) -> Consent:
    table = {**REFERENCES, "Patient/example": EXAMPLE_PATIENT.get(name, PATIENT)}
    return from_fhir(raw(name), table.get, root_type=ROOT_TYPE[name])


@pytest.mark.parametrize("name", sorted(ROOT_TYPE))
def test_each_example_imports_exports_validates_and_reimports(name: str) -> None:
    imported = load(name)
    exported = to_fhir(imported)
    FhirConsent.model_validate(exported)
    assert from_fhir(exported, lambda _: None) == imported
    assert json.loads(json.dumps(exported)) == exported
    text = json.dumps(imported.to_json())
    for phi in ("van de Heuvel", "Fictive Nurse", "lawyer speak", "Good Health Clinic", "<div"):
        assert phi not in text and phi not in json.dumps(exported)


def test_all_twelve_examples_are_covered() -> None:
    names = {
        p.name.removeprefix("Consent-consent-example-").removesuffix(".json")
        for p in VECTORS.glob("*.json")
    }
    assert names == set(ROOT_TYPE)


def check(consents: list[Consent], now: int, cases: list[tuple[dict[str, Any], bool, str]]) -> None:
    for overrides, permit, reason in cases:
        decision = decide(request(**overrides), consents, now)
        assert (decision.permit, decision.reasons[0]) == (permit, reason), overrides
        if len(decision.reasons) > 1:
            assert reason == "no-matching-provision"


def test_basic_authorizes_normal_access_until_2016() -> None:
    basic = load("basic")
    check(
        [basic],
        at("2015-06-01"),
        [
            ({}, True, "consent-permit"),
            ({"actor": NURSE, "actor_org": GHH, "action": "use"}, True, "consent-permit"),
            ({"security_labels": frozenset({"R"})}, False, "no-matching-provision"),
            ({"security_labels": frozenset({"PSY"})}, False, "no-matching-provision"),
        ],
    )
    assert decide(request(security_labels=frozenset({"R"})), [basic], at("2015-06-01")).reasons == (
        "no-matching-provision",
        "security-label-above-ceiling",
    )
    # FHIR's end "2016-01-01" includes that whole day.
    assert decide(request(), [basic], at("2016-01-01T23:59:59")).permit
    expired = decide(request(), [basic], at("2016-01-02"))
    assert expired.reasons == ("no-matching-provision", "consent-expired")


def test_not_them_denies_the_named_nurse_only() -> None:
    consents = [load("notThem"), IMPLIED]
    check(
        consents,
        at("2016-06-01"),
        [
            (
                {"actor": NURSE, "actor_org": GHH, "actor_roles": frozenset({"nurse"})},
                False,
                "consent-deny",
            ),
            ({"actor": NURSE, "action": "correct"}, False, "consent-deny"),
            ({"actor": NURSE, "action": "use"}, True, "consent-permit"),  # only access, correct
            ({"actor": DOCTOR, "actor_org": GHH}, True, "consent-permit"),
        ],
    )
    decision = decide(request(actor=NURSE), consents, at("2016-06-01"))
    assert decision.matched == (Match("consent-example-notThem", "provision", "deny"),)


def test_not_org_denies_the_organization_and_its_practitioners() -> None:
    consents = [load("notOrg"), IMPLIED]
    check(
        consents,
        at("2016-06-01"),
        [
            ({"actor": DOCTOR, "actor_org": GHH}, False, "consent-deny"),
            ({"actor": GHH, "actor_org": GHH}, False, "consent-deny"),
            ({"actor": DOCTOR, "actor_org": CLINIC}, True, "consent-permit"),
            ({"actor": DOCTOR, "actor_org": GHH, "action": "disclose"}, True, "consent-permit"),
        ],
    )


@pytest.mark.parametrize("name", ["notAuthor", "Out"])
def test_records_held_by_good_health_are_withheld_from_everyone(name: str) -> None:
    consents = [load(name), IMPLIED]
    check(
        consents,
        at("2016-06-01"),
        [
            ({"record_custodian": GHH}, False, "consent-deny"),
            ({"record_custodian": GHH, "actor": NURSE, "actor_org": GHH}, False, "consent-deny"),
            ({"record_custodian": CLINIC}, True, "consent-permit"),
            ({"record_custodian": None}, False, "consent-deny"),  # unknown custodian: a deny holds
        ],
    )


def test_not_this_withholds_the_named_record() -> None:
    consents = [load("notThis"), IMPLIED]
    check(
        consents,
        at("2016-06-01"),
        [
            ({"record_ref": "Task/example3", "resource_type": "Task"}, False, "consent-deny"),
            ({"record_ref": "Observation/rec-1"}, True, "consent-permit"),
            ({"record_ref": None}, False, "consent-deny"),
        ],
    )


def test_not_time_as_encoded_denies_during_january_2015() -> None:
    """The narrative means data *from* a timeframe (``dataPeriod``); the example encodes when
    the rule is in force (``period``): during January 2015 it denies everything."""
    consents = [load("notTime"), IMPLIED]
    assert not decide(request(), consents, at("2015-01-15")).permit
    assert not decide(request(), consents, at("2015-02-01T12:00:00")).permit  # end day included
    assert decide(request(), consents, at("2015-02-02")).permit


def test_not_time_as_intended_withholds_data_from_the_timeframe() -> None:
    encoded = load("notTime")
    assert encoded.provision is not None
    intended = replace(
        encoded,
        provision=replace(encoded.provision, period=None, data_period=encoded.provision.period),
    )
    check(
        [intended, IMPLIED],
        at("2024-06-01"),
        [
            ({"data_time_ms": at("2015-01-20")}, False, "consent-deny"),
            ({"data_time_ms": at("2015-03-01")}, True, "consent-permit"),
            ({"data_time_ms": None}, False, "consent-deny"),
        ],
    )


def test_emergency_as_encoded_denies_even_emergency_treatment() -> None:
    """Its nested deny restates the root's actor without narrowing it, so wherever the root
    applies (records held by Good Health, purpose ETREAT) the deny decides."""
    consents = [load("Emergency"), IMPLIED]
    check(
        consents,
        at("2016-06-01"),
        [
            ({"purpose": "ETREAT"}, False, "consent-deny"),
            ({"purpose": "TREAT"}, True, "consent-permit"),  # the root does not apply
        ],
    )
    assert decide(request(purpose="ETREAT"), consents, at("2016-06-01")).matched == (
        Match("consent-example-Emergency", "provision.provision[0]", "deny"),
    )


def test_emergency_as_intended_permits_emergency_treatment_only() -> None:
    """The narrative: deny Good Health's data, except for emergency treatment (and BTG, which
    is-a ETREAT)."""
    intended = consent(
        Provision(
            type="deny",
            actors=(ActorRule("CST", GHH),),
            provisions=(Provision(type="permit", purposes=frozenset({"ETREAT"})),),
        ),
        consent_id="emergency-intended",
    )
    check(
        [intended, IMPLIED],
        at("2016-06-01"),
        [
            ({"purpose": "ETREAT"}, True, "consent-permit"),
            ({"purpose": "BTG"}, True, "consent-permit"),
            ({"purpose": "TREAT"}, False, "consent-deny"),
            ({"purpose": "HRESCH"}, False, "consent-deny"),
            ({"purpose": "TREAT", "record_custodian": CLINIC}, True, "consent-permit"),
        ],
    )


def test_grantor_gives_the_representative_read_only_access() -> None:
    grantor = load("grantor")
    check(
        [grantor],
        at("2016-06-01"),
        [
            (
                {"actor": RELATIVE, "actor_org": None, "actor_roles": frozenset()},
                True,
                "consent-permit",
            ),
            (
                {"actor": RELATIVE, "actor_org": None, "action": "disclose"},
                False,
                "no-matching-provision",
            ),
            (
                {"actor": RELATIVE, "actor_org": None, "record_custodian": CLINIC},
                False,
                "no-matching-provision",
            ),
            ({"actor": DOCTOR}, False, "no-matching-provision"),
        ],
    )


def test_pkb_shares_normal_records_with_good_health() -> None:
    """Its nested provisions state no type (R4 requires one), so they decide nothing."""
    pkb = load("pkb")
    check(
        [pkb],
        at("2016-06-01"),
        [
            ({"actor_org": GHH}, True, "consent-permit"),
            ({"actor_org": GHH, "security_labels": frozenset({"N"})}, True, "consent-permit"),
            (
                {"actor_org": GHH, "security_labels": frozenset({"PSY"})},
                False,
                "no-matching-provision",
            ),
            ({"actor_org": GHH, "action": "use"}, False, "no-matching-provision"),
            ({"actor_org": CLINIC}, False, "no-matching-provision"),
        ],
    )


def test_signature_permits_practitioner_13_for_a_year() -> None:
    signature = load("signature")
    check(
        [signature],
        at("2016-06-01"),
        [
            ({"actor": DOCTOR}, True, "consent-permit"),
            ({"actor": NURSE}, False, "no-matching-provision"),
        ],
    )
    # The nested permit names a CDA MIME class, which our records cannot show: it never applies.
    assert decide(request(actor=DOCTOR), [signature], at("2016-06-01")).matched == (
        Match("consent-example-signature", "provision", "permit"),
    )
    late = decide(request(actor=DOCTOR), [signature], at("2016-10-11"))
    assert late.reasons == ("no-matching-provision", "consent-expired")
    early = decide(request(actor=DOCTOR), [signature], at("2015-10-09"))
    assert early.reasons == ("no-matching-provision", "consent-not-yet-valid")


def test_smartonfhir_permits_medication_requests_for_thirty_minutes() -> None:
    smart = load("smartonfhir")
    start = at("2016-06-23T07:02:33")  # 17:02:33+10:00
    medication = {"resource_type": "MedicationRequest", "record_ref": "MedicationRequest/m1"}
    check(
        [smart],
        start + 60_000,
        [
            (medication, True, "consent-permit"),
            ({**medication, "action": "correct"}, False, "no-matching-provision"),
            ({}, False, "no-matching-provision"),
        ],
    )
    assert decide(request(**medication), [smart], start).matched == (
        Match("consent-example-smartonfhir", "provision.provision[0]", "permit"),
    )
    after = decide(request(**medication), [smart], start + 30 * 60_000 + 1000)
    assert after.reasons == ("no-matching-provision", "consent-expired")


def test_a_period_of_the_basic_example_is_read_with_its_precision() -> None:
    basic = load("basic")
    assert basic.provision is not None
    assert basic.provision.period == Period(at("1964-01-01"), at("2016-01-02"))
