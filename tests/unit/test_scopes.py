"""SMART App Launch scopes (medledger.core.auth.scopes)."""

from __future__ import annotations

import pytest

from medledger.core.auth.scopes import parse_scopes
from medledger.errors import InvalidInputError


@pytest.mark.parametrize(
    ("scope", "resource", "interaction", "context"),
    [
        ("patient/Observation.rs", "Observation", "r", "patient"),
        ("patient/Observation.rs", "Observation", "s", "patient"),
        ("patient/Observation.rs", "Observation", "c", None),
        ("patient/Observation.rs", "Condition", "r", None),
        ("user/*.cruds", "Condition", "d", "user"),
        ("user/*.read", "Condition", "s", "user"),
        ("user/*.read", "Condition", "u", None),
        ("user/Observation.write", "Observation", "c", "user"),
        ("user/Observation.write", "Observation", "r", None),
        ("system/*.*", "Patient", "d", "system"),
        ("patient/Observation.r user/Observation.s", "Observation", "s", "user"),
        ("openid fhirUser", "Observation", "r", None),
        ("", "Observation", "r", None),
    ],
)
def test_what_a_scope_allows(
    scope: str, resource: str, interaction: str, context: str | None
) -> None:
    assert parse_scopes(scope).allows(resource, interaction) == context  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scope",
    [
        "patient/Observation.rs?category=laboratory",  # would widen access if ignored
        "patient/Observation.sr",  # out of order
        "patient/Observation.",
        "admin/Observation.rs",
        "patient/observation.rs",
        "x" * 5000,
        " ".join(["openid"] * 65),
    ],
)
def test_malformed_scopes_are_refused(scope: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_scopes(scope)


def test_round_trip() -> None:
    scopes = parse_scopes("user/Observation.read patient/*.cruds openid")
    assert parse_scopes(str(scopes)) == scopes
