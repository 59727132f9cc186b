"""The consent policy form: what it refuses (each limit, unknown fields, wrong types, bad DIDs)
and its JSON round trip."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings

from medledger.core.consent.limits import LIMITS, MAX_TIME_MS
from medledger.core.consent.model import (
    ActorRule,
    Consent,
    DataRef,
    Period,
    Provision,
    parse_consent,
)
from medledger.errors import InvalidInputError
from tests.unit.consent.fixtures import DOCTOR, GHH, NURSE, PATIENT, consent
from tests.unit.consent.strategies import consents

LOINC = "http://loinc.org|59284-0"


def full() -> Consent:
    return consent(
        Provision(
            type="deny",
            period=Period(0, 10_000),
            actors=(ActorRule("CST", GHH), ActorRule("PRCP", GHH, "physician")),
            actions=frozenset({"access", "correct"}),
            security_labels=frozenset({"R", "PSY"}),
            purposes=frozenset({"TREAT"}),
            classes=frozenset({"Observation", "application/hl7-cda+xml"}),
            codes=frozenset({LOINC}),
            data_period=Period(None, 5),
            data=(DataRef("instance", "Observation/rec-1"),),
            provisions=(
                Provision(type="permit", actors=(ActorRule("PRCP", practitioner_role="nurse"),)),
            ),
        ),
        categories=(LOINC,),
        performers=(PATIENT,),
        organizations=(GHH,),
        policy_rule="http://terminology.hl7.org/CodeSystem/v3-ActCode|OPTIN",
        date_time_ms=1_447_804_800_000,
    )


def rejects(obj: dict[str, Any], parameter: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_consent(obj)
    assert info.value.parameter == parameter, str(info.value)
    assert str(info.value).startswith(parameter)


def test_json_round_trip_of_a_full_consent() -> None:
    c = full()
    assert parse_consent(c.to_json()) == c
    assert c.to_json()["provision"]["actions"] == ["access", "correct"]  # type: ignore[index]


@settings(max_examples=100, deadline=None)
@given(consents())
def test_json_round_trip(c: Consent) -> None:
    assert parse_consent(c.to_json()) == c


def test_paths_name_each_provision() -> None:
    assert [path for path, _ in full().provisions()] == ["provision", "provision.provision[0]"]


@pytest.mark.parametrize(
    ("mutate", "parameter"),
    [
        (lambda o: o.pop("status"), "status"),
        (lambda o: o.update(text="P. van de Heuvel"), "text"),
        (lambda o: o["provision"].update(note="x"), "provision.note"),
        (lambda o: o["provision"].pop("codes"), "provision.codes"),
        (
            lambda o: o["provision"]["actors"][0].update(display="Dr X"),
            "provision.actors[0].display",
        ),
        (lambda o: o["provision"]["period"].update(start="2015"), "provision.period.start"),
        (lambda o: o["provision"]["data"][0].pop("meaning"), "provision.data[0].meaning"),
    ],
)
def test_unknown_or_missing_fields_are_refused(mutate: Any, parameter: str) -> None:
    obj = copy.deepcopy(full().to_json())
    mutate(obj)
    rejects(obj, parameter)


@pytest.mark.parametrize(
    ("mutate", "parameter"),
    [
        (lambda o: o.update(consent_id="a/b"), "consent_id"),
        (lambda o: o.update(consent_id="x" * 65), "consent_id"),
        (lambda o: o.update(patient="did:key:z6Mkfake"), "patient"),
        (lambda o: o.update(patient="Patient/f001"), "patient"),
        (lambda o: o.update(status="revoked"), "status"),
        (lambda o: o.update(scope="everything"), "scope"),
        (lambda o: o.update(categories="http://loinc.org|1"), "categories"),
        (lambda o: o.update(categories=["no system"]), "categories"),
        (lambda o: o.update(categories=[]), "categories"),
        (lambda o: o.update(performers=["Dr Who"]), "performers"),
        (lambda o: o.update(organizations=[GHH, GHH]), "organizations"),
        (lambda o: o.update(policy_rule=7), "policy_rule"),
        (lambda o: o.update(date_time_ms=True), "date_time_ms"),
        (lambda o: o.update(date_time_ms="2015-11-18"), "date_time_ms"),
        (lambda o: o.update(provision=[]), "provision"),
        (lambda o: o["provision"].update(type="maybe"), "provision.type"),
        (lambda o: o["provision"].update(actions=["delete"]), "provision.actions"),
        (lambda o: o["provision"].update(actions=["access", "access"]), "provision.actions"),
        (
            lambda o: o["provision"].update(security_labels=["TOPSECRET"]),
            "provision.security_labels",
        ),
        (lambda o: o["provision"].update(purposes=["CURIOSITY"]), "provision.purposes"),
        (lambda o: o["provision"].update(classes=["observation"]), "provision.classes"),
        (lambda o: o["provision"].update(codes=["59284-0"]), "provision.codes"),
        (lambda o: o["provision"].update(codes=[f"http://x|{'9' * 65}"]), "provision.codes"),
        (lambda o: o["provision"]["actors"][0].update(role="FRIEND"), "provision.actors[0].role"),
        (
            lambda o: o["provision"]["actors"][0].update(reference="did:web:example.org"),
            "provision.actors[0].reference",
        ),
        (
            lambda o: o["provision"]["actors"][1].update(practitioner_role="surgeon"),
            "provision.actors[1].practitioner_role",
        ),
        (
            lambda o: o["provision"]["actors"][0].update(practitioner_role="physician"),
            "provision.actors[0].practitioner_role",
        ),
        (
            lambda o: o["provision"]["actors"][1].update(reference=None, practitioner_role=None),
            "provision.actors[1].reference",
        ),
        (lambda o: o["provision"]["period"].update(start_ms=10_000), "provision.period.end_ms"),
        (
            lambda o: o["provision"]["period"].update(start_ms=None, end_ms=None),
            "provision.period.start_ms",
        ),
        (
            lambda o: o["provision"]["period"].update(end_ms=MAX_TIME_MS + 1),
            "provision.period.end_ms",
        ),
        (lambda o: o["provision"]["data"][0].update(meaning="all"), "provision.data[0].meaning"),
        (
            lambda o: o["provision"]["data"][0].update(reference="http://x/Observation/1"),
            "provision.data[0].reference",
        ),
        (
            lambda o: o["provision"]["provisions"][0].update(type=1),
            "provision.provisions[0].type",
        ),
    ],
)
def test_ill_typed_or_out_of_vocabulary_fields_are_refused(mutate: Any, parameter: str) -> None:
    obj = copy.deepcopy(full().to_json())
    mutate(obj)
    rejects(obj, parameter)


def _leaf() -> dict[str, Any]:
    return Provision(type="permit").to_json()


def test_list_limit() -> None:
    obj = copy.deepcopy(full().to_json())
    obj["categories"] = [f"http://loinc.org|{i}" for i in range(LIMITS.max_items + 1)]
    rejects(obj, "categories")
    obj = copy.deepcopy(full().to_json())
    obj["provision"]["data"] = [  # type: ignore[index]
        {"meaning": "instance", "reference": f"Observation/{i}"}
        for i in range(LIMITS.max_items + 1)
    ]
    rejects(obj, "provision.data")


def test_depth_limit() -> None:
    node = _leaf()
    for _ in range(LIMITS.max_depth - 1):
        parent = _leaf()
        parent["provisions"] = [node]
        node = parent
    obj = consent(None).to_json()
    obj["provision"] = node
    assert parse_consent(obj).provision.depth == LIMITS.max_depth  # type: ignore[union-attr]
    deeper = _leaf()
    deeper["provisions"] = [node]
    obj["provision"] = deeper
    rejects(obj, "provision.provisions[0].provisions[0].provisions[0].provisions")


def test_provision_count_limit_is_checked_while_reading() -> None:
    """A hostile document of 32^4 provisions is refused after reading 65 of them."""
    node = _leaf()
    for _ in range(LIMITS.max_depth - 1):
        parent = _leaf()
        parent["provisions"] = [node] * LIMITS.max_items
        node = parent
    obj = consent(None).to_json()
    obj["provision"] = node
    with pytest.raises(InvalidInputError, match="at most 64 provisions"):
        parse_consent(obj)


def test_constructors_enforce_the_same_rules() -> None:
    with pytest.raises(InvalidInputError) as info:
        Provision(actions=frozenset({"delete"}))
    assert info.value.parameter == "actions"
    with pytest.raises(InvalidInputError):
        Provision(provisions=tuple(Provision() for _ in range(LIMITS.max_items + 1)))
    with pytest.raises(InvalidInputError):
        ActorRule("AUT", practitioner_role="physician")
    with pytest.raises(InvalidInputError):
        Consent("c", PATIENT, "active", "patient-privacy", performers=(NURSE, NURSE))
    with pytest.raises(InvalidInputError):
        Provision(actors=(ActorRule("PRCP", DOCTOR), ActorRule("PRCP", DOCTOR)))
    deep = Provision()
    for _ in range(LIMITS.max_depth - 1):
        deep = Provision(provisions=(deep,))
    with pytest.raises(InvalidInputError):
        Provision(provisions=(deep,))


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        parse_consent([])  # type: ignore[arg-type]
