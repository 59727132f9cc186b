"""Synthetic audit entries: ~200 bytes of canonical JSON each, a pure function of the index.

Being a function of the index lets every phase regenerate the same entries batch by batch
(memory stays flat) and lets a verifier recompute any leaf hash without reading the log.
"""

from __future__ import annotations

import hashlib
import time

_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z; four events per second
_ACTIONS = ("read", "read", "search", "create", "update")
_RESOURCES = ("Observation", "Condition", "MedicationRequest", "DiagnosticReport", "Encounter")
_PURPOSES = ("TREAT", "TREAT", "ETREAT", "HPAYMT", "HOPERAT")
_DECISIONS = ("granted", "granted", "granted", "denied", "break-glass")


def audit_entry(index: int) -> bytes:
    """One access event, keys sorted, no spaces (the RFC 8785 shape the node writes)."""
    d = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=16).digest()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_EPOCH + index // 4))
    return (
        f'{{"action":"{_ACTIONS[d[0] % 5]}",'
        f'"actor":"did:web:org{d[1] % 16}.example#{d[2:5].hex()}",'
        f'"decision":"{_DECISIONS[d[5] % 5]}","patient":"did:key:z6Mk{d[6:14].hex()}",'
        f'"purpose":"{_PURPOSES[d[14] % 5]}",'
        f'"resource":"{_RESOURCES[d[15] % 5]}/{d[8:12].hex()}",'
        f'"seq":{index},"ts":"{ts}.{index % 4 * 250:03d}Z"}}'
    ).encode()


def audit_batch(start: int, count: int) -> list[bytes]:
    """Entries [start, start + count)."""
    return [audit_entry(i) for i in range(start, start + count)]
