"""``ConsentIndex``: a patient's consents compiled once, decisions in microseconds (ADR 0013).

What this module handles:

- ``ConsentIndex.build(consents)``: keeps the consents that count (active), per patient, and
  compiles each provision into a node holding only the checks it states, as closures over
  precomputed sets (the purposes it covers through the is-a hierarchy, its label ceiling ...);
- buckets each root provision by what its recipient actors name: a DID (a participant or an
  organization), a practitioner role, or nobody ("anyone"; those naming records are
  sub-bucketed by record reference), so a request only looks at the roots that can match it;
- ``ConsentIndex.evaluate(request, now_ms)``: the decision of ``decision.evaluate_consents``,
  exactly -- same permit, same matches, same reasons, near misses included (a consent
  outside the candidates fails a recipient check, which no near miss may fail).

A root provision outside every candidate bucket cannot apply: its recipient actors name
neither the requester, nor its organization, nor any of its roles. The Hypothesis oracle test
(tests/unit/consent/test_index.py) checks index == reference on random consent sets.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from medledger.core.consent.decision import (
    CONSENT_EXPIRED,
    CONSENT_NOT_YET_VALID,
    LABEL_ABOVE_CEILING,
    ConsentDecision,
    ConsentRequest,
    Match,
    combine,
    record_confidentiality,
)
from medledger.core.consent.model import Consent, Period, Provision
from medledger.core.consent.vocab import (
    ACTIVE,
    AUTHOR,
    CONFIDENTIALITY_RANK,
    CUSTODIAN,
    DEFAULT_CONFIDENTIALITY,
    SENSITIVITY,
    ProvisionType,
    purpose_ancestors,
)

_NORMAL_RANK: Final = CONFIDENTIALITY_RANK[DEFAULT_CONFIDENTIALITY]


@dataclass(slots=True)
class _Facts:
    """What every check of one evaluation shares: the request, the time, derived facts."""

    request: ConsentRequest
    now: int
    purposes: frozenset[str]
    confidentiality: int
    sensitivity: frozenset[str]


_Check = Callable[[_Facts], bool]


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled provision: ``checks`` are all it states; ``period``, ``labels`` and
    ``others`` split them the way near misses need (``decision.near_misses``)."""

    checks: tuple[_Check, ...]
    period: Period | None
    labels: _Check | None
    others: tuple[_Check, ...]
    type: ProvisionType | None
    path: str
    children: tuple[_Node, ...]

    def applies(self, facts: _Facts) -> bool:
        for check in self.checks:  # noqa: SIM110 -- all() over a generator is slower here
            if not check(facts):
                return False
        return True

    def misses(self, facts: _Facts, above: list[str], found: set[str]) -> None:
        """``decision._misses`` over compiled nodes."""
        for check in self.others:
            if not check(facts):
                return  # neither this provision nor an exception below it is a near miss
        failed = list(above)
        period = self.period
        if period is not None and not period.contains(facts.now):
            ended = period.end_ms is not None and facts.now >= period.end_ms
            failed.append(CONSENT_EXPIRED if ended else CONSENT_NOT_YET_VALID)
        label_failed = self.labels is not None and not self.labels(facts)
        if self.type == "permit" and (failed or label_failed):
            found.update(failed)
            if label_failed:
                found.add(LABEL_ABOVE_CEILING)
        if not label_failed:
            for child in self.children:
                child.misses(facts, failed, found)

    def decide(self, facts: _Facts) -> tuple[ProvisionType | None, list[str]]:
        """``decision._decide`` over compiled nodes."""
        denies: list[str] = []
        permits: list[str] = []
        for child in self.children:
            if child.applies(facts):
                kind, paths = child.decide(facts)
                if kind == "deny":
                    denies += paths
                elif kind == "permit":
                    permits += paths
        if denies:
            return "deny", denies
        if permits:
            return "permit", permits
        if self.type is not None:
            return self.type, [self.path]
        return None, []


