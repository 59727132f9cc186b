"""The closed vocabularies of a consent policy, and the code systems FHIR writes them in.

Every code a policy may hold is listed here, with its FHIR R4 code system, so that the policy
form carries codes only (never free text) and an unknown code is refused rather than ignored:

- consent ``status`` and ``scope`` (consentscope);
- ``ACTIONS``: the consentaction codes;
- security labels: the confidentiality ladder (v3-Confidentiality, U < L < M < N < R < V) and
  the sensitivity codes (v3-ActCode) found in the HL7 examples;
- ``PURPOSES``: a subset of v3-ActReason's purpose-of-use codes with their is-a parents
  (ETREAT is-a TREAT, BTG is-a ETREAT ...), and ``purpose_closure`` over them;
- ``ACTOR_ROLES``: the participation / role codes an actor rule may hold, each with *what it
  is matched against* -- the requester (``RECIPIENT``), the record's custodian organization
  (``CUSTODIAN``) or the record's author (``AUTHOR``);
- ``DATA_MEANINGS``: how a data reference is read.

Pure data; no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final, Literal

ProvisionType = Literal["permit", "deny"]
PROVISION_TYPES: Final = frozenset({"permit", "deny"})

STATUSES: Final = frozenset(
    {"active", "inactive", "draft", "proposed", "rejected", "entered-in-error"}
)
#: Only consents with this status take part in a decision.
ACTIVE: Final = "active"

SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
SCOPES: Final = frozenset({"adr", "research", "patient-privacy", "treatment"})

ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
ACTIONS: Final = frozenset({"collect", "access", "use", "disclose", "correct"})

CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: The confidentiality ladder, lowest first: unrestricted, low, moderate, normal, restricted,
#: very restricted.
CONFIDENTIALITY: Final = ("U", "L", "M", "N", "R", "V")
CONFIDENTIALITY_RANK: Final[Mapping[str, int]] = {c: i for i, c in enumerate(CONFIDENTIALITY)}
#: A record without a confidentiality label is normal (N), and a permit that names none covers
#: up to N.
DEFAULT_CONFIDENTIALITY: Final = "N"

SENSITIVITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: Information sensitivity codes (v3-ActCode): ethnicity, HIV/AIDS, psychiatry, sexual and
#: domestic violence, sexuality and reproductive health, sensitive personal information.
SENSITIVITY: Final = frozenset({"ETH", "HIV", "PSY", "SDV", "SEX", "SPI"})
SECURITY_LABELS: Final = frozenset(CONFIDENTIALITY) | SENSITIVITY

PURPOSE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: Each purpose-of-use code and its is-a parent (None for a top-level purpose).
PURPOSE_PARENT: Final[Mapping[str, str | None]] = {
    "TREAT": None,  # treatment
    "ETREAT": "TREAT",  # emergency treatment
    "BTG": "ETREAT",  # break the glass
    "COC": "TREAT",  # continuity of care
    "POPHLTH": "TREAT",  # population health
    "CLINTRL": "TREAT",  # clinical trial
    "HOPERAT": None,  # healthcare operations
    "CAREMGT": "HOPERAT",  # care management
    "HQUALIMP": "HOPERAT",  # quality improvement
    "PATSFTY": "HOPERAT",  # patient safety
    "RECORDMGT": "HOPERAT",  # records management
    "TRAIN": "HOPERAT",  # training
    "HLEGAL": "HOPERAT",  # legal
    "HSYSADMIN": "HOPERAT",  # system administration
    "HPAYMT": None,  # payment
    "COVAUTH": "HPAYMT",  # coverage authorization
    "CLMATTCH": "HPAYMT",  # claim attachment
    "ELIGVER": "HPAYMT",  # eligibility verification
    "HRESCH": None,  # research
    "CLINTRCH": "HRESCH",  # clinical trial research
    "PUBHLTH": None,  # public health
    "DISASTER": "PUBHLTH",  # disaster
    "THREAT": "PUBHLTH",  # threat
    "PATRQT": None,  # patient requested
    "FAMRQT": "PATRQT",  # family requested
    "PWATRNY": "PATRQT",  # power of attorney
    "SUPNWK": "PATRQT",  # support network
    "HMARKT": None,  # marketing
}
PURPOSES: Final = frozenset(PURPOSE_PARENT)


@functools.cache
def purpose_ancestors(purpose: str) -> frozenset[str]:
    """``purpose`` and every purpose it is-a (ETREAT -> {ETREAT, TREAT}); unknown -> itself."""
    found = {purpose}
    parent = PURPOSE_PARENT.get(purpose)
    while parent is not None:
        found.add(parent)
        parent = PURPOSE_PARENT[parent]
    return frozenset(found)


def purpose_closure(purposes: frozenset[str]) -> frozenset[str]:
    """Every purpose that is-a one of ``purposes``: what a provision naming them covers."""
    return frozenset(p for p in PURPOSES if purpose_ancestors(p) & purposes)


#: What an actor rule is matched against.
RECIPIENT: Final = "recipient"  # the requester: a participant, its organization, its role
CUSTODIAN: Final = "custodian"  # the organization that holds (authored) the record
AUTHOR: Final = "author"  # the participant that wrote the record
ActorKind = Literal["recipient", "custodian", "author"]

PARTICIPATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PERFORMER_SYSTEM: Final = "http://hl7.org/fhir/consentperformer"
#: Actor role code -> (FHIR system, FHIR code, what the rule is matched against).
ACTOR_ROLES: Final[Mapping[str, tuple[str, str, ActorKind]]] = {
    "PRCP": (PARTICIPATION_SYSTEM, "PRCP", "recipient"),  # primary information recipient
    "IRCP": (PARTICIPATION_SYSTEM, "IRCP", "recipient"),  # information recipient
    "DELEGATEE": (PERFORMER_SYSTEM, "delegatee", "recipient"),
    "GRANTEE": (PERFORMER_SYSTEM, "grantee", "recipient"),
    "CST": (PARTICIPATION_SYSTEM, "CST", "custodian"),  # custodian
    "AUT": (PARTICIPATION_SYSTEM, "AUT", "author"),  # author (originator)
    "INF": (PARTICIPATION_SYSTEM, "INF", "author"),  # informant: on our ledger, the author
}
ROLE_FROM_FHIR: Final[Mapping[tuple[str, str], str]] = {
    (system, code): role for role, (system, code, _) in ACTOR_ROLES.items()
}

DATA_MEANINGS: Final = frozenset({"instance", "related", "dependents", "authoredby"})

RESOURCE_TYPE_SYSTEM: Final = "http://hl7.org/fhir/resource-types"
MIME_TYPE_SYSTEM: Final = "urn:ietf:bcp:13"


@functools.cache
def practitioner_roles() -> frozenset[str]:
    """The closed practitioner role vocabulary of the participants contract.

    Imported on first use, not at module load: the ledger's contracts package imports this
    package (the consent contract), so a module-level import would be circular.
    """
    from medledger.core.ledger.contracts.common import PRACTITIONER, ROLES

    return ROLES[PRACTITIONER]
