"""The participants contract (medledger.core.ledger.contracts.participants)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from medledger.core.crypto.key_wrap import x25519_from_seed
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.contracts.participants import ParticipantsContract
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError, TamperError
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=7, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = ParticipantsContract()

AUTHORITY, AUTHORITY_2 = did(1), did(2)
HOSPITAL, CLINIC, CLOSED_ORG = did(10), did(11), did(12)
DOCTOR, NURSE, RETIRED, NURSE_WITH_KEY = did(20), did(21), did(22), did(23)
PATIENT, PATIENT_2, GONE_PATIENT = did(30), did(31), did(32)
NEWCOMER, STRANGER = did(50), did(99)


def enc_key(n: int) -> str:
    """A real X25519 public key, hex, as ``participant.set_encryption_key`` publishes it."""
    return x25519_from_seed(bytes([n]) * 32).public_key.hex()


KEY_1, KEY_2 = enc_key(1), enc_key(2)
_P = 2**255 - 19
#: X25519 public keys a wrap must never go to: the low-order points (any DH with them is all
#: zeros, RFC 7748 §6.1) and non-canonical encodings (u >= p, or the top bit set).
LOW_ORDER = [
    "00" * 32,  # u = 0
    "01" + "00" * 31,  # u = 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  # order 8
    (_P - 1).to_bytes(32, "little").hex(),  # u = -1, on the twist
]
NON_CANONICAL = [
    _P.to_bytes(32, "little").hex(),  # u = p, i.e. 0
    (_P + 1).to_bytes(32, "little").hex(),  # u = p + 1, i.e. 1
    KEY_1[:-2] + f"{int(KEY_1[-2:], 16) | 0x80:02x}",  # KEY_1 with the top bit set
]


def participant(
    who: str,
    kind: str,
    roles: tuple[str, ...] = (),
    *,
    organization: str | None = None,
    registered_by: str = AUTHORITY,
    active: bool = True,
    key: str | None = None,
) -> dict[str, bytes]:
    record = Participant(
        who, kind, roles, organization, None, False, active, registered_by, 1, enc_key=key
    )
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
            **participant(
                NURSE_WITH_KEY, "practitioner", ("nurse",), organization=CLINIC, key=KEY_1
            ),
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
    reason = e.value.reason
    assert reason is not None
    return reason


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
    assert record.enc_key is None


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


@pytest.mark.parametrize("sender", [PATIENT, DOCTOR, HOSPITAL, AUTHORITY, NURSE_WITH_KEY])
def test_set_encryption_key(sender: str) -> None:
    writes = apply("participant.set_encryption_key", {"enc_key": KEY_2}, sender)
    assert list(writes) == [participant_key(sender)]
    before = Participant.from_state(world().get(participant_key(sender)) or b"")
    assert stored(writes, sender) == dataclasses.replace(before, enc_key=KEY_2)


def test_set_encryption_key_replaces_the_published_one() -> None:
    state = world()
    before = Participant.from_state(state.get(participant_key(PATIENT)) or b"")
    for key in (KEY_1, KEY_2, KEY_2, KEY_1):
        state.apply(
            CONTRACT.apply(
                tx("participant.set_encryption_key", {"enc_key": key}, PATIENT), state, CTX
            )
        )
        record = Participant.from_state(state.get(participant_key(PATIENT)) or b"")
        assert record.enc_key == key
        assert record == dataclasses.replace(before, enc_key=key)


def test_set_encryption_key_state_json_is_canonical() -> None:
    writes = apply("participant.set_encryption_key", {"enc_key": KEY_1}, PATIENT)
    assert writes[participant_key(PATIENT)] == (
        b'{"active":true,"authority":false,"did":"'
        + PATIENT.encode()
        + b'","enc_key":"'
        + KEY_1.encode()
        + b'","kind":"patient","name":null,"organization":null,"registered_at":1,'
        + b'"registered_by":"'
        + HOSPITAL.encode()
        + b'","roles":[]}'
    )


def test_enc_key_is_always_serialised_null_until_published() -> None:
    state = world()
    for who in (AUTHORITY, AUTHORITY_2, HOSPITAL, PATIENT):
        raw = state.get(participant_key(who)) or b""
        assert json.loads(raw)["enc_key"] is None
        assert b'"enc_key":null' in raw
    writes = apply("participant.register", register(NEWCOMER, "patient"), HOSPITAL)
    assert json.loads(writes[participant_key(NEWCOMER)] or b"")["enc_key"] is None


def test_participant_round_trips_with_and_without_enc_key() -> None:
    for key in (None, KEY_1):
        record = Participant(PATIENT, "patient", (), None, None, False, True, HOSPITAL, 3, key)
        assert Participant.from_state(record.to_state()) == record
        assert record.to_state() == canonical(record.to_json())


@pytest.mark.parametrize("bad", ["", KEY_1.upper(), *LOW_ORDER, *NON_CANONICAL])
def test_participant_refuses_a_bad_enc_key(bad: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        Participant(PATIENT, "patient", (), None, None, False, True, HOSPITAL, 3, bad)
    assert e.value.parameter == "enc_key"
    good = json.loads(participant(PATIENT, "patient", key=KEY_1)[participant_key(PATIENT)])
    with pytest.raises(TamperError):
        Participant.from_state(canonical({**good, "enc_key": bad}))


def test_a_participant_record_without_enc_key_is_tampered() -> None:
    record = json.loads(participant(PATIENT, "patient")[participant_key(PATIENT)])
    del record["enc_key"]
    with pytest.raises(TamperError):
        Participant.from_state(canonical(record))


# --- refusals ------------------------------------------------------------------------------

REG, ROLES, OFF = "participant.register", "participant.update_roles", "participant.deactivate"
ENC = "participant.set_encryption_key"
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
        (ENC, {}, PATIENT),
        (ENC, {"enc_key": KEY_1.upper()}, PATIENT),
        (ENC, {"enc_key": KEY_1[:-1]}, PATIENT),
        (ENC, {"enc_key": KEY_1 + "00"}, PATIENT),
        (ENC, {"enc_key": "zz" + KEY_1[2:]}, PATIENT),
        (ENC, {"enc_key": " " + KEY_1[1:]}, PATIENT),
        (ENC, {"enc_key": bytes.fromhex(KEY_1).hex(":")}, PATIENT),
        (ENC, {"enc_key": None}, PATIENT),
        (ENC, {"enc_key": 5}, PATIENT),
        (ENC, {"enc_key": [KEY_1]}, PATIENT),
        (ENC, {"enc_key": KEY_1, "did": PATIENT}, HOSPITAL),
        (ENC, {"enc_key": KEY_1, "did": PATIENT}, PATIENT),
        *[(ENC, {"enc_key": key}, PATIENT) for key in LOW_ORDER + NON_CANONICAL],
        # parsed before the sender is looked up
        (ENC, {"enc_key": "00" * 32}, STRANGER),
    ],
    "sender_not_registered": [
        (REG, register(NEWCOMER, "patient"), STRANGER),
        (REG, register(NEWCOMER, "patient"), CLOSED_ORG),
        (ROLES, {"did": DOCTOR, "roles": ["nurse"]}, STRANGER),
        (OFF, {"did": DOCTOR}, RETIRED),
        (ENC, {"enc_key": KEY_1}, STRANGER),
        (ENC, {"enc_key": KEY_1}, RETIRED),
        (ENC, {"enc_key": KEY_1}, GONE_PATIENT),
        (ENC, {"enc_key": KEY_1}, CLOSED_ORG),
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
        ("participant.set_encryption_key", {"enc_key": KEY_1}),
    ]:
        assert refusal(tx_type, payload, STRANGER) == "sender_not_registered"


def test_organization_registered_by_a_practitioner_is_refused() -> None:
    payload = register(NEWCOMER, "organization", roles=["hospital"], name="Rogue Hospital")
    assert refusal("participant.register", payload, DOCTOR) == "not_authority"


def test_self_registration_is_refused() -> None:
    assert refusal("participant.register", register(STRANGER, "patient"), STRANGER) == (
        "sender_not_registered"
    )


def test_publishing_a_key_for_another_participant_is_refused() -> None:
    """Key substitution: a hospital must not point a patient's wraps at a key it holds."""
    for sender in (HOSPITAL, AUTHORITY, DOCTOR, PATIENT_2):
        payload: dict[str, JSON] = {"did": PATIENT, "enc_key": KEY_2}
        assert refusal("participant.set_encryption_key", payload, sender) == "invalid_payload"
        # what it can send changes its own record only
        writes = apply("participant.set_encryption_key", {"enc_key": KEY_2}, sender)
        assert list(writes) == [participant_key(sender)]


def test_low_order_encryption_key_is_refused() -> None:
    """A low-order key would make every wrap to it readable by anyone (the DH is all zeros)."""
    for key in LOW_ORDER:
        payload: dict[str, JSON] = {"enc_key": key}
        assert refusal("participant.set_encryption_key", payload, PATIENT) == "invalid_payload"


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
    ("participant.set_encryption_key", {"enc_key": KEY_1}, PATIENT),
    ("participant.set_encryption_key", {"enc_key": KEY_2}, NURSE_WITH_KEY),
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
