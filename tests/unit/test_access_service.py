"""The access service's break-glass window (medledger.services.access): one justification opens
a window of BREAK_GLASS_WINDOW_MS for the same practitioner and patient; use within it does not
stretch it."""

from __future__ import annotations

from typing import Any

from medledger.core.access.gate import BREAK_GLASS_WINDOW_MS, AccessRequest, RecordFacts
from medledger.core.audit.event import AccessEvent
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.services.access import AccessService
from medledger.testing.memory_state_reader import DictState

from .world import did, participant

NOW = 1_700_000_000_000
HOSPITAL, DR_ER, PATIENT = did(10), did(22), did(30)
WHY = "unconscious on arrival, allergy history needed"


class Ticket:
    def wait_durable(self, timeout_s: float) -> None:
        return None


class MemoryAudit:
    """Events as the audit service lists them: oldest first, filtered."""

    def __init__(self) -> None:
        self.events: list[AccessEvent] = []

    def record(self, event: AccessEvent) -> Ticket:
        self.events.append(event)
        return Ticket()

    def list_events(self, patient: str, **f: Any) -> list[AccessEvent]:
        return [
            e
            for e in self.events
            if e.patient == patient
            and e.time_ms >= (f.get("since_ms") or 0)
            and e.actor == f.get("actor", e.actor)
            and e.decision == f.get("decision", e.decision)
        ][: f.get("limit", 100)]


class Ledger:
    def __init__(self) -> None:
        genesis = Genesis("n", 0, (Authority(did(1), "Health Authority", ("regulator",)),))
        self.state = DictState(
            {
                **genesis_writes(genesis),
                **participant(HOSPITAL, "organization", ("hospital",)),
                **participant(DR_ER, "practitioner", ("emergency-physician",), org=HOSPITAL),
                **participant(PATIENT, "patient"),
            }
        )

    def state_reader(self) -> DictState:
        return self.state


def read(service: AccessService, now: int, why: str | None = None) -> Any:
    request = AccessRequest(DR_ER, PATIENT, "obs-1", "read", "ETREAT", why)
    decision, _ = service.decide(request, RecordFacts(custodian=HOSPITAL), now)
    return decision


def test_a_justified_break_glass_opens_a_window_that_use_does_not_stretch() -> None:
    audit = MemoryAudit()
    service = AccessService(ledger=Ledger(), audit=audit, node_did=HOSPITAL)
    assert not read(service, NOW).permit  # no justification, no window
    opened = read(service, NOW, WHY)
    assert opened.break_glass and "break-glass-window" not in opened.reasons
    half = NOW + BREAK_GLASS_WINDOW_MS // 2
    within = read(service, half)
    assert within.break_glass and within.justification == WHY
    assert "break-glass-window" in within.reasons
    # used again and again inside the window, it still closes an hour after it was opened
    assert read(service, NOW + BREAK_GLASS_WINDOW_MS - 1).permit
    assert not read(service, NOW + BREAK_GLASS_WINDOW_MS + 1).permit
    assert read(service, NOW + BREAK_GLASS_WINDOW_MS + 2, WHY).break_glass  # a new one
    assert [e.decision for e in audit.events].count("break-glass") == 4
