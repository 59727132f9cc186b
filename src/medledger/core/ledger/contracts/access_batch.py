"""The access-batch contract: anchors a signed Merkle batch of access events.

Every access attempt (granted, denied or break-glass) is an access event; a node aggregates its
events into a batch whose RFC 9162 root it anchors here, KSI-style: one transaction, and so one
signature by the organization's node key, covers the whole batch. The events themselves stay
off-chain; a patient checks one against ``root`` with an inclusion proof.

``access.batch`` ``{"batch_id", "root", "count", "first_time_ms", "last_time_ms"}``
  1. parse: ``batch_id`` 8-64 of [A-Za-z0-9_-], ``root`` 64 lowercase hex, ``count`` in
     1..1_000_000, ``0 <= first_time_ms <= last_time_ms`` (``invalid_payload``);
  2. the sender is an active participant (``sender_not_registered``) and an organization
     (``not_organization``);
  3. the batch id is new (``duplicate_batch``).

State: ``access-batch/<batch_id>`` -> the payload + ``{"org": sender, "height"}``. Not handled
here: checking the events or their times against the block time (the batch's times are the
organization's claim, signed by it).
"""

from __future__ import annotations

import re
from typing import Final

from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.common import HEX64, ORGANIZATION, Fields, require_sender
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction

ACCESS_BATCH: Final = "access.batch"
ACCESS_BATCH_PREFIX: Final = "access-batch/"
MAX_BATCH_EVENTS: Final = 1_000_000

DUPLICATE_BATCH: Final = "duplicate_batch"
NOT_ORGANIZATION: Final = "not_organization"

BATCH_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")


def batch_key(batch_id: str) -> str:
    return f"{ACCESS_BATCH_PREFIX}{batch_id}"


class AccessBatchContract:
    """Anchors the roots of organizations' access-event batches."""

    name: Final = "access_batch"
    namespace: Final = ACCESS_BATCH_PREFIX
    tx_types: Final = frozenset({ACCESS_BATCH})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type != ACCESS_BATCH:
            raise ContractError("unknown_type", f"the access-batch contract has no {tx.type}")
        fields = Fields(
            tx.payload,
            required=("batch_id", "root", "count", "first_time_ms", "last_time_ms"),
        )
        batch_id = fields.text("batch_id", BATCH_ID, "must be 8-64 of [A-Za-z0-9_-]")
        root = fields.text("root", HEX64, "must be 64 lowercase hex digits")
        count = fields.integer("count", 1, MAX_BATCH_EVENTS)
        first = fields.integer("first_time_ms", 0, MAX_SAFE_INTEGER)
        last = fields.integer("last_time_ms", first, MAX_SAFE_INTEGER)
        sender = require_sender(state, tx.sender)
        if sender.kind != ORGANIZATION:
            raise ContractError(NOT_ORGANIZATION, "only an organization's node anchors a batch")
        key = batch_key(batch_id)
        if state.get(key) is not None:
            raise ContractError(DUPLICATE_BATCH, "batch_id: already anchored")
        value = {
            "batch_id": batch_id,
            "root": root,
            "count": count,
            "first_time_ms": first,
            "last_time_ms": last,
            "org": sender.did,
            "height": ctx.height,
        }
        return {key: canonical(value)}
