"""A real node's access-event receipts for the browser crypto tests.

A node home on disk (SQLite ledger, log and audit store, its own signing keys), started with
its block builder; access events recorded through ``node.audit`` as the access gate records
them, in two batches (each waited for before the next is recorded), and their receipts as a
patient downloads them. Nothing is mocked: the receipts are the node's own, and
``verify_event_receipt`` accepts each one before a test hands it to the browser.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.bootstrap import Node, init_home, open_node
from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.note import format_verifier_key

PASSPHRASE = "correct horse battery staple"
RECEIPT_WAIT_S = 10.0


def party(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


PATIENT, DOCTOR, ER_DOCTOR = party(31), party(21), party(23)


@dataclass(frozen=True)
class NodeReceipts:
    """What a patient's browser gets: the log's verifier key and its receipts (bytes)."""

    vkey: str
    first_batch: list[bytes]
    second_batch: list[bytes]
    checkpoint_note: bytes
    checkpoint_size: int
    checkpoint_root: bytes
    #: The checkpoint after the first batch, and the log's consistency proof to the latest.
    earlier_note: bytes
    consistency_proof: list[bytes]


def _event(node_did: str, **changes: Any) -> AccessEvent:
    fields: dict[str, Any] = {
        "event_id": new_event_id(secrets.token_bytes(16)),
        "time_ms": int(time.time() * 1000),
        "node": node_did,
        "actor": DOCTOR,
        "actor_org": node_did,
        "patient": PATIENT,
        "action": "read",
        "resource_type": "Observation",
        "record_id": "obs-1",
        "version": 1,
        "purpose": "TREAT",
        "decision": "permit",
        "reasons": ("patient-consent",),
        "consents": ("consent-1",),
    }
    fields.update(changes)
    return AccessEvent(**fields)


def _record(node: Node, events: list[AccessEvent]) -> list[bytes]:
    for e in events:
        node.audit.record(e)
    receipts = [node.audit.wait_receipt(e.event_id, RECEIPT_WAIT_S) for e in events]
    for e, receipt in zip(events, receipts, strict=True):
        assert verify_event_receipt(receipt, node.log.verifier) == e  # Python agrees first
    return receipts


def build_node_receipts(home: Path) -> tuple[Node, NodeReceipts]:
    """Start a node in ``home`` and record two batches of events; the caller closes the node."""
    init_home(home, passphrase=PASSPHRASE)
    node = open_node(home, passphrase=PASSPHRASE)
    node.start()
    did = node.key.did
    first = _record(
        node,
        [
            _event(did),
            _event(did, decision="deny", reasons=("no-consent",), consents=(), actor=party(22)),
            _event(
                did,
                actor=ER_DOCTOR,
                purpose="ETREAT",
                decision="break-glass",
                reasons=("break-glass",),
                consents=(),
                justification="Unconscious patient in the ER; allergies needed — now.",
            ),
        ],
    )
    earlier = node.log.latest_checkpoint()
    second = _record(
        node,
        [
            _event(
                did, action="search", resource_type=None, record_id=None, version=None, consents=()
            )
        ],
    )
    latest = node.log.latest_checkpoint()
    return node, NodeReceipts(
        vkey=format_verifier_key(node.log.verifier),
        first_batch=first,
        second_batch=second,
        checkpoint_note=latest.note,
        checkpoint_size=latest.size,
        checkpoint_root=latest.root,
        earlier_note=earlier.note,
        consistency_proof=node.log.consistency_proof(earlier.size, latest.size),
    )
