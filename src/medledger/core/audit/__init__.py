"""Access events: every access decision as a leaf of a KSI-style Merkle batch (ADR 0014).

One idea per module:

- ``event``: the ``AccessEvent`` value (codes and pseudonymous ids only) and its leaf bytes;
- ``batch``: a sealed batch of events, its RFC 9162 root and per-event inclusion proofs;
- ``receipt``: an event's offline-verifiable receipt (batch inclusion + the batch's anchor
  transaction in the transparency log under a signed checkpoint);
- ``fhir``: an event as FHIR R4 ``AuditEvent`` resources (IHE Basic Audit Log Patterns).

Pure: no I/O, no clock, no randomness (callers pass random bytes in).
"""

from medledger.core.audit.event import (
    ACTIONS,
    DECISIONS,
    AccessEvent,
    new_event_id,
    parse_event,
)

__all__ = ["ACTIONS", "DECISIONS", "AccessEvent", "new_event_id", "parse_event"]
