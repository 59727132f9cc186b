"""The access gate: who may do what with a patient's data, right now.

A pure function of (request, the facts of the record, ledger state, the patient's consents,
now). The steps, in order; the first that decides wins:

1. the requester is a registered, active participant, else deny ``requester-not-registered``;
2. the patient themself may do anything with their own data (GDPR art. 15-17):
   permit ``patient-own-record``;
3. erasure: the record's custodian organization executes it on the patient's behalf
   (``author-organization``); anyone else: deny ``erasure-by-patient-or-custodian-only``;
4. listing a patient's access events: the patient's current delegate (``patient-delegate``)
   and a privacy officer of the organization holding the events (``privacy-officer``);
   anyone else: deny ``not-patient-delegate-or-privacy-officer``;
5. reading (read, key release, search, consent export): the record's custodian organization
   itself (``author-organization``: the node acting as a system, never a person), else
6. the patient's consents (``medledger.core.consent``, precedence in ADR 0013): permit with the
   matched consent ids, or
7. break-glass (``BreakGlass...``, ADR 0015): purpose BTG or ETREAT, from a practitioner whose
   role allows emergency access, at an active organization, with a written justification (or
   within the break-glass window a justification already opened) -- permitted against the
   consent, flagged; otherwise
8. deny, with the consent decision's reasons (``no-consent`` when nothing permits).

Deny by default: a step that is not sure denies. Every decision carries its reasons (stable
codes, never content); the caller records each one as an access event, whatever the outcome.
Not handled here: reading the state or the clock (the caller passes them), recording events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from medledger.core.consent.decision import ConsentDecision, ConsentRequest
from medledger.core.ledger.contracts.common import (
    PRACTITIONER,
    Participant,
    acting_org,
    read_participant,
)
from medledger.core.ledger.contracts.consent import delegation_holds
from medledger.core.ledger.contracts.review import PRIVACY_OFFICER
from medledger.core.ledger.runtime import StateReader
from medledger.errors import InvalidInputError

Action = Literal["read", "key-release", "erase", "search", "list-audit", "consent-export"]
ACTIONS: Final = ("read", "key-release", "erase", "search", "list-audit", "consent-export")
#: Purposes of use (v3-ActReason) that ask for emergency access.
BREAK_GLASS_PURPOSES: Final = frozenset({"BTG", "ETREAT"})
#: Practitioner roles allowed to break the glass.
EMERGENCY_ROLES: Final = frozenset({"emergency-physician"})
#: A justification's length, in characters.
MIN_JUSTIFICATION: Final = 10
MAX_JUSTIFICATION: Final = 500
#: How long one justified break-glass covers the same practitioner and patient.
BREAK_GLASS_WINDOW_MS: Final = 60 * 60 * 1000
#: The reason a break-glass carries when it reused an open window's justification.
BREAK_GLASS_WINDOW: Final = "break-glass-window"

Basis = Literal["patient", "custodian", "consent", "delegate", "privacy-officer", "break-glass"]


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One request: who, for which patient's record, to do what, why.

    ``justification`` is required for break-glass and held off-chain with its event."""

    requester: str
    patient: str
    record_id: str | None
    action: Action
    purpose: str
    justification: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise InvalidInputError(f"action: one of {', '.join(ACTIONS)}", parameter="action")
        if self.justification is not None and not (
            len(self.justification.strip()) >= MIN_JUSTIFICATION
            and len(self.justification) <= MAX_JUSTIFICATION
        ):
            raise InvalidInputError(
                f"justification: {MIN_JUSTIFICATION}-{MAX_JUSTIFICATION} characters",
                parameter="justification",
            )


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the node knows of the record a request is about (off-chain; codes, no content).

    ``custodian`` is the organization holding the record: its author, or for listing access
    events, the organization of the node holding them."""

    custodian: str | None
    resource_type: str | None = None
    security_labels: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    data_time_ms: int | None = None


class ConsentEvaluator(Protocol):
    """What the gate needs of a patient's consents (``ConsentIndex``)."""

    def evaluate(self, request: ConsentRequest, now_ms: int) -> ConsentDecision: ...


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """``basis`` names why access was permitted (bound into released key wraps);
    ``consents`` the consent ids that permitted or denied."""

    permit: bool
    reasons: tuple[str, ...]
    basis: Basis | None = None
    consents: tuple[str, ...] = ()
    break_glass: bool = False
    justification: str | None = field(default=None, repr=False)

    @property
    def outcome(self) -> Literal["permit", "deny", "break-glass"]:
        if not self.permit:
            return "deny"
        return "break-glass" if self.break_glass else "permit"


def _deny(*reasons: str, consents: tuple[str, ...] = ()) -> AccessDecision:
    return AccessDecision(False, reasons, consents=consents)


