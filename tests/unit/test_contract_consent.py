"""The consent contract (medledger.core.ledger.contracts.consent): grants, revocations and
delegations, including the attacks it must stop."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.contracts.consent import (
    ConsentContract,
    active_consents,
    consent_key,
    delegate_key,
    delegation_holds,
    read_consent,
    read_index,
)
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError, Overlay
from medledger.core.ledger.tx import Transaction
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
T0 = 1_700_000_000_000
CTX = BlockContext(network=NETWORK, height=7, time_ms=T0, proposer=did(1))
CONTRACT = ConsentContract()
AUTHORITY, HOSPITAL = did(1), did(10)
DOCTOR, OTHER_DOCTOR = did(20), did(21)
PATIENT, OTHER_PATIENT, RELATIVE, STRANGER = did(30), did(31), did(40), did(99)


def participant(
    who: str, kind: str, roles: tuple[str, ...] = (), *, org: str | None = None, active: bool = True
) -> dict[str, bytes]:
    record = Participant(who, kind, roles, org, None, False, active, AUTHORITY, 1)
    return {participant_key(who): record.to_state()}


def world() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(DOCTOR, "practitioner", ("physician",), org=HOSPITAL),
            **participant(OTHER_DOCTOR, "practitioner", ("physician",), org=HOSPITAL),
            **participant(PATIENT, "patient"),
            **participant(OTHER_PATIENT, "patient"),
            **participant(RELATIVE, "patient"),
        }
    )


def policy(
    consent_id: str = "c-1", *, patient: str = PATIENT, actor: str = DOCTOR, status: str = "active"
) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "patient": patient,
        "status": status,
        "scope": "patient-privacy",
        "categories": ["http://loinc.org|59284-0"],
        "performers": [],
        "organizations": [],
        "policy_rule": None,
        "date_time_ms": None,
        "provision": {
            "type": "permit",
            "period": None,
            "actors": [{"role": "PRCP", "reference": actor, "practitioner_role": None}],
            "actions": ["access"],
            "security_labels": [],
            "purposes": ["TREAT"],
            "classes": [],
            "codes": [],
            "data_period": None,
            "data": [],
            "provisions": [],
        },
    }


def tx(tx_type: str, payload: dict[str, Any], sender: str) -> Transaction:
    return Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2_000_000_000)


def apply(
    state: Any, tx_type: str, payload: dict[str, Any], sender: str, ctx: BlockContext = CTX
) -> DictState:
    writes = CONTRACT.apply(tx(tx_type, payload, sender), state, ctx)
    after = DictState(state.snapshot())
    after.apply(writes)
    return after


def refusal(
    state: Any, tx_type: str, payload: dict[str, Any], sender: str, ctx: BlockContext = CTX
) -> str:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(tx_type, payload, sender), state, ctx)
    return str(e.value.reason)


def grant(state: Any, consent_id: str = "c-1", sender: str = PATIENT, **kw: Any) -> DictState:
    return apply(state, "consent.grant", {"consent": policy(consent_id, **kw)}, sender)


def test_patient_grants_and_the_consent_is_indexed() -> None:
    state = grant(world())
    assert read_index(state, PATIENT) == ("c-1",)
    [consent] = active_consents(state, PATIENT)
    assert consent.consent_id == "c-1" and consent.patient == PATIENT
    record = read_consent(state, PATIENT, "c-1")
    assert record is not None and record.status == "active" and record.granted_height == 7


def test_revocation_takes_the_consent_out_of_the_index() -> None:
    state = grant(grant(world(), "c-1"), "c-2")
    state = apply(state, "consent.revoke", {"patient": PATIENT, "consent_id": "c-1"}, PATIENT)
    assert read_index(state, PATIENT) == ("c-2",)
    record = read_consent(state, PATIENT, "c-1")
    assert record is not None and record.status == "revoked" and record.revoked_height == 7
    state = apply(state, "consent.revoke", {"patient": PATIENT, "consent_id": "c-2"}, PATIENT)
    assert read_index(state, PATIENT) == () and active_consents(state, PATIENT) == []


def test_forged_grant_for_another_patient_is_refused() -> None:
    """A patient cannot grant access to someone else's records."""
    state = world()
    payload = {"consent": policy(patient=OTHER_PATIENT)}
    assert refusal(state, "consent.grant", payload, PATIENT) == "not_patient_or_delegate"


