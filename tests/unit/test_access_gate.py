"""The access gate (medledger.core.access.gate): consent, custody, delegates, break-glass.

Table-driven over one small world; the attacks it stops are named after the attack."""

from __future__ import annotations

from typing import Any

import pytest

from medledger.core.access.gate import (
    AccessRequest,
    RecordFacts,
    evaluate_access,
)
from medledger.core.consent.index import ConsentIndex
from medledger.core.ledger.contracts.consent import ConsentContract, active_consents
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError
from medledger.testing.memory_state_reader import DictState

from .world import did, participant, permit_policy

NETWORK = "medledger-test"
NOW = 1_700_000_000_000
HOUR = 3_600_000
AUTHORITY, HOSPITAL, CLINIC = did(1), did(10), did(11)
DR_HOUSE, DR_WILSON, DR_ER, OFFICER, CLINIC_OFFICER, NURSE = (
    did(20), did(21), did(22), did(23), did(24), did(25)
)  # fmt: skip
PATIENT, OTHER_PATIENT, RELATIVE, STRANGER = did(30), did(31), did(40), did(99)
CONTRACT = ConsentContract()
JUSTIFICATION = "unconscious on arrival, allergy history needed"


def world() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLINIC, "organization", ("clinic",)),
            **participant(DR_HOUSE, "practitioner", ("physician",), org=HOSPITAL),
            **participant(DR_WILSON, "practitioner", ("physician",), org=HOSPITAL),
            **participant(DR_ER, "practitioner", ("emergency-physician",), org=CLINIC),
            **participant(OFFICER, "practitioner", ("privacy-officer",), org=HOSPITAL),
            **participant(CLINIC_OFFICER, "practitioner", ("privacy-officer",), org=CLINIC),
            **participant(NURSE, "practitioner", ("nurse",), org=CLINIC),
            **participant(PATIENT, "patient"),
            **participant(OTHER_PATIENT, "patient"),
            **participant(RELATIVE, "patient"),
        }
    )


def consent(consent_id: str, actor: str, **provision: Any) -> dict[str, Any]:
    """The patient permits ``actor`` to read for treatment, the root provision changed as
    given."""
    return permit_policy(consent_id, PATIENT, actor, **provision)


def run(state: DictState, tx_type: str, payload: dict[str, Any], sender: str = PATIENT) -> None:
    ctx = BlockContext(NETWORK, 5, NOW - HOUR, AUTHORITY)
    state.apply(
        CONTRACT.apply(
            Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2**40), state, ctx
        )
    )


def decide(
    state: DictState,
    requester: str,
    *,
    action: str = "read",
    purpose: str = "TREAT",
    justification: str | None = None,
    facts: RecordFacts | None = None,
    now: int = NOW,
    open_break_glass: str | None = None,
    patient: str = PATIENT,
) -> Any:
    request = AccessRequest(requester, patient, "obs-1", action, purpose, justification)  # type: ignore[arg-type]
    index = ConsentIndex.build(active_consents(state, patient))
    return evaluate_access(
        request,
        facts or RecordFacts(custodian=HOSPITAL, resource_type="Observation"),
        state,
        index,
        now,
        open_break_glass=open_break_glass,
    )


@pytest.fixture
def granted() -> DictState:
    """The patient granted Dr House access for treatment."""
    state = world()
    run(state, "consent.grant", {"consent": consent("c-house", DR_HOUSE)})
    return state


def test_granted_doctor_reads(granted: DictState) -> None:
    decision = decide(granted, DR_HOUSE)
    assert decision.permit and decision.basis == "consent"
    assert decision.consents == ("c-house",) and decision.outcome == "permit"


def test_deny_by_default_other_doctor_of_the_same_hospital(granted: DictState) -> None:
    """The custodian's practitioners need consent too (ADR 0015)."""
    decision = decide(granted, DR_WILSON)
    assert not decision.permit and decision.outcome == "deny"
    assert decision.reasons and all(isinstance(r, str) for r in decision.reasons)


def test_no_consent_at_all_denies() -> None:
    decision = decide(world(), DR_HOUSE)
    assert not decision.permit


def test_revoked_grant_is_denied(granted: DictState) -> None:
    run(granted, "consent.revoke", {"patient": PATIENT, "consent_id": "c-house"})
    assert not decide(granted, DR_HOUSE).permit


def test_expired_grant_is_denied() -> None:
    state = world()
    period = {"start_ms": None, "end_ms": NOW}
    run(state, "consent.grant", {"consent": consent("c-1", DR_HOUSE, period=period)})
    assert decide(state, DR_HOUSE, now=NOW - 1).permit
    assert not decide(state, DR_HOUSE, now=NOW).permit


def test_wrong_purpose_is_denied(granted: DictState) -> None:
    assert not decide(granted, DR_HOUSE, purpose="HRESCH").permit


def test_organization_grant_covers_its_practitioners() -> None:
    state = world()
    run(state, "consent.grant", {"consent": consent("c-org", CLINIC)})
    assert decide(state, NURSE).permit
    assert not decide(state, DR_HOUSE).permit


