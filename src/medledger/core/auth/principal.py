"""The principal a FHIR request acts as: established at the edge from a bearer token, then
handed to the use cases, which ask the scopes first and the access gate second."""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.core.auth.scopes import ScopeSet


@dataclass(frozen=True, slots=True)
class Principal:
    """``did``: the participant acting (the token's subject, a did:key); ``scopes``: what the
    token allows; ``patient``: the patient context of ``patient/`` scopes (a did:key), if any;
    ``purpose``: the purpose of use (v3-ActReason) asked for; ``justification``: a break-glass
    justification (free text, held off-chain with the access event)."""

    did: str
    scopes: ScopeSet
    patient: str | None = None
    purpose: str = "TREAT"
    justification: str | None = field(default=None, repr=False)
