"""Shared values for the consent tests: fixed test DIDs and small builders."""

from __future__ import annotations

import hashlib

from medledger.core.consent.decision import ConsentDecision, ConsentRequest, evaluate_consents
from medledger.core.consent.index import ConsentIndex
from medledger.core.consent.model import Consent, Provision
from medledger.core.identity.did_key import did_from_public_key


def did(name: str) -> str:
    """A fixed, valid did:key for a test participant (not a real key pair)."""
    return did_from_public_key(hashlib.sha256(name.encode()).digest())


PATIENT = did("patient")
OTHER_PATIENT = did("other-patient")
GHH = did("org:good-health-hospital")
CLINIC = did("org:other-clinic")
NURSE = did("practitioner:nurse-f204")
DOCTOR = did("practitioner:doctor")
RELATIVE = did("related-person")
AUTHOR = did("practitioner:author")

DAY_MS = 86_400_000
#: 2024-06-01T00:00:00Z
NOW = 1_717_200_000_000


def consent(provision: Provision | None, *, consent_id: str = "c1", **kw: object) -> Consent:
    fields: dict[str, object] = {
        "consent_id": consent_id,
        "patient": PATIENT,
        "status": "active",
        "scope": "patient-privacy",
        "provision": provision,
    }
    fields.update(kw)
    return Consent(**fields)  # type: ignore[arg-type]


def request(**kw: object) -> ConsentRequest:
    """A read of an ordinary record of PATIENT by a physician of the other clinic."""
    fields: dict[str, object] = {
        "actor": DOCTOR,
        "actor_org": CLINIC,
        "actor_roles": frozenset({"physician"}),
        "patient": PATIENT,
        "action": "access",
        "purpose": "TREAT",
        "resource_type": "Observation",
        "security_labels": frozenset(),
        "codes": frozenset(),
        "data_time_ms": NOW - DAY_MS,
        "record_ref": "Observation/rec-1",
        "record_custodian": GHH,
        "record_author": AUTHOR,
    }
    fields.update(kw)
    return ConsentRequest(**fields)  # type: ignore[arg-type]


def decide(req: ConsentRequest, consents: list[Consent], now: int = NOW) -> ConsentDecision:
    """The reference decision, checked equal to the index's."""
    expected = evaluate_consents(req, consents, now)
    assert ConsentIndex.build(consents).evaluate(req, now) == expected
    return expected