def test_nested_deny_wins(granted: DictState) -> None:
    root = consent("c-clinic", CLINIC)["provision"]
    nested = {**root, "type": "deny", "actors": [], "classes": ["Observation"]}
    body = consent("c-clinic", CLINIC, provisions=[nested])
    run(granted, "consent.grant", {"consent": body})
    assert not decide(granted, NURSE).permit


def test_unregistered_requester_is_denied() -> None:
    decision = decide(world(), STRANGER)
    assert decision.reasons == ("requester-not-registered",)


def test_patient_reads_own_record_without_consent() -> None:
    decision = decide(world(), PATIENT)
    assert decision.permit and decision.basis == "patient"


def test_custodian_node_reads_as_a_system() -> None:
    decision = decide(world(), HOSPITAL)
    assert decision.permit and decision.basis == "custodian"


@pytest.mark.parametrize(
    ("requester", "permit"),
    [(PATIENT, True), (HOSPITAL, True), (DR_HOUSE, False), (CLINIC, False)],
)
def test_erasure_by_patient_or_custodian_only(
    granted: DictState, requester: str, permit: bool
) -> None:
    assert decide(granted, requester, action="erase").permit is permit


# --- listing access events ---------------------------------------------------------------------
def test_patient_lists_own_events() -> None:
    assert decide(world(), PATIENT, action="list-audit").permit


def test_patient_listing_another_patients_events_is_denied() -> None:
    decision = decide(world(), OTHER_PATIENT, action="list-audit")
    assert decision.reasons == ("not-patient-delegate-or-privacy-officer",)


def test_delegate_lists_the_patients_events() -> None:
    state = world()
    run(state, "consent.delegate", {"patient": PATIENT, "delegate": RELATIVE})
    decision = decide(state, RELATIVE, action="list-audit")
    assert decision.permit and decision.basis == "delegate"
    assert not decide(state, RELATIVE).permit  # a delegate does not read records by being one


@pytest.mark.parametrize(("officer", "permit"), [(OFFICER, True), (CLINIC_OFFICER, False)])
def test_privacy_officer_of_the_holding_organization_lists(officer: str, permit: bool) -> None:
    facts = RecordFacts(custodian=HOSPITAL)
    assert decide(world(), officer, action="list-audit", facts=facts).permit is permit


def test_doctor_cannot_list_events(granted: DictState) -> None:
    assert not decide(granted, DR_HOUSE, action="list-audit").permit


# --- break-glass -------------------------------------------------------------------------------
@pytest.mark.parametrize("purpose", ["BTG", "ETREAT"])
def test_break_glass_from_emergency_role_with_justification(
    granted: DictState, purpose: str
) -> None:
    decision = decide(granted, DR_ER, purpose=purpose, justification=JUSTIFICATION)
    assert decision.permit and decision.break_glass and decision.outcome == "break-glass"
    assert decision.basis == "break-glass" and decision.reasons[0] == "break-glass"
    assert decision.justification == JUSTIFICATION


def test_break_glass_without_justification_is_denied(granted: DictState) -> None:
    decision = decide(granted, DR_ER, purpose="BTG")
    assert not decision.permit
    assert "break-glass-without-justification" in decision.reasons


def test_break_glass_from_role_without_emergency_rights_is_denied(granted: DictState) -> None:
    decision = decide(granted, DR_WILSON, purpose="BTG", justification=JUSTIFICATION)
    assert not decision.permit and "break-glass-role-not-allowed" in decision.reasons


def test_break_glass_within_an_open_window_reuses_its_justification(granted: DictState) -> None:
    decision = decide(granted, DR_ER, purpose="BTG", open_break_glass=JUSTIFICATION)
    assert decision.break_glass and decision.justification == JUSTIFICATION
    # marked, so that it does not open a window of its own (the time box cannot be stretched)
    assert decision.reasons[:2] == ("break-glass", "break-glass-window")
    justified = decide(granted, DR_ER, purpose="BTG", justification=JUSTIFICATION)
    assert "break-glass-window" not in justified.reasons


def test_break_glass_at_an_inactive_organization_is_denied() -> None:
    state = world()
    state.apply(participant(CLINIC, "organization", ("clinic",), active=False))
    decision = decide(state, DR_ER, purpose="BTG", justification=JUSTIFICATION)
    assert not decision.permit and "break-glass-organization-inactive" in decision.reasons


def test_break_glass_is_not_used_when_consent_permits() -> None:
    state = world()
    run(state, "consent.grant", {"consent": consent("c-er", DR_ER, purposes=["TREAT"])})
    decision = decide(state, DR_ER, purpose="ETREAT", justification=JUSTIFICATION)
    assert decision.permit and not decision.break_glass


@pytest.mark.parametrize("text", ["", "too short", "x" * 501])
def test_justification_length_is_bounded(text: str) -> None:
    with pytest.raises(InvalidInputError):
        AccessRequest(DR_ER, PATIENT, "obs-1", "read", "BTG", text)


def test_unknown_action_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        AccessRequest(DR_ER, PATIENT, "obs-1", "delete", "TREAT")  # type: ignore[arg-type]
