"""The break-glass review contract: an organization's privacy officer rules on an emergency
access, on the ledger.

A break-glass access is an access event like any other (off-chain, in a signed batch anchored by
``access.batch``); it is queued at its organization for review, and the review itself is a
transaction, so the patient and any auditor can see that it was reviewed, by whom and with what
outcome.

``access.review`` ``{"batch_id", "event_id", "outcome"[, "note_commitment"]}``
  1. parse: ids as the batch and event formats, ``outcome`` one of ``OUTCOMES``, the optional
     ``note_commitment`` 64 lowercase hex digits when present (``invalid_payload``);
  2. the sender is an active participant (``sender_not_registered``), a practitioner with the
     ``privacy-officer`` role (``not_privacy_officer``);
  3. the batch is anchored (``unknown_batch``) by the sender's own organization
     (``not_own_organization``);
  4. the event has no review yet (``already_reviewed``).

State: ``review/<event_id>`` -> ``{"batch_id", "outcome", "reviewer", "height", "time_ms"}``,
plus ``note_commitment`` when the review carries one. The note itself never reaches the ledger
(free text, PHI-prone: ADR 0022); the commitment is ``core.audit.review_note.note_commitment``.
Not handled here: that the event is in the batch (events stay off-chain; the reviewer's node
checks it against the batch root before it submits), and the note (the node holding the event
keeps it, ``services/review_notes.py``).
"""

from __future__ import annotations

import re
from typing import Final

from medledger.core.audit.review_note import COMMITMENT
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.access_batch import BATCH_ID, batch_key
from medledger.core.ledger.contracts.common import (
    PRACTITIONER,
    Fields,
    acting_org,
    load_state_object,
    require_sender,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction

REVIEW: Final = "access.review"
REVIEW_PREFIX: Final = "review/"
PRIVACY_OFFICER: Final = "privacy-officer"
#: ``justified``: the emergency warranted it; ``unjustified``: it did not (the organization
#: follows up); ``referred``: passed on (e.g. to the data protection officer).
OUTCOMES: Final = frozenset({"justified", "unjustified", "referred"})

NOT_PRIVACY_OFFICER: Final = "not_privacy_officer"
UNKNOWN_BATCH: Final = "unknown_batch"
NOT_OWN_ORGANIZATION: Final = "not_own_organization"
ALREADY_REVIEWED: Final = "already_reviewed"

EVENT_ID: Final = re.compile(r"[a-z2-7]{26}")


def review_key(event_id: str) -> str:
    return f"{REVIEW_PREFIX}{event_id}"


class ReviewContract:
    """Privacy officers' reviews of break-glass accesses."""

    name: Final = "review"
    namespace: Final = REVIEW_PREFIX
    tx_types: Final = frozenset({REVIEW})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type != REVIEW:
            raise ContractError("unknown_type", f"the review contract has no {tx.type}")
        fields = Fields(
            tx.payload,
            required=("batch_id", "event_id", "outcome"),
            optional=("note_commitment",),
        )
        batch_id = fields.text("batch_id", BATCH_ID, "must be 8-64 of [A-Za-z0-9_-]")
        event_id = fields.text("event_id", EVENT_ID, "must be 26 lowercase base32 characters")
        outcome = fields.choice("outcome", OUTCOMES)
        # present means a commitment (never null): one spelling per review
        commitment = (
            fields.text("note_commitment", COMMITMENT, "must be 64 lowercase hex digits")
            if "note_commitment" in tx.payload
            else None
        )
        sender = require_sender(state, tx.sender)
        if sender.kind != PRACTITIONER or PRIVACY_OFFICER not in sender.roles:
            raise ContractError(NOT_PRIVACY_OFFICER, "only a privacy officer reviews")
        raw = state.get(batch_key(batch_id))
        if raw is None:
            raise ContractError(UNKNOWN_BATCH, "batch_id: no such anchored batch")
        org = acting_org(state, sender)
        if org is None or load_state_object(raw).get("org") != org:
            raise ContractError(
                NOT_OWN_ORGANIZATION, "a privacy officer reviews their own organization's events"
            )
        key = review_key(event_id)
        if state.get(key) is not None:
            raise ContractError(ALREADY_REVIEWED, "event_id: already reviewed")
        value: dict[str, JSON] = {
            "batch_id": batch_id,
            "outcome": outcome,
            "reviewer": sender.did,
            "height": ctx.height,
            "time_ms": ctx.time_ms,
        }
        if commitment is not None:
            value["note_commitment"] = commitment
        return {key: canonical(value)}
