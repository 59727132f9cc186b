"""Shared values for the consent tests: fixed test DIDs and small builders."""

from __future__ import annotations

import hashlib

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
