"""Hypothesis strategies for consents and requests, drawn from small pools so that random
requests often meet random provisions (otherwise nearly every decision is deny-by-default)."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from medledger.core.consent.decision import ConsentRequest
from medledger.core.consent.model import ActorRule, Consent, DataRef, Period, Provision
from medledger.core.consent.vocab import (
    ACTIONS,
    CONFIDENTIALITY,
    SENSITIVITY,
)
from tests.unit.consent.fixtures import CLINIC, DOCTOR, GHH, NURSE, OTHER_PATIENT, PATIENT, RELATIVE

ORGS = (GHH, CLINIC)
PEOPLE = (NURSE, DOCTOR, RELATIVE)
DIDS = ORGS + PEOPLE
PRACTITIONER_ROLES = ("physician", "nurse", "emergency-physician")
CLASSES = ("Observation", "MedicationRequest", "Task", "application/hl7-cda+xml")
CODES = ("http://loinc.org|34133-9", "http://loinc.org|18842-5", "http://snomed.info/sct|1")
RECORDS = ("Observation/rec-1", "Observation/rec-2", "Task/example3")
TIMES = (0, 1_000, 2_000, 3_000, 4_000)
LABELS = (*CONFIDENTIALITY, *sorted(SENSITIVITY))


def small_sets(
    items: tuple[str, ...] | frozenset[str], max_size: int = 2
) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(sorted(items)), max_size=max_size)


@st.composite
def periods(draw: st.DrawFn) -> Period | None:
    bounds = draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True))
    start, end = sorted(bounds)
    shape = draw(st.sampled_from(("none", "closed", "open-start", "open-end")))
    if shape == "none":
        return None
    if shape == "open-start":
        return Period(None, end)
    if shape == "open-end":
        return Period(start, None)
    return Period(start, end)


@st.composite
def actor_rules(draw: st.DrawFn) -> ActorRule:
    role = draw(st.sampled_from(("PRCP", "IRCP", "DELEGATEE", "GRANTEE", "CST", "AUT", "INF")))
    if role in ("CST", "AUT", "INF"):
        return ActorRule(role, draw(st.sampled_from(DIDS)))
    reference = draw(st.none() | st.sampled_from(DIDS))
    practitioner_role = draw(st.none() | st.sampled_from(PRACTITIONER_ROLES))
    if reference is None and practitioner_role is None:
        reference = draw(st.sampled_from(DIDS))
    return ActorRule(role, reference, practitioner_role)


def sometimes(strategy: st.SearchStrategy[T], empty: T) -> st.SearchStrategy[T]:
    """Mostly ``empty``: a random provision stating every constraint would never apply."""
    return st.one_of(st.just(empty), st.just(empty), st.just(empty), strategy)


def provisions(depth: int = 1) -> st.SearchStrategy[Provision]:
    """Provisions up to 3 levels deep (built once per depth: building strategies is slow)."""
    return _PROVISIONS[depth]


def _provisions(depth: int) -> st.SearchStrategy[Provision]:
    children: st.SearchStrategy[tuple[Provision, ...]] = (
        st.just(()) if depth >= 3 else st.lists(_PROVISIONS[depth + 1], max_size=2).map(tuple)
    )
    return st.builds(
        Provision,
        type=st.sampled_from((None, "permit", "permit", "deny")),
        period=sometimes(periods(), None),
        actors=sometimes(
            st.lists(actor_rules(), min_size=1, max_size=2, unique=True).map(tuple), ()
        ),
        actions=sometimes(small_sets(ACTIONS, 2), frozenset()),
        security_labels=sometimes(small_sets(LABELS, 2), frozenset()),
        purposes=sometimes(
            small_sets(("TREAT", "ETREAT", "HRESCH", "BTG", "PUBHLTH"), 1), frozenset()
        ),
        classes=sometimes(small_sets(CLASSES, 2), frozenset()),
        codes=sometimes(small_sets(CODES, 2), frozenset()),
        data_period=sometimes(periods(), None),
        data=sometimes(
            st.lists(
                st.builds(
                    DataRef, st.sampled_from(("instance", "related")), st.sampled_from(RECORDS)
                ),
                min_size=1,
                max_size=2,
                unique=True,
            ).map(tuple),
            (),
        ),
        provisions=children,
    )


_PROVISIONS: dict[int, st.SearchStrategy[Provision]] = {}
for _depth in (3, 2, 1):
    _PROVISIONS[_depth] = _provisions(_depth)
_ROOTS = st.none() | _PROVISIONS[1]


@st.composite
def consents(draw: st.DrawFn, consent_id: str | None = None) -> Consent:
    return Consent(
        consent_id=consent_id or draw(st.sampled_from(("c1", "c2", "c3", "c4", "c5"))),
        patient=draw(st.sampled_from((PATIENT, PATIENT, PATIENT, OTHER_PATIENT))),
        status=draw(st.sampled_from(("active", "active", "active", "inactive", "draft"))),
        scope=draw(st.sampled_from(("patient-privacy", "research", "treatment"))),
        categories=tuple(draw(st.frozensets(st.sampled_from(CODES), min_size=1, max_size=2))),
        performers=tuple(draw(small_sets(PEOPLE, 1))),
        organizations=tuple(draw(small_sets(ORGS, 1))),
        policy_rule=draw(st.none() | st.sampled_from(CODES)),
        date_time_ms=draw(st.none() | st.sampled_from(TIMES)),
        provision=draw(_ROOTS),
    )


@st.composite
def consent_sets(draw: st.DrawFn, max_size: int = 5) -> list[Consent]:
    size = draw(st.integers(0, max_size))
    return [draw(consents(consent_id=f"c{i}")) for i in range(size)]


T = TypeVar("T")


@st.composite
def requests(draw: st.DrawFn) -> ConsentRequest:
    return ConsentRequest(
        actor=draw(st.sampled_from(DIDS)),
        actor_org=draw(st.none() | st.sampled_from(ORGS)),
        actor_roles=draw(small_sets(PRACTITIONER_ROLES, 2)),
        patient=draw(st.sampled_from((PATIENT, PATIENT, PATIENT, OTHER_PATIENT))),
        action=draw(st.sampled_from(sorted(ACTIONS))),
        purpose=draw(st.sampled_from(("TREAT", "ETREAT", "BTG", "HRESCH", "CLINTRCH", "HMARKT"))),
        resource_type=draw(
            st.none() | st.sampled_from(("Observation", "MedicationRequest", "Task"))
        ),
        security_labels=draw(sometimes(small_sets(LABELS, 2), frozenset())),
        codes=draw(small_sets(CODES, 2)),
        data_time_ms=draw(st.none() | st.sampled_from(TIMES) | st.integers(-10, 5_000)),
        record_ref=draw(st.none() | st.sampled_from(RECORDS)),
        record_custodian=draw(st.none() | st.sampled_from(ORGS)),
        record_author=draw(st.none() | st.sampled_from(PEOPLE)),
    )


#: Instants around the period bounds.
NOWS = st.sampled_from(TIMES) | st.integers(-10, 5_000)