# --- compiling one provision --------------------------------------------------------------


def _period(period: Period) -> _Check:
    start, end = period.start_ms, period.end_ms
    if start is None:
        return lambda f: f.now < end  # type: ignore[operator]  # a period states one side
    if end is None:
        return lambda f: start <= f.now
    return lambda f: start <= f.now < end


def _data_period(period: Period, deny: bool) -> _Check:
    def check(f: _Facts) -> bool:
        time = f.request.data_time_ms
        return deny if time is None else period.contains(time)

    return check


def _recipients(provision: Provision) -> _Check | None:
    rules = [a for a in provision.actors if a.kind not in (CUSTODIAN, AUTHOR)]
    if not rules:
        return None
    dids = frozenset(a.reference for a in rules if a.practitioner_role is None)
    roles = frozenset(a.practitioner_role for a in rules if a.reference is None)
    pairs = frozenset(
        (a.reference, a.practitioner_role) for a in rules if a.reference and a.practitioner_role
    )

    def check(f: _Facts) -> bool:
        r = f.request
        if r.actor in dids or r.actor_org in dids:
            return True
        if roles and not roles.isdisjoint(r.actor_roles):
            return True
        return bool(pairs) and any((r.actor_org, role) in pairs for role in r.actor_roles)

    return check


def _record_actor(provision: Provision, kind: str, deny: bool) -> _Check | None:
    allowed = frozenset(a.reference for a in provision.actors if a.kind == kind)
    if not allowed:
        return None
    if kind == CUSTODIAN:
        return lambda f: (
            deny if f.request.record_custodian is None else f.request.record_custodian in allowed
        )
    return lambda f: deny if f.request.record_author is None else f.request.record_author in allowed


def _labels(provision: Provision) -> _Check | None:
    named = provision.security_labels
    ranks = [CONFIDENTIALITY_RANK[x] for x in named if x in CONFIDENTIALITY_RANK]
    sensitivity = named & SENSITIVITY
    if provision.type == "permit":
        ceiling = max(ranks, default=_NORMAL_RANK)
        return lambda f: f.confidentiality <= ceiling and f.sensitivity <= sensitivity
    if not named:
        return None
    floor = min(ranks, default=len(CONFIDENTIALITY_RANK))
    return lambda f: f.confidentiality >= floor or not f.sensitivity.isdisjoint(sensitivity)


def _classes(provision: Provision, deny: bool) -> _Check:
    classes = provision.classes
    unknowable = any("/" in c for c in classes)

    def check(f: _Facts) -> bool:
        kind = f.request.resource_type
        if kind is not None and kind in classes:
            return True
        return deny and (kind is None or unknowable)

    return check


def _checks(provision: Provision) -> tuple[_Check | None, _Check | None, list[_Check]]:
    """The period check, the label check and the others ``provision`` states (cheapest and
    most selective first)."""
    deny = provision.type == "deny"
    checks: list[_Check | None] = [_recipients(provision)]
    if provision.actions:
        actions = provision.actions
        checks.append(lambda f: f.request.action in actions)
    if provision.data:
        refs = frozenset(d.reference for d in provision.data)
        checks.append(
            lambda f: deny if f.request.record_ref is None else f.request.record_ref in refs
        )
    if provision.purposes:
        purposes = provision.purposes
        checks.append(lambda f: not f.purposes.isdisjoint(purposes))
    checks += [
        _record_actor(provision, CUSTODIAN, deny),
        _record_actor(provision, AUTHOR, deny),
    ]
    if provision.classes:
        checks.append(_classes(provision, deny))
    if provision.codes:
        codes = provision.codes
        checks.append(lambda f: not codes.isdisjoint(f.request.codes))
    if provision.data_period is not None:
        checks.append(_data_period(provision.data_period, deny))
    period = None if provision.period is None else _period(provision.period)
    return period, _labels(provision), [c for c in checks if c is not None]