def test_grant_signed_by_someone_other_than_the_patient_is_refused() -> None:
    for sender in (DOCTOR, HOSPITAL, AUTHORITY):
        assert refusal(world(), "consent.grant", {"consent": policy()}, sender) == (
            "not_patient_or_delegate"
        )


def test_grant_from_an_unregistered_sender_is_refused() -> None:
    assert refusal(world(), "consent.grant", {"consent": policy()}, STRANGER) == (
        "sender_not_registered"
    )


def test_grant_naming_an_unknown_did_is_refused() -> None:
    payload = {"consent": policy(actor=STRANGER)}
    assert refusal(world(), "consent.grant", payload, PATIENT) == "unknown_participant"


def test_grant_for_a_non_patient_is_refused() -> None:
    payload = {"consent": policy(patient=DOCTOR)}
    assert refusal(world(), "consent.grant", payload, DOCTOR) == "unknown_patient"


def test_grant_must_be_active() -> None:
    payload = {"consent": policy(status="inactive")}
    assert refusal(world(), "consent.grant", payload, PATIENT) == "invalid_payload"


@pytest.mark.parametrize(
    ("mutate", "parameter"),
    [
        (lambda p: p.update(extra=1), "consent.extra"),
        (lambda p: p.update(consent_id="bad id"), "consent.consent_id"),
        (lambda p: p["provision"].update(actions=["teleport"]), "consent.provision.actions"),
    ],
)
def test_malformed_consent_is_refused_naming_the_field(mutate: Any, parameter: str) -> None:
    body = policy()
    mutate(body)
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx("consent.grant", {"consent": body}, PATIENT), world(), CTX)
    assert e.value.reason == "invalid_payload"
    assert str(e.value).startswith(parameter)


def test_grant_payload_must_be_exactly_the_consent() -> None:
    assert refusal(world(), "consent.grant", {"consent": policy(), "x": 1}, PATIENT) == (
        "invalid_payload"
    )
    assert refusal(world(), "consent.grant", {"consent": "c-1"}, PATIENT) == "invalid_payload"


def test_consent_id_is_never_reused() -> None:
    state = grant(world())
    assert refusal(state, "consent.grant", {"consent": policy()}, PATIENT) == "consent_exists"
    state = apply(state, "consent.revoke", {"patient": PATIENT, "consent_id": "c-1"}, PATIENT)
    assert refusal(state, "consent.grant", {"consent": policy()}, PATIENT) == "consent_exists"


def test_replayed_revocation_is_refused() -> None:
    """The runtime refuses a replayed nonce; a second revocation with a new nonce is refused
    by the contract, so neither changes anything."""
    state = grant(world())
    revoke = {"patient": PATIENT, "consent_id": "c-1"}
    state = apply(state, "consent.revoke", revoke, PATIENT)
    assert refusal(state, "consent.revoke", revoke, PATIENT) == "already_revoked"


def test_revocation_before_the_grant_in_one_block_wins() -> None:
    """A revocation ordered before its grant (same block) still leaves the consent revoked."""
    overlay = Overlay(world())
    for tx_type, payload in (
        ("consent.revoke", {"patient": PATIENT, "consent_id": "c-1"}),
        ("consent.grant", {"consent": policy()}),
    ):
        try:
            overlay.writes.update(CONTRACT.apply(tx(tx_type, payload, PATIENT), overlay, CTX))
        except ContractError as e:
            assert e.reason == "consent_exists"
    assert read_index(overlay, PATIENT) == ()


