"""The access decision over a patient's consents: the small reference evaluator (ADR 0013).

What this module handles, as numbered steps of ``evaluate_consents`` (FHIR R4 Consent §"Consent
Directives": a rule tree of provisions, each nested provision an exception to its parent):

1. keep the consents that count: ``status == "active"`` and the request's patient;
   none -> deny, ``no-consent``;
2. in each consent, find whether its root provision applies (``applies``: every constraint it
   states matches the request; a period outside ``now_ms`` does not);
3. where a provision applies, its applying exceptions decide before it -- the most specific
   applying typed provision wins, and among applying siblings a deny wins (``_decide``);
4. across consents, any applying deny overrides any permit; a permit alone permits;
5. nothing decided -> deny, ``no-matching-provision``, with the near misses that explain it
   (``consent-expired``, ``consent-not-yet-valid``, ``security-label-above-ceiling``).

This is the oracle: short and direct, a loop over every consent. ``index.ConsentIndex`` returns
exactly the same decisions fast. Not handled here: who may read what outside consent (the
patient, the custodian: ``core.access``), reading the clock, recording the decision.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from medledger.core.consent.model import ActorRule, Consent, Provision
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

#: Stable reason codes (kebab-case; never PHI).
CONSENT_PERMIT: Final = "consent-permit"
CONSENT_DENY: Final = "consent-deny"
NO_CONSENT: Final = "no-consent"
NO_MATCHING_PROVISION: Final = "no-matching-provision"
CONSENT_EXPIRED: Final = "consent-expired"
CONSENT_NOT_YET_VALID: Final = "consent-not-yet-valid"
LABEL_ABOVE_CEILING: Final = "security-label-above-ceiling"

#: Failing checks a near miss may have (the rest -- actor, action, purpose ... -- are not).
_RELAXABLE: Final = frozenset({CONSENT_EXPIRED, CONSENT_NOT_YET_VALID, LABEL_ABOVE_CEILING})
_OTHER: Final = "other"
_NORMAL_RANK: Final = CONFIDENTIALITY_RANK[DEFAULT_CONFIDENTIALITY]


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """One access to one record of ``patient``, as the access gate saw it.

    ``actor`` is the requester's DID, ``actor_org`` the organization it acts for and
    ``actor_roles`` its practitioner roles; ``action`` a consentaction code (reading is
    ``access``) and ``purpose`` a v3-ActReason code. The record: its ``resource_type``,
    ``security_labels`` (confidentiality and sensitivity codes; no confidentiality = N),
    ``codes`` (``system|code``), clinical time ``data_time_ms``, ``record_ref``
    (``Observation/rec-1``), ``record_custodian`` (the organization that holds it) and
    ``record_author``. None means the gate does not know (ADR 0013: unknown facts).
    Built by the gate from ledger state, so it is trusted to be well formed.
    """

    actor: str
    actor_org: str | None
    actor_roles: frozenset[str]
    patient: str
    action: str
    purpose: str
    resource_type: str | None
    security_labels: frozenset[str]
    codes: frozenset[str]
    data_time_ms: int | None
    record_ref: str | None
    record_custodian: str | None = None
    record_author: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class Match:
    """A provision that decided: its consent, its path (``provision.provision[1]``), its type."""

    consent_id: str
    path: str
    type: ProvisionType


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """Permit or deny, the provisions that decided it and stable reason codes (no PHI)."""

    permit: bool
    matched: tuple[Match, ...]
    reasons: tuple[str, ...]


# --- step 2: does one provision apply? -----------------------------------------------------


def record_confidentiality(request: ConsentRequest) -> int:
    """The rank of the record's highest confidentiality label; N when it carries none."""
    ranks = [CONFIDENTIALITY_RANK[x] for x in request.security_labels if x in CONFIDENTIALITY_RANK]
    return max(ranks, default=_NORMAL_RANK)


