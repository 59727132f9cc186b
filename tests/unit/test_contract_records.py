"""The records contract (medledger.core.ledger.contracts.records): chained record versions."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.contracts.records import (
    RecordHead,
    RecordsContract,
    Tombstone,
    head_key,
    version_key,
)
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError, Writes
from medledger.core.ledger.tx import Transaction
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=7, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = RecordsContract()

AUTHORITY = did(1)
HOSPITAL, CLINIC, CLOSED_ORG = did(10), did(11), did(12)
DOCTOR, DOCTOR_2, NURSE, RETIRED, ORPHAN = did(20), did(23), did(21), did(22), did(24)
PATIENT, PATIENT_2, GONE_PATIENT = did(30), did(31), did(32)
STRANGER = did(99)

COMMITMENT = hashlib.sha256(b"salted commitment").hexdigest()
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
ANCHOR, TOMBSTONE = "record.anchor", "record.tombstone"


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


def tx(tx_type: str, payload: dict[str, JSON], sender: str) -> Transaction:
    return Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2_000_000_000)


def anchor(version: JSON = 1, prev: JSON = None, **changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {
        "patient": PATIENT,
        "record_id": "rec-1",
        "resource_type": "Observation",
        "version": version,
        "commitment": COMMITMENT,
        "cid": CID,
        "prev": prev,
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def tombstone(reason: str = "erasure", **changes: JSON) -> dict[str, JSON]:
    return {"patient": PATIENT, "record_id": "rec-1", "reason": reason, **changes}


def run(state: DictState, tx_type: str, payload: dict[str, JSON], sender: str) -> Writes:
    """Apply and commit; the transaction must succeed."""
    writes = CONTRACT.apply(tx(tx_type, payload, sender), state, CTX)
    state.apply(writes)
    return writes


def refusal(state: DictState, tx_type: str, payload: dict[str, JSON], sender: str) -> str:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(tx_type, payload, sender), state, CTX)
    return e.value.reason


def people() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLINIC, "organization", ("clinic",)),
            **participant(CLOSED_ORG, "organization", ("clinic",), active=False),
            **participant(DOCTOR, "practitioner", ("physician",), organization=HOSPITAL),
            **participant(DOCTOR_2, "practitioner", ("nurse",), organization=HOSPITAL),
            **participant(NURSE, "practitioner", ("nurse",), organization=CLINIC),
            **participant(RETIRED, "practitioner", ("nurse",), organization=HOSPITAL, active=False),
            **participant(ORPHAN, "practitioner", ("nurse",), organization=CLOSED_ORG),
            **participant(PATIENT, "patient", registered_by=HOSPITAL),
            **participant(PATIENT_2, "patient", registered_by=CLINIC),
            **participant(GONE_PATIENT, "patient", registered_by=HOSPITAL, active=False),
        }
    )


def world() -> DictState:
    """``people()`` plus record rec-1 of PATIENT at version 1, anchored by DOCTOR (HOSPITAL)."""
    state = people()
    run(state, ANCHOR, anchor(), DOCTOR)
    return state


def head(state: DictState, patient: str = PATIENT, record_id: str = "rec-1") -> RecordHead:
    raw = state.get(head_key(patient, record_id))
    assert raw is not None
    return RecordHead.from_state(raw)


V1_HASH = head(world()).hash
OTHER_HASH = hashlib.sha256(b"another version").hexdigest()


# --- happy paths ---------------------------------------------------------------------------


def test_first_anchor_writes_the_version_and_the_head() -> None:
    state = people()
    writes = run(state, ANCHOR, anchor(), DOCTOR)
    version = writes[version_key(PATIENT, "rec-1", 1)]
    assert version is not None
    assert set(writes) == {head_key(PATIENT, "rec-1"), version_key(PATIENT, "rec-1", 1)}
    assert version == canonical(json.loads(version))
    assert json.loads(version) == {
        "version": 1,
        "commitment": COMMITMENT,
        "cid": CID,
        "author": DOCTOR,
        "author_org": HOSPITAL,
        "prev": None,
        "height": CTX.height,
        "time_ms": CTX.time_ms,
    }
    assert json.loads(writes[head_key(PATIENT, "rec-1")] or b"") == {
        "patient": PATIENT,
        "record_id": "rec-1",
        "resource_type": "Observation",
        "version": 1,
        "hash": hashlib.sha256(version).hexdigest(),
        "author": DOCTOR,
        "author_org": HOSPITAL,
        "tombstoned": False,
        "tombstone": None,
    }


def test_an_organization_anchors_for_itself() -> None:
    writes = run(people(), ANCHOR, anchor(), CLINIC)
    assert RecordHead.from_state(writes[head_key(PATIENT, "rec-1")] or b"").author_org == CLINIC


def test_versions_form_a_hash_chain() -> None:
    state = world()
    for version, sender in [(2, DOCTOR_2), (3, HOSPITAL), (4, DOCTOR)]:
        previous = head(state)
        writes = run(state, ANCHOR, anchor(version, previous.hash), sender)
        stored = writes[version_key(PATIENT, "rec-1", version)] or b""
        assert json.loads(stored)["prev"] == previous.hash
        assert head(state).hash == hashlib.sha256(stored).hexdigest()
        assert (head(state).version, head(state).author) == (version, sender)
    assert state.get(version_key(PATIENT, "rec-1", 1)) is not None


def test_record_ids_are_per_patient() -> None:
    state = world()
    run(state, ANCHOR, anchor(patient=PATIENT_2), NURSE)
    assert head(state, PATIENT_2).author_org == CLINIC
    assert head(state).author_org == HOSPITAL


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        (PATIENT, "erasure"),
        (HOSPITAL, "entered-in-error"),
        (DOCTOR, "entered-in-error"),
        (DOCTOR_2, "erasure"),
    ],
)
def test_tombstone(sender: str, reason: str) -> None:
    state = world()
    before = head(state)
    writes = run(state, TOMBSTONE, tombstone(reason), sender)
    assert list(writes) == [head_key(PATIENT, "rec-1")]
    expected = Tombstone(reason=reason, by=sender, height=CTX.height, time_ms=CTX.time_ms)
    assert head(state) == dataclasses.replace(before, tombstone=expected)
    assert json.loads(writes[head_key(PATIENT, "rec-1")] or b"")["tombstoned"] is True


# --- refusals ------------------------------------------------------------------------------

#: reason -> the (type, payload, sender) cases refused with it, on ``world()``.
REFUSED: dict[str, list[tuple[str, dict[str, JSON], str]]] = {
    "invalid_payload": [
        (ANCHOR, anchor(prev=...), DOCTOR),
        (ANCHOR, anchor(note="free text"), DOCTOR),
        (ANCHOR, anchor(patient="Jane Doe"), DOCTOR),
        (ANCHOR, anchor(record_id="a/b"), DOCTOR),
        (ANCHOR, anchor(record_id=""), DOCTOR),
        (ANCHOR, anchor(record_id="r" * 65), DOCTOR),
        (ANCHOR, anchor(record_id=7), DOCTOR),
        (ANCHOR, anchor(resource_type="observation"), DOCTOR),
        (ANCHOR, anchor(resource_type="O"), DOCTOR),
        (ANCHOR, anchor(resource_type="Observation1"), DOCTOR),
        (ANCHOR, anchor(version=0), DOCTOR),
        (ANCHOR, anchor(version="1"), DOCTOR),
        (ANCHOR, anchor(version=True), DOCTOR),
        (ANCHOR, anchor(commitment=COMMITMENT.upper()), DOCTOR),
        (ANCHOR, anchor(commitment=COMMITMENT[:-1]), DOCTOR),
        (ANCHOR, anchor(cid=CID.upper()), DOCTOR),
        (ANCHOR, anchor(cid="z" + CID[1:]), DOCTOR),
        (ANCHOR, anchor(cid="bafy"), DOCTOR),
        (ANCHOR, anchor(cid="b" + "a" * 100), DOCTOR),
        (ANCHOR, anchor(cid=CID + "1"), DOCTOR),
        (ANCHOR, anchor(2, V1_HASH + "\n"), DOCTOR),
        (TOMBSTONE, tombstone("bored"), PATIENT),
        (TOMBSTONE, tombstone(record_id="../rec-1"), PATIENT),
        (TOMBSTONE, {"patient": PATIENT, "record_id": "rec-1"}, PATIENT),
    ],
    "sender_not_registered": [
        (ANCHOR, anchor(2, V1_HASH), STRANGER),
        (ANCHOR, anchor(2, V1_HASH), RETIRED),
        (ANCHOR, anchor(record_id="rec-2"), ORPHAN),
        (ANCHOR, anchor(record_id="rec-2"), CLOSED_ORG),
        (TOMBSTONE, tombstone(), STRANGER),
        (TOMBSTONE, tombstone(), RETIRED),
    ],
    "not_allowed": [
        (ANCHOR, anchor(2, V1_HASH), PATIENT),
    ],
    "patient_not_registered": [
        (ANCHOR, anchor(patient=STRANGER), DOCTOR),
        (ANCHOR, anchor(patient=GONE_PATIENT), DOCTOR),
        (ANCHOR, anchor(patient=DOCTOR_2), DOCTOR),
        (ANCHOR, anchor(patient=CLINIC), DOCTOR),
    ],
    "unknown_record": [
        (ANCHOR, anchor(2, V1_HASH, record_id="rec-2"), DOCTOR),
        (TOMBSTONE, tombstone(record_id="rec-2"), DOCTOR),
        (TOMBSTONE, tombstone(patient=PATIENT_2), PATIENT_2),
    ],
    "chain_broken": [
        (ANCHOR, anchor(1, OTHER_HASH, record_id="rec-2"), DOCTOR),
        (ANCHOR, anchor(2, None), DOCTOR),
        (ANCHOR, anchor(2, OTHER_HASH), DOCTOR),
    ],
    "version_conflict": [
        (ANCHOR, anchor(1, None), DOCTOR),
        (ANCHOR, anchor(1, V1_HASH), DOCTOR),
        (ANCHOR, anchor(3, V1_HASH), DOCTOR),
    ],
    "not_author_org": [
        (ANCHOR, anchor(2, V1_HASH), NURSE),
        (ANCHOR, anchor(2, V1_HASH), CLINIC),
        (TOMBSTONE, tombstone(), NURSE),
        (TOMBSTONE, tombstone(), CLINIC),
        (TOMBSTONE, tombstone(), ORPHAN),
        (TOMBSTONE, tombstone(), PATIENT_2),
        (TOMBSTONE, tombstone(), AUTHORITY),
    ],
    "resource_type_mismatch": [
        (ANCHOR, anchor(2, V1_HASH, resource_type="Condition"), DOCTOR),
    ],
}
REFUSALS = [(t, p, s, reason) for reason, cases in REFUSED.items() for t, p, s in cases]


@pytest.mark.parametrize(("tx_type", "payload", "sender", "reason"), REFUSALS)
def test_refusal(tx_type: str, payload: dict[str, JSON], sender: str, reason: str) -> None:
    assert refusal(world(), tx_type, payload, sender) == reason


# --- regressions, named after the attack ---------------------------------------------------


def test_record_version_replay_is_refused() -> None:
    state = world()
    v2 = anchor(2, V1_HASH)
    run(state, ANCHOR, v2, DOCTOR)
    assert refusal(state, ANCHOR, v2, DOCTOR) == "version_conflict"
    assert refusal(state, ANCHOR, anchor(), DOCTOR) == "version_conflict"


def test_record_chain_fork_is_refused() -> None:
    state = world()
    run(state, ANCHOR, anchor(2, V1_HASH), DOCTOR)
    fork = anchor(2, V1_HASH, commitment=OTHER_HASH)
    assert refusal(state, ANCHOR, fork, DOCTOR_2) == "version_conflict"
    assert refusal(state, ANCHOR, anchor(3, V1_HASH), DOCTOR) == "chain_broken"


def test_anchor_after_tombstone_is_refused() -> None:
    state = world()
    run(state, TOMBSTONE, tombstone(), PATIENT)
    assert refusal(state, ANCHOR, anchor(2, V1_HASH), DOCTOR) == "tombstoned"
    assert refusal(state, ANCHOR, anchor(), DOCTOR) == "tombstoned"
    assert refusal(state, TOMBSTONE, tombstone(), HOSPITAL) == "tombstoned"


def test_tombstone_by_another_organization_is_refused() -> None:
    state = world()
    for sender in (CLINIC, NURSE):
        assert refusal(state, TOMBSTONE, tombstone(), sender) == "not_author_org"
    assert not head(state).tombstoned


def test_sender_not_registered_is_refused() -> None:
    assert refusal(people(), ANCHOR, anchor(), STRANGER) == "sender_not_registered"


def test_invalid_payload_names_the_field() -> None:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(ANCHOR, anchor(cid="Qm"), DOCTOR), world(), CTX)
    assert str(e.value).startswith("cid:")


# --- properties of every case ----------------------------------------------------------------

ALL_CASES = [(t, p, s) for t, p, s, _ in REFUSALS] + [
    (ANCHOR, anchor(2, V1_HASH), DOCTOR),
    (ANCHOR, anchor(record_id="rec-2"), HOSPITAL),
    (TOMBSTONE, tombstone(), PATIENT),
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
