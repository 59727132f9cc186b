"""The access-batch contract (medledger.core.ledger.contracts.access_batch)."""

from __future__ import annotations

import hashlib
import json

import pytest

from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.access_batch import AccessBatchContract, batch_key
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError
from medledger.core.ledger.tx import Transaction
from medledger.testing.memory_state_reader import DictState

from .world import did, participant

NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=7, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = AccessBatchContract()
AUTHORITY, HOSPITAL, CLOSED_ORG = did(1), did(10), did(12)
DOCTOR, PATIENT, STRANGER = did(20), did(30), did(99)
ROOT = hashlib.sha256(b"batch root").hexdigest()


def world() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLOSED_ORG, "organization", ("clinic",), active=False),
            **participant(DOCTOR, "practitioner", ("physician",), org=HOSPITAL),
            **participant(PATIENT, "patient"),
        }
    )


def batch(**changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {
        "batch_id": "batch-0001",
        "root": ROOT,
        "count": 42,
        "first_time_ms": 1_699_999_000_000,
        "last_time_ms": 1_699_999_999_000,
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def tx(payload: dict[str, JSON], sender: str, tx_type: str = "access.batch") -> Transaction:
    return Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2_000_000_000)


def refusal(state: DictState, payload: dict[str, JSON], sender: str) -> str:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(payload, sender), state, CTX)
    return e.value.reason


@pytest.mark.parametrize(
    "payload",
    [
        batch(),
        batch(count=1, first_time_ms=0, last_time_ms=0),
        batch(batch_id="A" * 64, count=1_000_000),
        batch(batch_id="abcdefgh"),
    ],
)
@pytest.mark.parametrize("sender", [HOSPITAL, AUTHORITY])
def test_anchor_a_batch(payload: dict[str, JSON], sender: str) -> None:
    writes = CONTRACT.apply(tx(payload, sender), world(), CTX)
    key = batch_key(str(payload["batch_id"]))
    assert list(writes) == [key]
    value = writes[key]
    assert value is not None
    assert value == canonical(json.loads(value))
    assert json.loads(value) == {**payload, "org": sender, "height": CTX.height}


REFUSED: dict[str, list[tuple[dict[str, JSON], str]]] = {
    "invalid_payload": [
        (batch(batch_id="short"), HOSPITAL),
        (batch(batch_id="a" * 65), HOSPITAL),
        (batch(batch_id="batch/0001"), HOSPITAL),
        (batch(batch_id=12345678), HOSPITAL),
        (batch(root=ROOT.upper()), HOSPITAL),
        (batch(root=ROOT[:-2]), HOSPITAL),
        (batch(root=None), HOSPITAL),
        (batch(count=0), HOSPITAL),
        (batch(count=1_000_001), HOSPITAL),
        (batch(count="42"), HOSPITAL),
        (batch(count=True), HOSPITAL),
        (batch(first_time_ms=-1), HOSPITAL),
        (batch(last_time_ms=1_699_998_999_999), HOSPITAL),
        (batch(last_time_ms=...), HOSPITAL),
        (batch(events=["patient X read by Y"]), HOSPITAL),
    ],
    "sender_not_registered": [(batch(), STRANGER), (batch(), CLOSED_ORG)],
    "not_organization": [(batch(), DOCTOR), (batch(), PATIENT)],
}
REFUSALS = [(p, s, reason) for reason, cases in REFUSED.items() for p, s in cases]


@pytest.mark.parametrize(("payload", "sender", "reason"), REFUSALS)
def test_refusal(payload: dict[str, JSON], sender: str, reason: str) -> None:
    assert refusal(world(), payload, sender) == reason


def test_duplicate_access_batch_is_refused() -> None:
    state = world()
    state.apply(CONTRACT.apply(tx(batch(), HOSPITAL), state, CTX))
    assert refusal(state, batch(), HOSPITAL) == "duplicate_batch"
    assert refusal(state, batch(root=hashlib.sha256(b"other").hexdigest()), AUTHORITY) == (
        "duplicate_batch"
    )


def test_sender_not_registered_is_refused() -> None:
    assert refusal(world(), batch(), STRANGER) == "sender_not_registered"


def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(batch(count=0), HOSPITAL), world(), CTX)
    assert str(e.value).startswith("count:")


def test_another_type_is_refused() -> None:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(batch(), HOSPITAL, "access.other"), world(), CTX)
    assert e.value.reason == "unknown_type"


@pytest.mark.parametrize(
    ("payload", "sender"), [(p, s) for p, s, _ in REFUSALS] + [(batch(), HOSPITAL)]
)
def test_deterministic_and_never_mutates_the_state(payload: dict[str, JSON], sender: str) -> None:
    state = world()
    before = state.snapshot()

    def outcome() -> object:
        try:
            return dict(CONTRACT.apply(tx(payload, sender), state, CTX))
        except ContractError as e:
            return (e.reason, str(e))

    assert outcome() == outcome()
    assert state.snapshot() == before