def labels_match(provision: Provision, confidentiality: int, sensitivity: frozenset[str]) -> bool:
    """Security labels (FHIR R4: confidentiality is a high-water mark).

    A permit covers records up to its ceiling -- the highest confidentiality it names, N if it
    names none -- and a sensitivity-labelled record only if it names every such label. A deny
    (or an untyped provision) naming labels applies to records carrying any named sensitivity
    or a confidentiality at or above a named one; naming none, to every record.
    """
    named_ranks = [
        CONFIDENTIALITY_RANK[x] for x in provision.security_labels if x in CONFIDENTIALITY_RANK
    ]
    named_sensitivity = provision.security_labels & SENSITIVITY
    if provision.type == "permit":
        ceiling = max(named_ranks, default=_NORMAL_RANK)
        return confidentiality <= ceiling and sensitivity <= named_sensitivity
    if not provision.security_labels:
        return True
    return bool(sensitivity & named_sensitivity) or (
        bool(named_ranks) and confidentiality >= min(named_ranks)
    )


def recipient_matches(rule: ActorRule, request: ConsentRequest) -> bool:
    """The requester is the actor: that DID, a practitioner of that organization, that role."""
    if rule.practitioner_role is not None:
        if rule.practitioner_role not in request.actor_roles:
            return False
        return rule.reference is None or rule.reference == request.actor_org
    return rule.reference in (request.actor, request.actor_org)


def _known(fact: str | None, allowed: Iterable[str], deny: bool) -> bool:
    """A record fact against the values a provision allows; unknown matches a deny only."""
    return deny if fact is None else fact in allowed


def _actors_match(provision: Provision, request: ConsentRequest, deny: bool) -> bool:
    recipients = [a for a in provision.actors if a.kind not in (CUSTODIAN, AUTHOR)]
    if recipients and not any(recipient_matches(a, request) for a in recipients):
        return False
    for kind, fact in ((CUSTODIAN, request.record_custodian), (AUTHOR, request.record_author)):
        allowed = [a.reference for a in provision.actors if a.kind == kind and a.reference]
        if allowed and not _known(fact, allowed, deny):
            return False
    return True


def _classes_match(provision: Provision, request: ConsentRequest, deny: bool) -> bool:
    """A FHIR resource type is known; a MIME-type class cannot be told from our records."""
    if request.resource_type is not None and request.resource_type in provision.classes:
        return True
    if request.resource_type is None or any("/" in c for c in provision.classes):
        return deny
    return False


def failed_checks(provision: Provision, request: ConsentRequest, now_ms: int) -> list[str]:
    """The checks ``provision`` fails for ``request`` at ``now_ms``; empty: it applies.

    Unstated constraints match anything (labels excepted for a permit). A fact the request
    does not know (None) matches a deny's constraint and no other provision's.
    """
    failed = []
    deny = provision.type == "deny"
    period = provision.period
    if period is not None and not period.contains(now_ms):
        ended = period.end_ms is not None and now_ms >= period.end_ms
        failed.append(CONSENT_EXPIRED if ended else CONSENT_NOT_YET_VALID)
    if provision.actors and not _actors_match(provision, request, deny):
        failed.append(_OTHER)
    if provision.actions and request.action not in provision.actions:
        failed.append(_OTHER)
    if provision.purposes and not purpose_ancestors(request.purpose) & provision.purposes:
        failed.append(_OTHER)
    sensitivity = request.security_labels & SENSITIVITY
    if not labels_match(provision, record_confidentiality(request), sensitivity):
        failed.append(LABEL_ABOVE_CEILING)
    if provision.classes and not _classes_match(provision, request, deny):
        failed.append(_OTHER)
    if provision.codes and not provision.codes & request.codes:
        failed.append(_OTHER)
    data_period = provision.data_period
    if data_period is not None and not (
        deny if request.data_time_ms is None else data_period.contains(request.data_time_ms)
    ):
        failed.append(_OTHER)
    if provision.data and not _known(
        request.record_ref, {d.reference for d in provision.data}, deny
    ):
        failed.append(_OTHER)
    return failed


