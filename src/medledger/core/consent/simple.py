"""The everyday consent: "let this practitioner (or organization) read my records, for these
purposes, until then". What ``medledger consent grant --to`` and the demo build; a FHIR
``Consent`` of any shape goes through ``fhir.from_fhir`` instead."""

from __future__ import annotations

from collections.abc import Iterable

from medledger.core.consent.model import ActorRule, Consent, Period, Provision


def permit_to(
    consent_id: str,
    patient: str,
    actor: str,
    *,
    purposes: Iterable[str] = ("TREAT",),
    classes: Iterable[str] = (),
    until_ms: int | None = None,
) -> Consent:
    """``patient`` permits ``actor`` (a DID: a practitioner, or an organization and so its
    practitioners) to access their records for ``purposes``, of ``classes`` (resource types;
    none: all), until ``until_ms`` (exclusive; None: until revoked)."""
    provision = Provision(
        type="permit",
        period=None if until_ms is None else Period(None, until_ms),
        actors=(ActorRule("PRCP", actor),),
        actions=frozenset({"access"}),
        purposes=frozenset(purposes),
        classes=frozenset(classes),
    )
    return Consent(consent_id, patient, "active", "patient-privacy", provision=provision)
