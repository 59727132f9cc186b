"""The access event (medledger.core.audit.event): invariants, JSON form, leaf bytes."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.core.audit.event import (
    ACTIONS,
    DECISIONS,
    MAX_JUSTIFICATION_CHARS,
    AccessEvent,
    new_event_id,
    parse_event,
)
from medledger.core.ledger.canonical import canonical
from medledger.errors import InvalidInputError
from tests.unit.audit.events import DOCTOR, PATIENT, break_glass, did, event_id, make_event


# --- ids --------------------------------------------------------------------------------------
@given(st.binary(min_size=16, max_size=16))
def test_event_id_is_lowercase_unpadded_base32_of_16_bytes(raw: bytes) -> None:
    text = new_event_id(raw)
    assert len(text) == 26
    assert base64.b32decode(text.upper() + "======") == raw
    make_event(event_id=text)  # and the constructor accepts it


@pytest.mark.parametrize("size", [0, 15, 17])
def test_event_id_takes_exactly_16_bytes(size: int) -> None:
    with pytest.raises(InvalidInputError, match="16 random bytes"):
        new_event_id(bytes(size))


@pytest.mark.parametrize(
    "bad",
    [
        event_id(1).upper(),  # one spelling: lowercase
        event_id(1)[:-1],  # 25 characters
        event_id(1) + "a",
        event_id(1)[:-1] + "b",  # last character with non-zero padding bits
        "0" * 26,  # not base32
    ],
)
def test_event_id_has_one_spelling(bad: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        make_event(event_id=bad)
    assert e.value.parameter == "event_id"


# --- invariants -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time_ms", -1),
        ("time_ms", True),
        ("time_ms", 2**53),
        ("node", "did:web:hospital.example"),
        ("actor", "Dr. Gregory House"),  # a name is never an identifier here
        ("actor_org", "not a did"),
        ("patient", None),
        ("action", "write"),
        ("resource_type", "observation"),
        ("record_id", "a/b"),
        ("record_id", "x" * 65),
        ("version", 0),
        ("version", "1"),
        ("purpose", "treat"),
        ("purpose", "T"),
        ("decision", "allow"),
        ("reasons", ()),
        ("reasons", ("No consent",)),
        ("reasons", ("a", "a")),
        ("reasons", tuple(f"r{i}" for i in range(17))),
        ("reasons", ["consent-permit"]),  # a tuple, not a list
        ("consents", ("consent 1",)),
        ("consents", tuple(f"c{i}" for i in range(33))),
        ("justification", "only for break-glass"),
    ],
)
def test_an_invalid_field_is_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(InvalidInputError) as e:
        make_event(**{field: value})
    assert e.value.parameter == field


def test_a_version_needs_a_record() -> None:
    with pytest.raises(InvalidInputError) as e:
        make_event(record_id=None, version=3)
    assert e.value.parameter == "version"


def test_a_request_about_the_patient_as_a_whole_names_no_record() -> None:
    event = make_event(action="search", resource_type=None, record_id=None, version=None)
    assert parse_event(event.to_json()) == event


@pytest.mark.parametrize(
    "justification",
    [
        None,
        "",
        "   ",
        " padded ",
        "x" * (MAX_JUSTIFICATION_CHARS + 1),
        "bell\x07",
        "lone \ud800 surrogate",
    ],
)
def test_break_glass_needs_a_justification_of_plain_text(justification: str | None) -> None:
    with pytest.raises(InvalidInputError) as e:
        break_glass(justification=justification)
    assert e.value.parameter == "justification"


def test_a_justification_may_span_lines_and_scripts() -> None:
    text = "Patient unresponsive;\nno consent on file\tcalled at 03:10 — urgence"
    event = break_glass(justification=text)
    assert event.justification == text
    assert parse_event(json.loads(event.leaf_bytes())) == event
    assert len(break_glass(justification="x" * MAX_JUSTIFICATION_CHARS).justification or "") == 500


def test_the_justification_is_not_in_the_repr() -> None:
    assert "Unconscious" not in repr(break_glass())


@pytest.mark.parametrize("decision", DECISIONS)
def test_permitted_is_permit_or_break_glass(decision: str) -> None:
    event = break_glass() if decision == "break-glass" else make_event(decision=decision)
    assert event.permitted == (decision != "deny")


# --- JSON form and leaf bytes -----------------------------------------------------------------
def test_to_json_holds_every_field_with_kind_and_version() -> None:
    obj = make_event().to_json()
    assert obj["kind"] == "access-event"
    assert obj["v"] == 1
    assert obj["justification"] is None
    assert len(obj) == 17


@pytest.mark.parametrize("event", [make_event(), break_glass(), make_event(actor_org=None)])
def test_parse_event_round_trips(event: AccessEvent) -> None:
    assert parse_event(event.to_json()) == event
    assert parse_event(json.loads(event.leaf_bytes())) == event


def test_parse_event_refuses_an_unknown_field_by_name() -> None:
    obj = {**make_event().to_json(), "patient_name": "Jane Doe"}
    with pytest.raises(InvalidInputError, match="unknown field") as e:
        parse_event(obj)
    assert e.value.parameter == "patient_name"


@pytest.mark.parametrize("field", ["event_id", "reasons", "justification", "kind", "v"])
def test_parse_event_names_a_missing_field(field: str) -> None:
    obj = make_event().to_json()
    del obj[field]
    with pytest.raises(InvalidInputError, match="missing") as e:
        parse_event(obj)
    assert e.value.parameter == field


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "tx"), ("v", 2), ("v", True), ("reasons", "consent-permit"), ("consents", [1])],
)
def test_parse_event_refuses_wrong_kinds_and_versions(field: str, value: Any) -> None:
    obj = {**make_event().to_json(), field: value}
    with pytest.raises(InvalidInputError) as e:
        parse_event(obj)
    assert e.value.parameter == field


@pytest.mark.parametrize("obj", [None, [], "event", 1])
def test_parse_event_takes_an_object(obj: object) -> None:
    with pytest.raises(InvalidInputError):
        parse_event(obj)


_codes = st.lists(st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True),
                  max_size=4, unique=True)  # fmt: skip
_text = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters='\n\t"\\'),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(bool)
)


@given(
    n=st.integers(0, 2**40),
    action=st.sampled_from(ACTIONS),
    decision=st.sampled_from(DECISIONS),
    reasons=_codes.filter(bool),
    consents=st.lists(
        st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True), max_size=3, unique=True
    ),
    justification=_text,
    org=st.booleans(),
    version=st.one_of(st.none(), st.integers(1, 2**53 - 1)),
)
def test_leaf_bytes_are_the_canonical_json_of_the_event(
    n: int,
    action: str,
    decision: str,
    reasons: list[str],
    consents: list[str],
    justification: str,
    org: bool,
    version: int | None,
) -> None:
    event = make_event(
        n,
        action=action,
        decision=decision,
        reasons=tuple(reasons),
        consents=tuple(consents),
        justification=justification if decision == "break-glass" else None,
        actor_org=did(9) if org else None,
        version=version,
    )
    assert event.leaf_bytes() == canonical(event.to_json())
    assert parse_event(json.loads(event.leaf_bytes())) == event


def test_events_differ_in_leaf_bytes_when_any_field_differs() -> None:
    base = make_event()
    changed = [
        dataclasses.replace(base, time_ms=base.time_ms + 1),
        dataclasses.replace(base, actor=PATIENT),
        dataclasses.replace(base, patient=DOCTOR),
        dataclasses.replace(base, decision="deny"),
        dataclasses.replace(base, reasons=("no-consent",)),
    ]
    assert len({e.leaf_bytes() for e in [base, *changed]}) == len(changed) + 1
