"""Listing queries (medledger.core.audit.query): every parameter checked when made."""

from __future__ import annotations

from typing import Any

import pytest

from medledger.core.audit.query import MAX_LIST_LIMIT, EventQuery
from medledger.errors import InvalidInputError
from tests.unit.audit.events import DOCTOR, PATIENT


def test_a_query_with_every_filter() -> None:
    query = EventQuery(PATIENT, since_ms=1, until_ms=2, actor=DOCTOR, decision="deny",
                       purpose="TREAT", after=(3, 4), limit=MAX_LIST_LIMIT)  # fmt: skip
    assert query.limit == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patient", "patient-1"),
        ("actor", "Dr. House"),
        ("decision", "maybe"),
        ("purpose", "treatment"),
        ("since_ms", -1),
        ("until_ms", "yesterday"),
        ("after", (1,)),
        ("after", (1, -2)),
        ("after", ("a", 1)),
        ("limit", 0),
        ("limit", MAX_LIST_LIMIT + 1),
        ("limit", True),
    ],
)
def test_an_invalid_parameter_is_refused_by_name(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"patient": PATIENT, field: value}
    with pytest.raises(InvalidInputError) as e:
        EventQuery(**fields)
    assert e.value.parameter == field
