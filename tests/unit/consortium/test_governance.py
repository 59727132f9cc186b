"""The governance contract: an authority is added or removed by a majority of the current ones."""

from __future__ import annotations

import json

import pytest

from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.contracts.governance import (
    AUTHORITIES_KEY,
    GovernanceContract,
    current_authorities,
)
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError
from medledger.core.ledger.tx import Transaction

KEYS = [ParticipantKey.from_seed(bytes([i]) * 32) for i in range(1, 6)]
A, B, C, NEW, OTHER = (k.did for k in KEYS)
GENESIS = Genesis(
    network="net",
    time_ms=0,
    authorities=tuple(
        Authority(did=d, name=f"Org {i}", roles=("hospital",)) for i, d in enumerate((A, B, C))
    ),
)
CTX = BlockContext("net", 5, 1_000, A)


class State(dict[str, bytes]):
    def get(self, key: str) -> bytes | None:  # type: ignore[override]
        return super().get(key)

    def apply(self, writes) -> None:  # type: ignore[no-untyped-def]
        for k, v in writes.items():
            if v is None:
                self.pop(k, None)
            else:
                self[k] = v


def tx(sender: str, tx_type: str, payload: dict[str, object]) -> Transaction:
    return Transaction(
        network="net",
        type=tx_type,
        payload=payload,
        sender=sender,
        nonce="nonce-0001",
        expires=10**9,
    )


def run(state: State, sender: str, tx_type: str, payload: dict[str, object]) -> None:
    state.apply(GovernanceContract((A, B, C)).apply(tx(sender, tx_type, payload), state, CTX))


def add(did: str = NEW) -> dict[str, object]:
    return {
        "proposal_id": "proposal-1",
        "action": "add",
        "did": did,
        "name": "Newcomer",
        "roles": ["clinic"],
    }


@pytest.fixture
def state() -> State:
    return State(genesis_writes(GENESIS))


def test_one_approval_of_three_is_no_majority_two_are(state: State) -> None:
    run(state, A, "authority.propose", add())
    assert current_authorities(state, (A, B, C)) == tuple(sorted((A, B, C)))
    run(state, B, "authority.approve", {"proposal_id": "proposal-1"})
    assert NEW in current_authorities(state, (A, B, C))
    record = json.loads(state[f"participant/{NEW}"])
    assert record["authority"] and record["active"]


def test_only_a_current_authority_proposes_or_approves(state: State) -> None:
    with pytest.raises(ContractError) as e:
        run(state, OTHER, "authority.propose", add())
    assert e.value.reason == "not_authority"
    run(state, A, "authority.propose", add())
    with pytest.raises(ContractError) as e:
        run(state, OTHER, "authority.approve", {"proposal_id": "proposal-1"})
    assert e.value.reason == "not_authority"


def test_an_authority_approves_once_and_a_decided_proposal_takes_no_more(state: State) -> None:
    run(state, A, "authority.propose", add())
    with pytest.raises(ContractError) as e:
        run(state, A, "authority.approve", {"proposal_id": "proposal-1"})
    assert e.value.reason == "already_approved"
    run(state, B, "authority.approve", {"proposal_id": "proposal-1"})
    with pytest.raises(ContractError) as e:
        run(state, C, "authority.approve", {"proposal_id": "proposal-1"})
    assert e.value.reason == "already_decided"


def test_removal_clears_the_authority_flag(state: State) -> None:
    run(state, A, "authority.propose", {"proposal_id": "remove-c1", "action": "remove", "did": C})
    run(state, B, "authority.approve", {"proposal_id": "remove-c1"})
    assert state[AUTHORITIES_KEY] == canonical(sorted((A, B)))
    assert json.loads(state[f"participant/{C}"])["authority"] is False


def test_adding_a_current_authority_changes_nothing(state: State) -> None:
    with pytest.raises(ContractError) as e:
        run(state, A, "authority.propose", add(B))
    assert e.value.reason == "no_change"
