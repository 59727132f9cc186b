"""The interim access policy for off-chain records, until patient consent lands (issue 5).

A pure function of (request, ledger state): deny by default; permit

- the patient, for their own records (GDPR art. 15: a patient may always read their data);
- the record's author organization, and its active practitioners (the custodian of the data).

Anyone else is denied with reason ``no-consent``: grants to other practitioners and
organizations come with the consent contract. A deactivated or unregistered requester is
denied whatever the record. Every decision carries its reasons; the caller records it as an
access event whatever the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from medledger.core.ledger.runtime import StateReader

Action = Literal["read", "key-release", "erase"]


@dataclass(frozen=True, slots=True)
class AccessRequest:
    requester: str
    patient: str
    record_id: str
    action: Action
    purpose: str


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """``basis`` names why access was permitted (bound into released key wraps)."""

    permit: bool
    reasons: tuple[str, ...]
    basis: str | None = None


def _participant(state: StateReader, did: str) -> dict[str, object] | None:
    raw = state.get(f"participant/{did}")
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def evaluate_custodial_access(
    request: AccessRequest, author_org: str | None, state: StateReader
) -> AccessDecision:
    """Permit or deny ``request`` for a record authored by ``author_org``."""
    requester = _participant(state, request.requester)
    if requester is None or not requester.get("active"):
        return AccessDecision(False, ("requester-not-registered",))
    if request.requester == request.patient:
        return AccessDecision(True, ("patient-own-record",), basis="patient")
    reason = _custodian_reason(request, requester, author_org, state)
    if reason is not None:
        return AccessDecision(True, (reason,), basis="custodian")
    denied = "erasure-by-patient-or-custodian-only" if request.action == "erase" else "no-consent"
    return AccessDecision(False, (denied,))


def _custodian_reason(
    request: AccessRequest, requester: dict[str, object], author_org: str | None, state: StateReader
) -> str | None:
    """Why the requester acts for the record's custodian, or None.

    Erasure is the patient's right: the custodian organization executes it on the patient's
    request, its practitioners do not.
    """
    if author_org is None:
        return None
    if request.requester == author_org:
        return "author-organization"
    if request.action == "erase":
        return None
    if requester.get("kind") == "practitioner" and requester.get("organization") == author_org:
        organization = _participant(state, author_org)
        if organization is not None and organization.get("active"):
            return "practitioner-of-author-organization"
    return None


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access attempt: pseudonymous identifiers and codes only, never content or names."""

    time_ms: int
    actor: str
    patient: str
    record_id: str
    version: int | None
    action: Action
    purpose: str
    permit: bool
    reasons: tuple[str, ...]