def evaluate_access(
    request: AccessRequest,
    facts: RecordFacts,
    state: StateReader,
    consents: ConsentEvaluator,
    now_ms: int,
    *,
    open_break_glass: str | None = None,
) -> AccessDecision:
    """Permit or deny ``request`` (steps in the module docstring).

    ``open_break_glass`` is the justification of a break-glass the same practitioner opened
    for the same patient less than ``BREAK_GLASS_WINDOW_MS`` ago, if any."""
    requester = read_participant(state, request.requester)
    if requester is None or not requester.active:
        return _deny("requester-not-registered")
    for step in (_own_data, _erasure, _audit_listing, _custodian):
        decided = step(request, requester, facts, state, now_ms)
        if decided is not None:
            return decided
    consent = consents.evaluate(_consent_request(request, requester, facts, state), now_ms)
    matched = tuple(dict.fromkeys(m.consent_id for m in consent.matched))
    if consent.permit:
        return AccessDecision(True, consent.reasons, basis="consent", consents=matched)
    if request.purpose in BREAK_GLASS_PURPOSES:
        return _break_glass(
            request, requester, state, consent, matched=matched, open_justification=open_break_glass
        )
    return _deny(*consent.reasons, consents=matched)


def _own_data(
    request: AccessRequest, _r: Participant, _f: RecordFacts, _s: StateReader, _now: int
) -> AccessDecision | None:
    """Step 2: the patient themself."""
    if request.requester == request.patient:
        return AccessDecision(True, ("patient-own-record",), basis="patient")
    return None


def _erasure(
    request: AccessRequest, _r: Participant, facts: RecordFacts, _s: StateReader, _now: int
) -> AccessDecision | None:
    """Step 3: erasure is the patient's right, executed by the custodian organization."""
    if request.action != "erase":
        return None
    if facts.custodian is not None and request.requester == facts.custodian:
        return AccessDecision(True, ("author-organization",), basis="custodian")
    return _deny("erasure-by-patient-or-custodian-only")


def _custodian(
    request: AccessRequest, _r: Participant, facts: RecordFacts, _s: StateReader, _now: int
) -> AccessDecision | None:
    """Step 5: the custodian organization's node itself (a system, never a person)."""
    if facts.custodian is not None and request.requester == facts.custodian:
        return AccessDecision(True, ("author-organization",), basis="custodian")
    return None


def _audit_listing(
    request: AccessRequest,
    requester: Participant,
    facts: RecordFacts,
    state: StateReader,
    now_ms: int,
) -> AccessDecision | None:
    """Step 4: listing access events (the patient was step 2)."""
    if request.action != "list-audit":
        return None
    if delegation_holds(state, request.patient, request.requester, now_ms):
        return AccessDecision(True, ("patient-delegate",), basis="delegate")
    if (
        requester.kind == PRACTITIONER
        and PRIVACY_OFFICER in requester.roles
        and facts.custodian is not None
        and acting_org(state, requester) == facts.custodian
    ):
        return AccessDecision(True, ("privacy-officer",), basis="privacy-officer")
    return _deny("not-patient-delegate-or-privacy-officer")


def _consent_request(
    request: AccessRequest, requester: Participant, facts: RecordFacts, state: StateReader
) -> ConsentRequest:
    record_ref = (
        None
        if request.record_id is None or facts.resource_type is None
        else f"{facts.resource_type}/{request.record_id}"
    )
    return ConsentRequest(
        actor=requester.did,
        actor_org=acting_org(state, requester),
        actor_roles=frozenset(requester.roles),
        patient=request.patient,
        action="access",
        purpose=request.purpose,
        resource_type=facts.resource_type,
        security_labels=facts.security_labels,
        codes=facts.codes,
        data_time_ms=facts.data_time_ms,
        record_ref=record_ref,
        record_custodian=facts.custodian,
    )


def _break_glass(
    request: AccessRequest,
    requester: Participant,
    state: StateReader,
    consent: ConsentDecision,
    *,
    matched: tuple[str, ...],
    open_justification: str | None,
) -> AccessDecision:
    """BreakGlass: permitted against the consent, for emergency roles with a justification."""
    if requester.kind != PRACTITIONER or not EMERGENCY_ROLES & set(requester.roles):
        return _deny(*consent.reasons, "break-glass-role-not-allowed", consents=matched)
    if acting_org(state, requester) is None:
        return _deny(*consent.reasons, "break-glass-organization-inactive", consents=matched)
    justification = request.justification or open_justification
    if justification is None:
        return _deny(*consent.reasons, "break-glass-without-justification", consents=matched)
    # Within an open window the reason says so: only a justified break-glass opens a window,
    # so continued use cannot stretch one past BREAK_GLASS_WINDOW_MS.
    window = () if request.justification else (BREAK_GLASS_WINDOW,)
    return AccessDecision(
        True,
        ("break-glass", *window, *consent.reasons),
        basis="break-glass",
        consents=matched,
        break_glass=True,
        justification=justification,
    )