def _compile(provision: Provision, path: str) -> _Node:
    children = tuple(
        _compile(child, f"{path}.provision[{i}]") for i, child in enumerate(provision.provisions)
    )
    period, labels, others = _checks(provision)
    ordered = [*others[:1], *(c for c in (period, labels) if c is not None), *others[1:]]
    return _Node(
        tuple(ordered), provision.period, labels, tuple(others), provision.type, path, children
    )


# --- the index -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    consent: Consent
    root: _Node


@dataclass(slots=True)
class _PatientIndex:
    """One patient's counted consents, their roots bucketed by what can match a request."""

    counted: int = 0
    by_did: dict[str, list[_Entry]] = field(default_factory=dict)
    by_role: dict[str, list[_Entry]] = field(default_factory=dict)
    by_record: dict[str, list[_Entry]] = field(default_factory=dict)
    naming_records: list[_Entry] = field(default_factory=list)
    anyone: list[_Entry] = field(default_factory=list)

    def add(self, consent: Consent, root: Provision) -> None:
        entry = _Entry(consent, _compile(root, "provision"))
        recipients = [a for a in root.actors if a.kind not in (CUSTODIAN, AUTHOR)]
        for actor in recipients:
            if actor.reference is not None:  # a DID, or an organization (with a role or not)
                self.by_did.setdefault(actor.reference, []).append(entry)
            else:
                self.by_role.setdefault(actor.practitioner_role or "", []).append(entry)
        if recipients:
            return
        if root.data:
            self.naming_records.append(entry)
            for ref in {d.reference for d in root.data}:
                self.by_record.setdefault(ref, []).append(entry)
        else:
            self.anyone.append(entry)

    def candidates(self, request: ConsentRequest) -> list[_Entry]:
        """Every root that can apply to ``request`` (a few may appear twice)."""
        found = list(self.anyone)
        found += self.by_did.get(request.actor, ())
        if request.actor_org is not None and request.actor_org != request.actor:
            found += self.by_did.get(request.actor_org, ())
        for role in request.actor_roles:
            found += self.by_role.get(role, ())
        if request.record_ref is None:
            found += self.naming_records
        else:
            found += self.by_record.get(request.record_ref, ())
        return found


class ConsentIndex:
    """Consents compiled for fast decisions; ``evaluate`` == ``evaluate_consents``."""

    __slots__ = ("_patients",)

    def __init__(self, patients: dict[str, _PatientIndex]) -> None:
        self._patients = patients

    @classmethod
    def build(cls, consents: Sequence[Consent]) -> ConsentIndex:
        """Compile ``consents`` once (per consent set: rebuild when one changes)."""
        patients: dict[str, _PatientIndex] = {}
        for consent in consents:
            if consent.status != ACTIVE:
                continue
            patient = patients.setdefault(consent.patient, _PatientIndex())
            patient.counted += 1
            if consent.provision is not None:
                patient.add(consent, consent.provision)
        return cls(patients)

    def evaluate(self, request: ConsentRequest, now_ms: int) -> ConsentDecision:
        """Permit or deny ``request`` at ``now_ms``: exactly ``evaluate_consents``' answer."""
        patient = self._patients.get(request.patient)
        if patient is None:
            return combine((), consents_counted=False)
        facts = _Facts(
            request,
            now_ms,
            purpose_ancestors(request.purpose),
            record_confidentiality(request),
            request.security_labels & SENSITIVITY,
        )
        candidates = patient.candidates(request)
        matches: list[Match] = []
        for entry in candidates:
            if entry.root.applies(facts):
                kind, paths = entry.root.decide(facts)
                if kind is not None:
                    consent_id = entry.consent.consent_id
                    matches += [Match(consent_id, path, kind) for path in paths]
        if matches:
            return combine(matches, consents_counted=True)
        misses: set[str] = set()
        for entry in candidates:
            entry.root.misses(facts, [], misses)
        return combine((), True, misses)
