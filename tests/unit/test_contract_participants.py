"""The participants contract (medledger.core.ledger.contracts.participants)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.contracts.participants import ParticipantsContract
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError, Writes
from medledger.core.ledger.tx import Transaction
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=7, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = ParticipantsContract()

AUTHORITY, AUTHORITY_2 = did(1), did(2)
HOSPITAL, CLINIC, CLOSED_ORG = did(10), did(11), did(12)
DOCTOR, NURSE, RETIRED = did(20), did(21), did(22)
PATIENT, PATIENT_2, GONE_PATIENT = did(30), did(31), did(32)
NEWCOMER, STRANGER = did(50), did(99)


def participant(
    who: str,
    kind: str,
    roles: tuple[str, ...] = (),
    *,
    organization: str | None = None,
    registered_by: str = AUTHORITY,
    active: bool = True,
) -> dict[str, bytes]:
    record = Participant(who, kind, roles, organization, None, False, active, registered_by, 1)
    return {participant_key(who): record.to_state()}


def world() -> DictState:
    """Two authorities, two hospitals and a closed one, their staff and patients."""
    genesis = Genesis(
        NETWORK,
        0,
        (
            Authority(AUTHORITY, "Health Authority", ("regulator",)),
            Authority(AUTHORITY_2, "Lab", ("lab",)),
        ),
    )
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLINIC, "organization", ("clinic",)),
            **participant(CLOSED_ORG, "organization", ("clinic",), active=False),
            **participant(DOCTOR, "practitioner", ("physician",), organization=HOSPITAL),
            **participant(NURSE, "practitioner", ("nurse",), organization=CLINIC),
            **participant(RETIRED, "practitioner", ("nurse",), organization=HOSPITAL, active=False),
            **participant(PATIENT, "patient", registered_by=HOSPITAL),
            **participant(PATIENT_2, "patient", registered_by=CLINIC),
            **participant(GONE_PATIENT, "patient", registered_by=HOSPITAL, active=False),
        }
    )


def tx(tx_type: str, payload: dict[str, JSON], sender: str) -> Transaction:
    return Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2_000_000_000)


def apply(tx_type: str, payload: dict[str, JSON], sender: str) -> Writes:
    return CONTRACT.apply(tx(tx_type, payload, sender), world(), CTX)


def refusal(tx_type: str, payload: dict[str, JSON], sender: str) -> str:
    with pytest.raises(ContractError) as e:
        apply(tx_type, payload, sender)
    return e.value.reason


def register(who: str, kind: str, **fields: JSON) -> dict[str, JSON]:
    return {"did": who, "kind": kind, **fields}


def stored(writes: Writes, who: str) -> Participant:
    value = writes[participant_key(who)]
    assert value is not None
    assert value == canonical(json.loads(value))
    return Participant.from_state(value)


# --- happy paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "sender"),
    [
        (register(NEWCOMER, "organization", roles=["lab", "clinic"], name="Lab One"), AUTHORITY),
        (register(NEWCOMER, "organization", roles=["research"]), AUTHORITY_2),
        (register(NEWCOMER, "practitioner", roles=["nurse"], organization=HOSPITAL), AUTHORITY),
        (register(NEWCOMER, "patient"), HOSPITAL),
        (register(NEWCOMER, "patient", roles=[], organization=None, name=None), CLINIC),
        (register(NEWCOMER, "patient"), AUTHORITY),
    ],
)
def test_register(payload: dict[str, JSON], sender: str) -> None:
    writes = apply("participant.register", payload, sender)
    assert list(writes) == [participant_key(NEWCOMER)]
    record = stored(writes, NEWCOMER)
    assert (record.kind, record.registered_by, record.registered_at) == (
        payload["kind"],
        sender,
        CTX.height,
    )
    assert record.active
    assert not record.authority
    assert list(record.roles) == sorted(payload.get("roles", []))
    assert record.organization == payload.get("organization")
    assert record.name == payload.get("name")


@pytest.mark.parametrize(
    ("target", "roles", "sender"),
    [
        (DOCTOR, ["physician", "emergency-physician"], AUTHORITY),
        (HOSPITAL, ["hospital", "research"], AUTHORITY_2),
        (AUTHORITY_2, ["lab", "research"], AUTHORITY),
        (PATIENT, [], HOSPITAL),
    ],
)
def test_update_roles(target: str, roles: list[str], sender: str) -> None:
    writes = apply("participant.update_roles", {"did": target, "roles": roles}, sender)
    before = Participant.from_state(world().get(participant_key(target)) or b"")
    assert stored(writes, target) == dataclasses.replace(before, roles=tuple(sorted(roles)))


@pytest.mark.parametrize(
    ("target", "sender"),
    [(DOCTOR, AUTHORITY), (HOSPITAL, AUTHORITY_2), (PATIENT, HOSPITAL), (PATIENT_2, AUTHORITY)],
)
def test_deactivate(target: str, sender: str) -> None:
    writes = apply("participant.deactivate", {"did": target}, sender)
    before = Participant.from_state(world().get(participant_key(target)) or b"")
    assert stored(writes, target) == dataclasses.replace(before, active=False)


# --- refusals ------------------------------------------------------------------------------

REG, ROLES, OFF = "participant.register", "participant.update_roles", "participant.deactivate"
ORG, PRAC = "organization", "practitioner"
#: reason -> the (type, payload, sender) cases refused with it.
REFUSED: dict[str, list[tuple[str, dict[str, JSON], str]]] = {
    "invalid_payload": [
        (REG, register(NEWCOMER, ORG, roles=["nurse"]), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=[]), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab", "lab"]), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles="lab"), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=[1]), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab"] * 17), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab"], name="x" * 201), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab"], name="a\u202eb"), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab"], name=5), AUTHORITY),
        (REG, register(NEWCOMER, ORG, roles=["lab"], organization=HOSPITAL), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization=CLINIC, name="J"), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"]), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization="hospital"), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["hospital"], organization=HOSPITAL), AUTHORITY),
        (REG, register(NEWCOMER, "patient", name="Jane Doe"), HOSPITAL),
        (REG, register(NEWCOMER, "patient", roles=["physician"]), HOSPITAL),
        (REG, register(NEWCOMER, "patient", birth_date="1970-01-01"), HOSPITAL),
        (REG, register(NEWCOMER, ORG, roles=["regulator"], authority=True), AUTHORITY),
        (REG, register("did:web:example.org", "patient"), HOSPITAL),
        (REG, register(NEWCOMER, "robot"), HOSPITAL),
        (REG, {"kind": "patient"}, HOSPITAL),
        (ROLES, {"did": DOCTOR}, AUTHORITY),
        (ROLES, {"did": DOCTOR, "roles": ["surgeon"]}, AUTHORITY),
        (ROLES, {"did": PATIENT, "roles": ["nurse"]}, HOSPITAL),
        (ROLES, {"did": DOCTOR, "roles": ["nurse"], "kind": ORG}, AUTHORITY),
        (OFF, {"did": 5}, AUTHORITY),
        (OFF, {}, AUTHORITY),
    ],
    "sender_not_registered": [
        (REG, register(NEWCOMER, "patient"), STRANGER),
        (REG, register(NEWCOMER, "patient"), CLOSED_ORG),
        (ROLES, {"did": DOCTOR, "roles": ["nurse"]}, STRANGER),
        (OFF, {"did": DOCTOR}, RETIRED),
    ],
    "not_authority": [
        (REG, register(NEWCOMER, ORG, roles=["lab"]), HOSPITAL),
        (REG, register(NEWCOMER, ORG, roles=["lab"]), DOCTOR),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization=HOSPITAL), HOSPITAL),
        (ROLES, {"did": DOCTOR, "roles": ["nurse"]}, HOSPITAL),
        (ROLES, {"did": DOCTOR, "roles": ["nurse"]}, DOCTOR),
        (ROLES, {"did": PATIENT, "roles": []}, CLINIC),
        (OFF, {"did": DOCTOR}, HOSPITAL),
        (OFF, {"did": PATIENT}, CLINIC),
        (OFF, {"did": PATIENT}, DOCTOR),
        (OFF, {"did": PATIENT}, PATIENT),
        (OFF, {"did": HOSPITAL}, HOSPITAL),
    ],
    "not_organization": [
        (REG, register(NEWCOMER, "patient"), DOCTOR),
        (REG, register(NEWCOMER, "patient"), PATIENT),
    ],
    "unknown_organization": [
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization=STRANGER), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization=PATIENT), AUTHORITY),
        (REG, register(NEWCOMER, PRAC, roles=["nurse"], organization=CLOSED_ORG), AUTHORITY),
    ],
    "already_registered": [
        (REG, register(PATIENT, "patient"), HOSPITAL),
        (REG, register(GONE_PATIENT, "patient"), HOSPITAL),
        (REG, register(AUTHORITY_2, ORG, roles=["lab"]), AUTHORITY),
    ],
    "unknown_participant": [
        (ROLES, {"did": NEWCOMER, "roles": ["nurse"]}, AUTHORITY),
        (OFF, {"did": NEWCOMER}, AUTHORITY),
    ],
    "not_allowed": [
        (OFF, {"did": AUTHORITY_2}, AUTHORITY),
        (OFF, {"did": AUTHORITY}, AUTHORITY),
    ],
    "participant_inactive": [
        (ROLES, {"did": RETIRED, "roles": ["nurse"]}, AUTHORITY),
        (OFF, {"did": GONE_PATIENT}, HOSPITAL),
        (OFF, {"did": CLOSED_ORG}, AUTHORITY),
    ],
}
REFUSALS = [(t, p, s, reason) for reason, cases in REFUSED.items() for t, p, s in cases]


@pytest.mark.parametrize(("tx_type", "payload", "sender", "reason"), REFUSALS)
def test_refusal(tx_type: str, payload: dict[str, JSON], sender: str, reason: str) -> None:
    assert refusal(tx_type, payload, sender) == reason


def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(ContractError) as e:
        apply("participant.register", register(NEWCOMER, "patient", name="Jane Doe"), HOSPITAL)
    assert str(e.value).startswith("name:")
    assert "Jane" not in str(e.value)


# --- regressions, named after the attack ---------------------------------------------------


def test_practitioner_registered_by_a_non_authority_is_refused() -> None:
    payload = register(NEWCOMER, "practitioner", roles=["physician"], organization=HOSPITAL)
    for sender in (HOSPITAL, CLINIC, DOCTOR, PATIENT):
        assert refusal("participant.register", payload, sender) == "not_authority"


def test_sender_not_registered_is_refused() -> None:
    for tx_type, payload in [
        ("participant.register", register(NEWCOMER, "patient")),
        ("participant.update_roles", {"did": DOCTOR, "roles": ["nurse"]}),
        ("participant.deactivate", {"did": PATIENT}),
    ]:
        assert refusal(tx_type, payload, STRANGER) == "sender_not_registered"


def test_organization_registered_by_a_practitioner_is_refused() -> None:
    payload = register(NEWCOMER, "organization", roles=["hospital"], name="Rogue Hospital")
    assert refusal("participant.register", payload, DOCTOR) == "not_authority"


def test_self_registration_is_refused() -> None:
    assert refusal("participant.register", register(STRANGER, "patient"), STRANGER) == (
        "sender_not_registered"
    )


def test_deactivated_participant_cannot_act_nor_be_reactivated() -> None:
    state = world()
    state.apply(
        CONTRACT.apply(tx("participant.deactivate", {"did": DOCTOR}, AUTHORITY), state, CTX)
    )
    payload = register(NEWCOMER, "patient")
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx("participant.register", payload, DOCTOR), state, CTX)
    assert e.value.reason == "sender_not_registered"
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(
            tx("participant.register", register(DOCTOR, "patient"), HOSPITAL), state, CTX
        )
    assert e.value.reason == "already_registered"


# --- properties of every case ----------------------------------------------------------------

ALL_CASES = [(t, p, s) for t, p, s, _ in REFUSALS] + [
    ("participant.register", register(NEWCOMER, "patient"), HOSPITAL),
    ("participant.update_roles", {"did": DOCTOR, "roles": ["nurse"]}, AUTHORITY),
    ("participant.deactivate", {"did": PATIENT}, HOSPITAL),
]


def outcome(tx_type: str, payload: dict[str, JSON], sender: str, state: DictState) -> object:
    try:
        return dict(CONTRACT.apply(tx(tx_type, payload, sender), state, CTX))
    except ContractError as e:
        return (e.reason, str(e))


@pytest.mark.parametrize(("tx_type", "payload", "sender"), ALL_CASES)
def test_deterministic_and_never_mutates_the_state(
    tx_type: str, payload: dict[str, JSON], sender: str
) -> None:
    state = world()
    before = state.snapshot()
    first = outcome(tx_type, payload, sender, state)
    assert outcome(tx_type, payload, sender, state) == first
    assert state.snapshot() == before
