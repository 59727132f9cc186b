"""Access events for the audit tests: fixed parties, deterministic ids."""

from __future__ import annotations

import dataclasses
from typing import Any

from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.identity.did_key import did_from_public_key


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NODE, DOCTOR, HOSPITAL, PATIENT, OTHER_PATIENT = did(1), did(2), did(1), did(3), did(4)
T0 = 1_700_000_000_000


def event_id(n: int) -> str:
    return new_event_id(n.to_bytes(16, "big"))


def make_event(n: int = 0, **changes: Any) -> AccessEvent:
    """A permitted read of an Observation by the hospital's doctor, at ``T0 + n`` ms."""
    event = AccessEvent(
        event_id=event_id(n),
        time_ms=T0 + n,
        node=NODE,
        actor=DOCTOR,
        actor_org=HOSPITAL,
        patient=PATIENT,
        action="read",
        resource_type="Observation",
        record_id="obs-1",
        version=1,
        purpose="TREAT",
        decision="permit",
        reasons=("consent-permit",),
        consents=("consent-1",),
    )
    return dataclasses.replace(event, **changes) if changes else event


def break_glass(n: int = 0, **changes: Any) -> AccessEvent:
    fields: dict[str, Any] = {
        "purpose": "ETREAT",
        "decision": "break-glass",
        "reasons": ("break-glass", "no-consent"),
        "consents": (),
        "justification": "Unconscious patient in the emergency department",
    }
    return make_event(n, **{**fields, **changes})
