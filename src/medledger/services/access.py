"""The access gate as a use case: decide from the committed ledger state, record the decision as
an access event, and release nothing until that event is durable.

Handles, per request:
1. the patient's consents: read from the committed state (``consent/<patient>`` and the
   consents it names), compiled once into a ``ConsentIndex`` and cached by the index's exact
   bytes (a grant or revocation changes them, so a stale index is never used);
2. an open break-glass: the justification of the same practitioner's break-glass for the same
   patient within ``BREAK_GLASS_WINDOW_MS``, from the node's own access events;
3. the decision (``medledger.core.access.gate.evaluate_access``), at ``now_ms``;
4. the access event (permitted, denied or break-glass) handed to the audit service; a permitted
   request waits until its event is on disk (no access without durable evidence), a denied one
   does not wait.
Not handled here: who the requester is (the edge verifies signed requests), the record's facts
(the records service reads them from its vault), batching and anchoring events (``AuditService``).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from medledger.core.access.gate import (
    BREAK_GLASS_PURPOSES,
    BREAK_GLASS_WINDOW,
    BREAK_GLASS_WINDOW_MS,
    AccessDecision,
    AccessRequest,
    RecordFacts,
    evaluate_access,
)
from medledger.core.audit.event import EVENT_ID_BYTES, AccessEvent, new_event_id
from medledger.core.consent.index import ConsentIndex
from medledger.core.ledger.contracts.common import PRACTITIONER, acting_org, read_participant
from medledger.core.ledger.contracts.consent import active_consents, index_key
from medledger.core.ledger.contracts.review import PRIVACY_OFFICER
from medledger.core.ledger.runtime import StateReader
from medledger.errors import AccessDeniedError

#: How long a permitted request waits for its event to be durable before giving up.
DURABLE_WAIT_S = 10.0
_INDEX_CACHE = 4096
#: Break-glass events of one practitioner for one patient looked at to find an open window.
MAX_WINDOW_EVENTS = 1000


class Ticket(Protocol):
    def wait_durable(self, timeout_s: float) -> None:
        """Return once the event is on disk; raise ``StorageError`` / ``OverloadedError``."""
        ...


class AuditSink(Protocol):
    def record(self, event: AccessEvent) -> Ticket: ...
    def list_events(
        self,
        patient: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        actor: str | None = None,
        decision: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after_event_id: str | None = None,
    ) -> list[AccessEvent]: ...


class StateSource(Protocol):
    def state_reader(self) -> StateReader: ...


class _ReadOnce:
    """A ``StateReader`` that reads each key once and then answers from memory: one call's view
    of the committed state (bounded by the call: a search decides at most ``MAX_CANDIDATES``)."""

    __slots__ = ("_seen", "_state")

    def __init__(self, state: StateReader) -> None:
        self._state = state
        self._seen: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self._seen:
            return self._seen[key]
        value = self._seen[key] = self._state.get(key)
        return value


class AccessService:
    """Decides, records, and (for permits) waits for durable evidence."""

    def __init__(self, *, ledger: StateSource, audit: AuditSink, node_did: str) -> None:
        self._ledger = ledger
        self._audit = audit
        self._node = node_did
        self._indexes: OrderedDict[tuple[str, bytes], ConsentIndex] = OrderedDict()
        self._lock = threading.Lock()

    def consents(self, state: StateReader, patient: str) -> ConsentIndex:
        """The patient's compiled consents, cached by the exact bytes of their index."""
        raw = state.get(index_key(patient)) or b""
        key = (patient, raw)
        with self._lock:
            found = self._indexes.get(key)
            if found is not None:
                self._indexes.move_to_end(key)
                return found
        index = ConsentIndex.build(active_consents(state, patient))
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > _INDEX_CACHE:
                self._indexes.popitem(last=False)
        return index

    def _open_break_glass(self, request: AccessRequest, now_ms: int) -> str | None:
        if request.purpose not in BREAK_GLASS_PURPOSES or request.justification is not None:
            return None
        recent = self._audit.list_events(
            request.patient,
            since_ms=now_ms - BREAK_GLASS_WINDOW_MS,
            actor=request.requester,
            decision="break-glass",
            limit=MAX_WINDOW_EVENTS,
        )
        # Only a break-glass that carried its own justification opens a window.
        openers = [e for e in recent if BREAK_GLASS_WINDOW not in e.reasons]
        return openers[-1].justification if openers else None

    def decide(
        self,
        request: AccessRequest,
        facts: RecordFacts,
        now_ms: int,
        *,
        version: int | None = None,
    ) -> tuple[AccessDecision, Ticket]:
        """Decide and record; the caller acts on the decision (``require`` for the usual)."""
        ((decision, ticket),) = self.decide_many([(request, facts, version)], now_ms)
        return decision, ticket

    def decide_many(
        self, items: Sequence[tuple[AccessRequest, RecordFacts, int | None]], now_ms: int
    ) -> list[tuple[AccessDecision, Ticket]]:
        """Decide and record each ``(request, facts, version)`` (a search decides every
        candidate), all at ``now_ms`` and against one view of the committed state: a key the
        decisions share (the requester, their organization, a patient's consents) is read once
        per call, so every decision of one call sees the same answer for it."""
        state = _ReadOnce(self._ledger.state_reader())
        indexes: dict[str, ConsentIndex] = {}
        windows: dict[tuple[str, str, str | None, str | None], str | None] = {}
        orgs: dict[str, str | None] = {}
        randomness = secrets.token_bytes(EVENT_ID_BYTES * len(items))  # one read, not one each
        out: list[tuple[AccessDecision, Ticket]] = []
        for n, (request, facts, version) in enumerate(items):
            index = indexes.get(request.patient)
            if index is None:
                index = indexes[request.patient] = self.consents(state, request.patient)
            window_key = (
                request.patient,
                request.requester,
                request.purpose,
                request.justification,
            )
            if window_key not in windows:
                windows[window_key] = self._open_break_glass(request, now_ms)
            decision = evaluate_access(
                request, facts, state, index, now_ms, open_break_glass=windows[window_key]
            )
            if request.requester not in orgs:
                requester = read_participant(state, request.requester)
                orgs[request.requester] = (
                    None if requester is None else acting_org(state, requester)
                )
            event = self._event(
                request,
                facts,
                decision,
                event_id=new_event_id(randomness[n * EVENT_ID_BYTES : (n + 1) * EVENT_ID_BYTES]),
                actor_org=orgs[request.requester],
                now_ms=now_ms,
                version=version,
            )
            out.append((decision, self._audit.record(event)))
        return out

    def _event(
        self,
        request: AccessRequest,
        facts: RecordFacts,
        decision: AccessDecision,
        *,
        event_id: str,
        actor_org: str | None,
        now_ms: int,
        version: int | None,
    ) -> AccessEvent:
        return AccessEvent(
            event_id=event_id,
            time_ms=now_ms,
            node=self._node,
            actor=request.requester,
            actor_org=actor_org,
            patient=request.patient,
            action=request.action,
            resource_type=facts.resource_type,
            record_id=request.record_id,
            version=version,
            purpose=request.purpose,
            decision=decision.outcome,
            reasons=decision.reasons,
            consents=decision.consents,
            justification=decision.justification if decision.break_glass else None,
        )

    def require(
        self,
        request: AccessRequest,
        facts: RecordFacts,
        now_ms: int,
        *,
        version: int | None = None,
    ) -> AccessDecision:
        """Decide and record; raise ``AccessDeniedError`` (with the reasons) on a denial, and
        return a permit only once its event is durable."""
        decision, ticket = self.decide(request, facts, now_ms, version=version)
        if not decision.permit:
            raise AccessDeniedError(f"access denied: {', '.join(decision.reasons)}")
        ticket.wait_durable(DURABLE_WAIT_S)  # raises: then nothing is released
        return decision

    def require_privacy_officer(self, requester: str, organization: str) -> None:
        """The requester is an active privacy officer of ``organization`` (the review queue)."""
        state = self._ledger.state_reader()
        participant = read_participant(state, requester)
        if (
            participant is None
            or not participant.active
            or participant.kind != PRACTITIONER
            or PRIVACY_OFFICER not in participant.roles
            or acting_org(state, participant) != organization
        ):
            raise AccessDeniedError("only a privacy officer of this organization may see this")
