"""The break-glass review contract (medledger.core.ledger.contracts.review), with the optional
commitment to the officer's off-ledger note (ADR 0022)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from medledger.core.audit.review_note import note_commitment
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.contracts.access_batch import batch_key
from medledger.core.ledger.contracts.review import ReviewContract, review_key
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError
from medledger.core.ledger.tx import Transaction
from medledger.testing.memory_state_reader import DictState

from .world import did, participant

NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=9, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = ReviewContract()
AUTHORITY, HOSPITAL, CLINIC = did(1), did(10), did(11)
OFFICER, CLINIC_OFFICER, DOCTOR = did(20), did(21), did(22)
EVENT = "a" * 26
NOTE = "Checked with the ER lead: the patient was unconscious, access warranted."
SALT = bytes(range(32))


def world() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLINIC, "organization", ("clinic",)),
            **participant(OFFICER, "practitioner", ("privacy-officer",), org=HOSPITAL),
            **participant(CLINIC_OFFICER, "practitioner", ("privacy-officer",), org=CLINIC),
            **participant(DOCTOR, "practitioner", ("physician",), org=HOSPITAL),
            batch_key("batch-0001"): json.dumps({"org": HOSPITAL}).encode(),
        }
    )


def review(**changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {"batch_id": "batch-0001", "event_id": EVENT, "outcome": "justified"}
    payload.update(changes)
    return payload


def apply(payload: dict[str, JSON], sender: str = OFFICER, state: DictState | None = None) -> Any:
    tx = Transaction(NETWORK, "access.review", payload, sender, "nonce-0001", 2_000_000_000)
    return CONTRACT.apply(tx, state or world(), CTX)


def refusal(payload: dict[str, JSON], sender: str = OFFICER) -> tuple[str | None, str]:
    with pytest.raises(ContractError) as e:
        apply(payload, sender)
    return e.value.reason, str(e.value)


def test_a_review_without_a_note_writes_the_ruling_only() -> None:
    writes = apply(review())
    assert json.loads(writes[review_key(EVENT)]) == {
        "batch_id": "batch-0001", "outcome": "justified", "reviewer": OFFICER,
        "height": 9, "time_ms": 1_700_000_000_000,
    }  # fmt: skip


def test_a_review_with_a_note_commits_to_it_and_never_holds_its_text() -> None:
    commitment = note_commitment(EVENT, NOTE, SALT)
    writes = apply(review(outcome="unjustified", note_commitment=commitment))
    stored = writes[review_key(EVENT)]
    assert json.loads(stored)["note_commitment"] == commitment
    assert json.loads(stored)["outcome"] == "unjustified"
    assert NOTE.encode() not in stored and SALT.hex().encode() not in stored


@pytest.mark.parametrize(
    "bad",
    [
        None,  # present means a commitment: null is not "no note"
        "",
        "A" * 64,  # uppercase: one spelling
        "0" * 63,
        "0" * 65,
        "g" * 64,
        7,
        ["0" * 64],
        NOTE,  # the note itself in place of its commitment: refused
    ],
)
def test_a_malformed_note_commitment_is_refused_by_name(bad: JSON) -> None:
    reason, message = refusal(review(note_commitment=bad))
    assert reason == "invalid_payload" and "note_commitment" in message


def test_the_note_text_is_not_a_field_of_the_transaction() -> None:
    reason, message = refusal(review(note=NOTE))
    assert reason == "invalid_payload" and "unknown field" in message


def test_only_a_privacy_officer_of_the_anchoring_organization_reviews() -> None:
    commitment = note_commitment(EVENT, NOTE, SALT)
    assert refusal(review(note_commitment=commitment), DOCTOR)[0] == "not_privacy_officer"
    assert refusal(review(note_commitment=commitment), CLINIC_OFFICER)[0] == (
        "not_own_organization"
    )


def test_a_second_review_with_another_note_is_refused() -> None:
    state = world()
    state.apply(apply(review(note_commitment=note_commitment(EVENT, NOTE, SALT))))
    other = note_commitment(EVENT, "a different story", bytes(32))
    with pytest.raises(ContractError) as e:
        apply(review(note_commitment=other), state=state)
    assert e.value.reason == "already_reviewed"
