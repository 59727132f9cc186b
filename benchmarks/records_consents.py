"""The consents a key release is decided against: 100 per patient, granted on the ledger.

1. ``register_cast``: four more organizations and 24 more practitioners (of them and of the
   hospital), registered by the hospital (an authority), so every DID a consent names is a
   registered participant (the consent contract's step 5);
2. ``patient_consents``: one patient's 100 active consents -- the requester's own
   ``permit_to`` grant (the everyday consent, ``medledger consent grant --to``) among 99 others
   in the mix ``benchmarks.consent_bench`` uses (kinds and counts in ``MIX``), relative to the
   run's real clock, since the node decides at the time of the request;
3. ``grant_all``: every patient signs its 100 ``consent.grant`` transactions; all are committed
   before any clock starts.

None of the 99 others permits the requester: its permit names exactly one consent, its own.
Not handled here: what is timed (``records_release``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from medledger.core.consent.model import ActorRule, Consent, DataRef, Period, Provision
from medledger.core.consent.simple import permit_to
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.consent import GRANT

DAY_MS = 86_400_000
ORGS = 4
PRACTITIONERS = 24
ROLES = ("physician", "nurse", "emergency-physician", "pharmacist", "lab-technician")
#: The 99 other consents of a patient, by kind (as in ``consent_bench``, active ones only).
MIX = (
    ("per-practitioner TREAT grants (a third time-limited, a fifth for two resource types)", 30),
    ("per-organization grants (a third with nested denies of a practitioner and labels)", 15),
    ("role grants within another organization, data from the last year", 10),
    ("record denies (notThis, 3 other records each)", 10),
    ("custodian denies for research (notAuthor)", 3),
    ("label denies (HIV, SDV)", 2),
    ("expired per-practitioner grants", 15),
    ("per-practitioner grants for operations or payment", 14),
)
CONSENTS_PER_PATIENT = 1 + sum(n for _, n in MIX)
REQUESTER_AT = 50  # the requester's grant among the patient's consent ids (sorted)

Signed = tuple[ParticipantKey, str, dict[str, Any]]


def _did(name: str) -> str:
    return did_from_public_key(hashlib.sha256(name.encode()).digest())


ORG_DIDS = tuple(_did(f"bench:release:org:{o}") for o in range(ORGS))
#: (did, organization index or None for the hospital, role); none is the requester.
CAST = tuple(
    (_did(f"bench:release:pr:{p}"), None if p % 5 == 0 else p % ORGS, ROLES[p % len(ROLES)])
    for p in range(PRACTITIONERS)
)


def register_cast(hospital: ParticipantKey, commit: Callable[[list[Signed]], None]) -> None:
    """The organizations (one block), then their practitioners (the next)."""
    commit([
        (hospital, "participant.register",
         {"did": did, "kind": "organization", "roles": ["clinic"], "name": f"Clinic {o}"})
        for o, did in enumerate(ORG_DIDS)
    ])  # fmt: skip
    commit([
        (hospital, "participant.register",
         {"did": did, "kind": "practitioner", "roles": [role],
          "organization": hospital.did if org is None else ORG_DIDS[org]})
        for did, org, role in CAST
    ])  # fmt: skip


def _others(patient: str, now_ms: int) -> list[Provision]:
    """The 99 other provisions of ``patient``'s consents, in ``MIX`` order."""

    def practitioner(i: int) -> str:
        return CAST[i % PRACTITIONERS][0]

    def grant(actor: str, **kw: Any) -> Provision:
        provision = permit_to("unused", patient, actor, **kw).provision
        assert provision is not None
        return provision

    out: list[Provision] = []
    for i in range(30):
        limited = now_ms + 60 * DAY_MS if i % 3 == 0 else None
        classes = ("MedicationRequest", "Condition") if i % 5 == 0 else ()
        out.append(grant(practitioner(i), until_ms=limited, classes=classes))
    for i in range(15):
        nested: tuple[Provision, ...] = ()
        if i % 3 == 0:
            banned = next(did for did, org, _ in CAST if org == i % ORGS)
            nested = (
                Provision(type="deny", actors=(ActorRule("PRCP", banned),)),
                Provision(type="deny", security_labels=frozenset({"PSY", "HIV"})),
            )
        out.append(Provision(type="permit", actors=(ActorRule("PRCP", ORG_DIDS[i % ORGS]),),
                             actions=frozenset({"access"}), purposes=frozenset({"TREAT"}),
                             provisions=nested))  # fmt: skip
    for i in range(10):
        role = ROLES[i % len(ROLES)]
        out.append(Provision(type="permit", actors=(ActorRule("IRCP", ORG_DIDS[i % ORGS], role),),
                             purposes=frozenset({"ETREAT"}) if role == "emergency-physician"
                             else frozenset(),
                             data_period=Period(now_ms - 365 * DAY_MS, None)))  # fmt: skip
    for i in range(10):
        refs = tuple(DataRef("instance", f"Observation/withheld-{i}-{k}") for k in range(3))
        out.append(Provision(type="deny", data=refs))
    for i in range(3):
        out.append(Provision(type="deny", actors=(ActorRule("CST", ORG_DIDS[ORGS - 1 - i]),),
                             purposes=frozenset({"HRESCH"})))  # fmt: skip
    for label in ("HIV", "SDV"):
        out.append(Provision(type="deny", security_labels=frozenset({label})))
    for i in range(15):
        out.append(grant(practitioner(i + 7), until_ms=now_ms - DAY_MS * (1 + i)))
    for i in range(14):
        out.append(grant(practitioner(i + 3), purposes=("HOPERAT",) if i % 2 else ("HPAYMT",)))
    assert len(out) == CONSENTS_PER_PATIENT - 1
    return out


def consent_id(i: int) -> str:
    return f"rel-{i:03d}"


def patient_consents(patient: str, requester: str, now_ms: int) -> list[Consent]:
    """``patient``'s 100 consents; ``consent_id(REQUESTER_AT)`` is ``requester``'s grant."""
    provisions = _others(patient, now_ms)
    own = permit_to(consent_id(REQUESTER_AT), patient, requester).provision
    assert own is not None
    provisions.insert(REQUESTER_AT, own)
    return [
        Consent(consent_id(i), patient, "active", "patient-privacy", provision=p)
        for i, p in enumerate(provisions)
    ]


def grant_all(
    patients: list[ParticipantKey], requester: str, now_ms: int,
    commit: Callable[[list[Signed]], None],
) -> None:  # fmt: skip
    """Every patient grants its consents (one commit per patient)."""
    for key in patients:
        commit([
            (key, GRANT, {"consent": c.to_json()})
            for c in patient_consents(key.did, requester, now_ms)
        ])  # fmt: skip
