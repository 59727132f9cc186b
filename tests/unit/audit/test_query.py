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
        ("order", "sideways"),
        ("order", None),
        ("before", (1,)),
        ("before", (-1, 0)),
    ],
)
def test_an_invalid_parameter_is_refused_by_name(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"patient": PATIENT, field: value}
    with pytest.raises(InvalidInputError) as e:
        EventQuery(**fields)
    assert e.value.parameter == field


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"order": "newest", "after": (1, 0)}, "after"),
        ({"before": (1, 0)}, "before"),
        ({"order": "oldest", "before": (1, 0)}, "before"),
    ],
)
def test_a_cursor_of_the_other_order_is_refused(fields: dict[str, Any], parameter: str) -> None:
    """Newest first goes on ``before`` a position, oldest first ``after`` one: never mixed."""
    with pytest.raises(InvalidInputError) as e:
        EventQuery(PATIENT, **fields)
    assert e.value.parameter == parameter


def test_newest_first_with_its_cursor() -> None:
    query = EventQuery(PATIENT, order="newest", before=(3, 4))
    assert query.newest_first and query.after is None
    assert not EventQuery(PATIENT, after=(3, 4)).newest_first