def applies(provision: Provision, request: ConsentRequest, now_ms: int) -> bool:
    return not failed_checks(provision, request, now_ms)


# --- step 3: the decision inside one consent ------------------------------------------------


def _decide(
    provision: Provision, path: str, request: ConsentRequest, now_ms: int
) -> tuple[ProvisionType | None, list[str]]:
    """The type that decides under an applying ``provision``, and the paths that decided it.

    Applying exceptions first (deny wins among siblings); else the provision's own type.
    """
    denies: list[str] = []
    permits: list[str] = []
    for i, child in enumerate(provision.provisions):
        if applies(child, request, now_ms):
            kind, paths = _decide(child, f"{path}.provision[{i}]", request, now_ms)
            if kind == "deny":
                denies += paths
            elif kind == "permit":
                permits += paths
    if denies:
        return "deny", denies
    if permits:
        return "permit", permits
    if provision.type is not None:
        return provision.type, [path]
    return None, []


# --- step 5: why nothing permitted ----------------------------------------------------------


def near_misses(consents: Iterable[Consent], request: ConsentRequest, now_ms: int) -> set[str]:
    """Reasons a permit provision did not apply, where it failed only relaxable checks.

    Relaxable: its own or an ancestor's period (``consent-expired``, ``consent-not-yet-valid``)
    and its own security-label ceiling. Only for consents that count (step 1).
    """
    found: set[str] = set()
    for consent in consents:
        if consent.provision is not None:
            _misses(consent.provision, [], request, now_ms, found)
    return found


def _misses(
    provision: Provision, above: list[str], request: ConsentRequest, now_ms: int, found: set[str]
) -> None:
    """``above``: the (period) checks the ancestors failed; exceptions below see those too."""
    failed = failed_checks(provision, request, now_ms)
    if provision.type == "permit" and (above or failed) and set(above + failed) <= _RELAXABLE:
        found.update(above + failed)
    if all(f in (CONSENT_EXPIRED, CONSENT_NOT_YET_VALID) for f in failed):
        for child in provision.provisions:
            _misses(child, above + failed, request, now_ms, found)


# --- steps 1, 4 -------------------------------------------------------------------------------


def counts(consent: Consent, patient: str) -> bool:
    """Step 1: only an active consent of the request's patient takes part."""
    return consent.status == ACTIVE and consent.patient == patient


def combine(
    matches: Iterable[Match], consents_counted: bool, misses: Iterable[str] = ()
) -> ConsentDecision:
    """Step 4 and 5: any deny overrides any permit; nothing decided denies."""
    found = set(matches)
    denies = tuple(sorted(m for m in found if m.type == "deny"))
    if denies:
        return ConsentDecision(False, denies, (CONSENT_DENY,))
    permits = tuple(sorted(found))
    if permits:
        return ConsentDecision(True, permits, (CONSENT_PERMIT,))
    if not consents_counted:
        return ConsentDecision(False, (), (NO_CONSENT,))
    return ConsentDecision(False, (), (NO_MATCHING_PROVISION, *sorted(set(misses))))


def evaluate_consents(
    request: ConsentRequest, consents: Sequence[Consent], now_ms: int
) -> ConsentDecision:
    """Permit or deny ``request`` under ``consents`` at ``now_ms`` (steps 1-5 above)."""
    counted = [c for c in consents if counts(c, request.patient)]
    matches: list[Match] = []
    for consent in counted:
        root = consent.provision
        if root is None or not applies(root, request, now_ms):
            continue
        kind, paths = _decide(root, "provision", request, now_ms)
        if kind is not None:
            matches += [Match(consent.consent_id, path, kind) for path in paths]
    if matches or not counted:
        return combine(matches, bool(counted))
    return combine((), True, near_misses(counted, request, now_ms))
