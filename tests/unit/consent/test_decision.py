"""The decision rules of ADR 0013, one table row or property each, and the attacks they stop."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.consent.decision import ConsentRequest, Match, evaluate_consents
from medledger.core.consent.model import ActorRule, Consent, DataRef, Period, Provision
from tests.unit.consent.fixtures import (
    CLINIC,
    DAY_MS,
    DOCTOR,
    GHH,
    NOW,
    NURSE,
    OTHER_PATIENT,
    RELATIVE,
    consent,
    decide,
    did,
    request,
)
from tests.unit.consent.strategies import NOWS, consent_sets, consents, requests

GRANT_DOCTOR = Provision(type="permit", actors=(ActorRule("PRCP", DOCTOR),))


def permits(provision: Provision, **req: object) -> bool:
    return decide(request(**req), [consent(provision)]).permit


# --- deny by default --------------------------------------------------------------------------


def test_no_consent_denies() -> None:
    decision = decide(request(), [])
    assert (decision.permit, decision.matched, decision.reasons) == (False, (), ("no-consent",))


def test_a_consent_without_provision_decides_nothing() -> None:
    assert decide(request(), [consent(None)]).reasons == ("no-matching-provision",)


def test_an_untyped_provision_decides_nothing() -> None:
    assert decide(request(), [consent(Provision())]).reasons == ("no-matching-provision",)


@settings(max_examples=75, deadline=None)
@given(consent_sets(), requests(), NOWS)
def test_without_a_permit_provision_everything_is_denied(
    consents: list[Consent], req: ConsentRequest, now: int
) -> None:
    def no_permits(p: Provision) -> Provision:
        kind = None if p.type == "permit" else p.type
        return replace(p, type=kind, provisions=tuple(no_permits(c) for c in p.provisions))

    stripped = [
        replace(c, provision=None if c.provision is None else no_permits(c.provision))
        for c in consents
    ]
    assert not evaluate_consents(req, stripped, now).permit


# --- which consents count ---------------------------------------------------------------------


def test_consent_for_another_patient_is_ignored() -> None:
    theirs = consent(Provision(type="permit"), patient=OTHER_PATIENT)
    assert decide(request(), [theirs]).reasons == ("no-consent",)
    assert not decide(request(), [theirs]).permit


@pytest.mark.parametrize(
    "status", ["inactive", "draft", "proposed", "rejected", "entered-in-error"]
)
def test_revoked_or_unfinished_consent_is_ignored(status: str) -> None:
    assert not decide(request(), [consent(Provision(type="permit"), status=status)]).permit


@settings(max_examples=50, deadline=None)
@given(consent_sets(), consents(), requests(), NOWS)
def test_consents_of_other_patients_change_nothing(
    mine: list[Consent], theirs: Consent, req: ConsentRequest, now: int
) -> None:
    foreign = replace(theirs, consent_id="foreign", patient=did("stranger"))
    assert evaluate_consents(req, [*mine, foreign], now) == evaluate_consents(req, mine, now)


# --- time -------------------------------------------------------------------------------------


def test_expired_grant_is_denied() -> None:
    grant = replace(GRANT_DOCTOR, period=Period(NOW - 10 * DAY_MS, NOW))
    decision = decide(request(), [consent(grant)])
    assert decision.reasons == ("no-matching-provision", "consent-expired")
    assert decide(request(), [consent(grant)], NOW - 1).permit


def test_grant_before_its_start_is_denied() -> None:
    grant = replace(GRANT_DOCTOR, period=Period(NOW + 1, None))
    assert decide(request(), [consent(grant)]).reasons == (
        "no-matching-provision",
        "consent-not-yet-valid",
    )


def test_expired_nested_exception_falls_back_to_its_parent() -> None:
    temporary = Provision(type="permit", actors=(ActorRule("PRCP", NURSE),), period=Period(0, NOW))
    root = Provision(type="deny", provisions=(temporary,))
    assert not decide(request(actor=NURSE), [consent(root)], NOW).permit
    assert decide(request(actor=NURSE), [consent(root)], NOW - 1).permit


@settings(max_examples=75, deadline=None)
@given(consent_sets(), requests(), NOWS)
def test_expired_consents_deny(consents: list[Consent], req: ConsentRequest, now: int) -> None:
    expired = [
        replace(
            c,
            provision=None
            if c.provision is None
            else replace(c.provision, period=Period(None, now)),
        )
        for c in consents
    ]
    assert not evaluate_consents(req, expired, now).permit


@pytest.mark.parametrize(
    ("data_time", "permit"), [(NOW - 2 * DAY_MS, True), (NOW - 20 * DAY_MS, False), (None, False)]
)
def test_data_period_limits_by_the_records_time(data_time: int | None, permit: bool) -> None:
    grant = replace(GRANT_DOCTOR, data_period=Period(NOW - 10 * DAY_MS, None))
    assert permits(grant, data_time_ms=data_time) is permit


def test_unknown_record_time_still_triggers_a_deny() -> None:
    deny = Provision(type="deny", data_period=Period(0, NOW - 10 * DAY_MS))
    consents = [consent(GRANT_DOCTOR, consent_id="grant"), consent(deny, consent_id="deny")]
    assert decide(request(data_time_ms=None), consents).reasons == ("consent-deny",)
    assert decide(request(data_time_ms=NOW - DAY_MS), consents).permit


# --- actors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "req", "permit"),
    [
        (ActorRule("PRCP", DOCTOR), {}, True),
        (ActorRule("PRCP", DOCTOR), {"actor": NURSE}, False),
        (ActorRule("PRCP", CLINIC), {}, True),  # an organization: its practitioners
        (ActorRule("PRCP", CLINIC), {"actor": CLINIC}, True),  # and itself
        (ActorRule("PRCP", CLINIC), {"actor_org": GHH}, False),
        (ActorRule("IRCP", practitioner_role="physician"), {}, True),
        (ActorRule("IRCP", practitioner_role="nurse"), {}, False),
        (ActorRule("GRANTEE", RELATIVE), {"actor": RELATIVE, "actor_org": None}, True),
    ],
)
def test_recipient_actors(rule: ActorRule, req: dict[str, object], permit: bool) -> None:
    assert permits(Provision(type="permit", actors=(rule,)), **req) is permit


def test_role_grant_is_scoped_to_its_organization() -> None:
    grant = Provision(type="permit", actors=(ActorRule("PRCP", GHH, "emergency-physician"),))
    ghh_ep = {"actor_org": GHH, "actor_roles": frozenset({"emergency-physician"})}
    assert permits(grant, **ghh_ep)
    assert not permits(grant, **{**ghh_ep, "actor_org": CLINIC})
    assert not permits(grant, actor_org=GHH)  # a physician, not an emergency physician


def test_any_listed_actor_matches() -> None:
    grant = Provision(type="permit", actors=(ActorRule("PRCP", NURSE), ActorRule("PRCP", DOCTOR)))
    assert permits(grant) and permits(grant, actor=NURSE) and not permits(grant, actor=RELATIVE)


def test_custodian_and_author_actors_select_records() -> None:
    grant = Provision(type="permit", actors=(ActorRule("CST", GHH), ActorRule("PRCP", DOCTOR)))
    assert permits(grant)
    assert not permits(grant, record_custodian=CLINIC)
    assert not permits(grant, record_custodian=None)  # unknown: a permit does not apply
    by_author = Provision(type="permit", actors=(ActorRule("AUT", NURSE),))
    assert permits(by_author, record_author=NURSE) and not permits(by_author)


# --- action, purpose, classes, codes, data ------------------------------------------------------


def test_action_must_be_listed() -> None:
    read_only = replace(GRANT_DOCTOR, actions=frozenset({"access"}))
    assert permits(read_only) and not permits(read_only, action="correct")


@pytest.mark.parametrize(
    ("granted", "asked", "permit"),
    [
        ("TREAT", "TREAT", True),
        ("TREAT", "ETREAT", True),  # ETREAT is-a TREAT
        ("TREAT", "BTG", True),  # BTG is-a ETREAT is-a TREAT
        ("ETREAT", "TREAT", False),  # a parent purpose does not match a narrower grant
        ("ETREAT", "BTG", True),
        ("TREAT", "HRESCH", False),
        ("HRESCH", "CLINTRCH", True),
        ("TREAT", "NOT-A-PURPOSE", False),
    ],
)
def test_purpose_matches_through_is_a(granted: str, asked: str, permit: bool) -> None:
    assert permits(replace(GRANT_DOCTOR, purposes=frozenset({granted})), purpose=asked) is permit


def test_classes_codes_and_records() -> None:
    assert permits(replace(GRANT_DOCTOR, classes=frozenset({"Observation", "Task"})))
    assert not permits(replace(GRANT_DOCTOR, classes=frozenset({"Task"})))
    assert not permits(replace(GRANT_DOCTOR, classes=frozenset({"Task"})), resource_type=None)
    loinc = "http://loinc.org|1-8"
    assert permits(replace(GRANT_DOCTOR, codes=frozenset({loinc})), codes=frozenset({loinc}))
    assert not permits(replace(GRANT_DOCTOR, codes=frozenset({loinc})))
    one = replace(GRANT_DOCTOR, data=(DataRef("instance", "Observation/rec-1"),))
    assert permits(one) and not permits(one, record_ref="Observation/rec-2")
    assert not permits(one, record_ref=None)


# --- security labels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("named", "record", "permit"),
    [
        ((), (), True),  # an unlabelled record is normal
        ((), ("L",), True),
        ((), ("N",), True),
        ((), ("R",), False),  # above the default ceiling N
        ((), ("V",), False),
        (("R",), ("R",), True),
        (("R",), ("V",), False),
        (("V",), ("R",), True),
        (("L",), ("N",), False),  # naming L lowers the ceiling
        ((), ("HIV",), False),  # a sensitivity is covered only when named
        (("HIV",), ("HIV",), True),
        (("HIV",), ("HIV", "PSY"), False),
        (("HIV", "PSY"), ("HIV", "PSY", "N"), True),
        (("HIV", "R"), ("HIV", "R"), True),
        (("HIV",), ("HIV", "R"), False),
        (("HIV",), (), True),
    ],
)
def test_permit_security_label_ceiling(
    named: tuple[str, ...], record: tuple[str, ...], permit: bool
) -> None:
    grant = replace(GRANT_DOCTOR, security_labels=frozenset(named))
    assert permits(grant, security_labels=frozenset(record)) is permit


def test_restricted_record_reports_the_ceiling() -> None:
    decision = decide(request(security_labels=frozenset({"R"})), [consent(GRANT_DOCTOR)])
    assert decision.reasons == ("no-matching-provision", "security-label-above-ceiling")


@pytest.mark.parametrize(
    ("named", "record", "denied"),
    [
        (("PSY",), ("PSY",), True),
        (("PSY",), ("HIV",), False),
        (("PSY", "HIV"), ("HIV",), True),
        (("R",), ("R",), True),
        (("R",), ("V",), True),  # a deny covers its level and above
        (("R",), ("N",), False),
        (("R",), (), False),
    ],
)
def test_a_labelled_deny_applies_to_records_carrying_a_label(
    named: tuple[str, ...], record: tuple[str, ...], denied: bool
) -> None:
    deny = Provision(type="deny", security_labels=frozenset(named))
    grant = replace(GRANT_DOCTOR, security_labels=frozenset({"V", "PSY", "HIV"}))
    consents = [consent(grant, consent_id="grant"), consent(deny, consent_id="deny")]
    decision = decide(request(security_labels=frozenset(record)), consents)
    assert decision.permit is not denied


# --- nesting and precedence -------------------------------------------------------------------


def test_nested_deny_wins_over_its_parent() -> None:
    root = replace(
        GRANT_DOCTOR, provisions=(Provision(type="deny", actions=frozenset({"correct"})),)
    )
    assert permits(root)
    decision = decide(request(action="correct"), [consent(root)])
    assert decision.matched == (Match("c1", "provision.provision[0]", "deny"),)


def test_nested_permit_cannot_widen_its_parent() -> None:
    root = replace(
        GRANT_DOCTOR, provisions=(Provision(type="permit", actors=(ActorRule("PRCP", NURSE),)),)
    )
    assert not permits(root, actor=NURSE)


def test_the_most_specific_provision_wins() -> None:
    """permit GHH -> except deny the nurse -> except permit the nurse to read normal records."""
    root = Provision(
        type="permit",
        actors=(ActorRule("PRCP", GHH),),
        provisions=(
            Provision(
                type="deny",
                actors=(ActorRule("PRCP", NURSE),),
                provisions=(Provision(type="permit", actions=frozenset({"access"})),),
            ),
        ),
    )
    assert permits(root, actor=DOCTOR, actor_org=GHH)
    assert permits(root, actor=NURSE, actor_org=GHH)
    assert not permits(root, actor=NURSE, actor_org=GHH, action="correct")
    decision = decide(request(actor=NURSE, actor_org=GHH), [consent(root)])
    assert decision.matched == (Match("c1", "provision.provision[0].provision[0]", "permit"),)


def test_among_siblings_deny_wins() -> None:
    root = Provision(
        provisions=(
            Provision(type="permit"),
            Provision(type="deny", actors=(ActorRule("PRCP", DOCTOR),)),
        )
    )
    assert not permits(root)
    assert permits(root, actor=NURSE)


def test_deny_in_one_consent_overrides_permit_in_another() -> None:
    consents = [
        consent(GRANT_DOCTOR, consent_id="grant"),
        consent(Provision(type="deny", actors=(ActorRule("PRCP", DOCTOR),)), consent_id="deny"),
    ]
    decision = decide(request(), consents)
    assert (decision.permit, decision.matched) == (False, (Match("deny", "provision", "deny"),))


def test_every_deciding_permit_is_listed() -> None:
    consents = [
        consent(GRANT_DOCTOR, consent_id="b"),
        consent(Provision(type="permit"), consent_id="a"),
    ]
    assert decide(request(), consents).matched == (
        Match("a", "provision", "permit"),
        Match("b", "provision", "permit"),
    )


@settings(max_examples=75, deadline=None)
@given(consent_sets(), requests(), NOWS)
def test_a_nested_deny_under_every_applying_root_denies(
    consents: list[Consent], req: ConsentRequest, now: int
) -> None:
    denied = [
        replace(
            c,
            provision=replace(
                c.provision, provisions=(*c.provision.provisions, Provision(type="deny"))
            ),
        )
        if c.provision is not None and c.provision.size < 64
        else c
        for c in consents
    ]
    before = evaluate_consents(req, consents, now)
    after = evaluate_consents(req, denied, now)
    assert not after.permit
    if before.permit:
        assert after.reasons == ("consent-deny",)


@settings(max_examples=75, deadline=None)
@given(consent_sets(max_size=4), consents(consent_id="extra"), requests(), NOWS)
def test_adding_a_deny_never_turns_a_deny_into_a_permit(
    consents: list[Consent], extra: Consent, req: ConsentRequest, now: int
) -> None:
    def only_denies(p: Provision) -> Provision:
        kind = "deny" if p.type == "permit" else p.type
        return replace(p, type=kind, provisions=tuple(only_denies(c) for c in p.provisions))

    deny_only = replace(
        extra, provision=None if extra.provision is None else only_denies(extra.provision)
    )
    before = evaluate_consents(req, consents, now)
    after = evaluate_consents(req, [*consents, deny_only], now)
    assert after.permit <= before.permit


@given(st.sampled_from(["access", "collect", "use", "disclose", "correct"]))
def test_decisions_carry_no_phi(action: str) -> None:
    decision = decide(request(action=action), [consent(GRANT_DOCTOR)])
    assert all(r.replace("-", "").isalpha() and r.islower() for r in decision.reasons)