OPS = st.lists(
    st.tuples(st.sampled_from(["grant", "revoke"]), st.sampled_from(["a", "b", "c"])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS)
def test_a_revocation_is_never_undone_by_reordering_within_a_block(
    ops: list[tuple[str, str]],
) -> None:
    """Whatever the order of grants and revocations in a block, a consent id revoked anywhere
    in it is not active after it."""
    overlay = Overlay(world())
    for op, consent_id in ops:
        payload: dict[str, JSON] = (
            {"consent": policy(consent_id)}  # type: ignore[dict-item]
            if op == "grant"
            else {"patient": PATIENT, "consent_id": consent_id}
        )
        with contextlib.suppress(ContractError):
            overlay.writes.update(
                CONTRACT.apply(tx(f"consent.{op}", payload, PATIENT), overlay, CTX)
            )
    revoked = {c for op, c in ops if op == "revoke"}
    active = set(read_index(overlay, PATIENT))
    assert not active & revoked
    granted = {c for op, c in ops if op == "grant"}
    assert active == granted - revoked


# --- delegates -------------------------------------------------------------------------------
def test_delegate_grants_and_revokes_for_the_patient() -> None:
    state = apply(world(), "consent.delegate", {"patient": PATIENT, "delegate": RELATIVE}, PATIENT)
    assert delegation_holds(state, PATIENT, RELATIVE, T0)
    state = grant(state, sender=RELATIVE)
    record = read_consent(state, PATIENT, "c-1")
    assert record is not None and record.granted_by == RELATIVE
    state = apply(state, "consent.revoke", {"patient": PATIENT, "consent_id": "c-1"}, RELATIVE)
    assert read_index(state, PATIENT) == ()


def test_delegation_runs_out() -> None:
    until = T0 + 1000
    payload = {"patient": PATIENT, "delegate": RELATIVE, "until_ms": until}
    state = apply(world(), "consent.delegate", payload, PATIENT)
    later = BlockContext(NETWORK, 8, until, did(1))
    assert not delegation_holds(state, PATIENT, RELATIVE, until)
    assert refusal(state, "consent.grant", {"consent": policy()}, RELATIVE, later) == (
        "not_patient_or_delegate"
    )


def test_delegate_cannot_delegate_and_undelegate_ends_it() -> None:
    state = apply(world(), "consent.delegate", {"patient": PATIENT, "delegate": RELATIVE}, PATIENT)
    payload = {"patient": PATIENT, "delegate": DOCTOR}
    assert refusal(state, "consent.delegate", payload, RELATIVE) == "not_patient"
    state = apply(state, "consent.undelegate", {"patient": PATIENT, "delegate": RELATIVE}, PATIENT)
    assert state.get(delegate_key(PATIENT, RELATIVE)) is None
    assert refusal(state, "consent.grant", {"consent": policy()}, RELATIVE) == (
        "not_patient_or_delegate"
    )
    assert (
        refusal(state, "consent.undelegate", {"patient": PATIENT, "delegate": RELATIVE}, PATIENT)
        == "unknown_delegate"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"patient": PATIENT, "delegate": PATIENT}, "invalid_payload"),
        ({"patient": PATIENT, "delegate": STRANGER}, "unknown_participant"),
        ({"patient": PATIENT, "delegate": RELATIVE, "until_ms": T0}, "invalid_payload"),
        ({"patient": PATIENT}, "invalid_payload"),
    ],
)
def test_bad_delegations_are_refused(payload: dict[str, Any], reason: str) -> None:
    assert refusal(world(), "consent.delegate", payload, PATIENT) == reason


def test_tampered_consent_record_is_detected() -> None:
    state = grant(world())
    items = state.snapshot()
    body = json.loads(items[consent_key(PATIENT, "c-1")])
    body["status"] = "granted"
    items[consent_key(PATIENT, "c-1")] = json.dumps(body).encode()
    from medledger.errors import TamperError

    with pytest.raises(TamperError):
        read_consent(DictState(items), PATIENT, "c-1")
