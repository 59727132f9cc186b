"""The escrow contract (medledger.core.ledger.contracts.escrow): k-of-n emergency key release."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.crypto.key_wrap import x25519_from_seed
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.contracts.escrow import (
    Escrow,
    EscrowContract,
    EscrowRequest,
    escrow_key,
    released_share_wraps,
    request_key,
    share_wrap_info,
)
from medledger.core.ledger.genesis import Authority, Genesis, genesis_writes
from medledger.core.ledger.runtime import BlockContext, ContractError, Writes
from medledger.core.ledger.tx import Transaction
from medledger.core.recovery import shamir
from medledger.errors import TamperError, VerificationError
from medledger.testing.memory_state_reader import DictState


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


NETWORK = "medledger-test"
CTX = BlockContext(network=NETWORK, height=7, time_ms=1_700_000_000_000, proposer=did(1))
CONTRACT = EscrowContract()
CREATE, REQUEST, APPROVE = "escrow.create", "escrow.request", "escrow.approve"

AUTHORITY, HOSPITAL, CLINIC = did(1), did(10), did(11)
ADMIN, PRIVACY, DOCTOR, CLINIC_ADMIN, RETIRED_ADMIN = did(20), did(21), did(22), did(23), did(24)
C1, C2, C3, GONE, PATIENT, STRANGER = did(40), did(41), did(42), did(43), did(30), did(99)
KEY_DID = did(77)
REQUESTER_KEYS = x25519_from_seed(bytes(range(32)))
ENC_KEY = REQUESTER_KEYS.public_key.hex()
WRAP = base64.b64encode(b"opaque hpke wrap").decode("ascii")
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def participant(
    who: str,
    kind: str,
    roles: tuple[str, ...] = (),
    *,
    organization: str | None = None,
    active: bool = True,
) -> dict[str, bytes]:
    record = Participant(who, kind, roles, organization, None, False, active, AUTHORITY, 1)
    return {participant_key(who): record.to_state()}


def tx(tx_type: str, payload: dict[str, JSON], sender: str) -> Transaction:
    return Transaction(NETWORK, tx_type, payload, sender, "nonce-0001", 2_000_000_000)


def create(**changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {
        "escrow_id": "esc-0001",
        "threshold": 2,
        "custodians": [C3, C1, C2],
        "key_did": KEY_DID,
        **changes,
    }
    return {k: v for k, v in payload.items() if v is not ...}


def request(**changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {
        "escrow_id": "esc-0001",
        "request_id": "req-0001",
        "enc_key": ENC_KEY,
        "reason": "key-holder-unavailable",
        **changes,
    }
    return {k: v for k, v in payload.items() if v is not ...}


def approve(**changes: JSON) -> dict[str, JSON]:
    payload: dict[str, JSON] = {
        "escrow_id": "esc-0001",
        "request_id": "req-0001",
        "share_wrap": WRAP,
        **changes,
    }
    return {k: v for k, v in payload.items() if v is not ...}


def run(state: DictState, tx_type: str, payload: dict[str, JSON], sender: str) -> Writes:
    """Apply and commit; the transaction must succeed."""
    writes = CONTRACT.apply(tx(tx_type, payload, sender), state, CTX)
    state.apply(writes)
    return writes


def refusal(state: DictState, tx_type: str, payload: dict[str, JSON], sender: str) -> str | None:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(tx(tx_type, payload, sender), state, CTX)
    return e.value.reason


def people() -> DictState:
    genesis = Genesis(NETWORK, 0, (Authority(AUTHORITY, "Health Authority", ("regulator",)),))
    staff = "practitioner"
    return DictState(
        {
            **genesis_writes(genesis),
            **participant(HOSPITAL, "organization", ("hospital",)),
            **participant(CLINIC, "organization", ("clinic",)),
            **participant(ADMIN, staff, ("administrator",), organization=HOSPITAL),
            **participant(PRIVACY, staff, ("nurse", "privacy-officer"), organization=HOSPITAL),
            **participant(DOCTOR, staff, ("physician",), organization=HOSPITAL),
            **participant(CLINIC_ADMIN, staff, ("administrator",), organization=CLINIC),
            **participant(
                RETIRED_ADMIN, staff, ("administrator",), organization=HOSPITAL, active=False
            ),
            **participant(C1, staff, ("nurse",), organization=HOSPITAL),
            **participant(C2, staff, ("physician",), organization=HOSPITAL),
            **participant(C3, "organization", ("regulator",)),
            **participant(GONE, staff, ("nurse",), organization=HOSPITAL, active=False),
            **participant(PATIENT, "patient"),
        }
    )


def escrowed() -> DictState:
    """``people()`` plus HOSPITAL's 2-of-3 escrow esc-0001 (custodians C1, C2, C3)."""
    state = people()
    run(state, CREATE, create(), HOSPITAL)
    return state


def requested() -> DictState:
    """``escrowed()`` plus ADMIN's request req-0001."""
    state = escrowed()
    run(state, REQUEST, request(), ADMIN)
    return state


def stored_request(state: DictState) -> EscrowRequest:
    raw = state.get(request_key("esc-0001", "req-0001"))
    assert raw is not None
    return EscrowRequest.from_state(raw)


# --- happy paths ---------------------------------------------------------------------------


def test_create_writes_the_escrow_with_sorted_custodians() -> None:
    writes = run(people(), CREATE, create(), HOSPITAL)
    value = writes[escrow_key("esc-0001")]
    assert list(writes) == [escrow_key("esc-0001")]
    assert value is not None
    assert value == canonical(json.loads(value))
    assert json.loads(value) == {
        "escrow_id": "esc-0001",
        "org": HOSPITAL,
        "threshold": 2,
        "custodians": sorted([C1, C2, C3]),
        "key_did": KEY_DID,
        "height": CTX.height,
    }
    assert Escrow.from_state(value).to_state() == value


@pytest.mark.parametrize("sender", [ADMIN, PRIVACY, AUTHORITY])
def test_request_writes_an_open_request(sender: str) -> None:
    writes = run(escrowed(), REQUEST, request(), sender)
    value = writes[request_key("esc-0001", "req-0001")]
    assert value is not None
    assert json.loads(value) == {
        "escrow_id": "esc-0001",
        "request_id": "req-0001",
        "requester": sender,
        "enc_key": ENC_KEY,
        "reason": "key-holder-unavailable",
        "approvals": [],
        "released": False,
        "height": CTX.height,
    }
    assert EscrowRequest.from_state(value).to_state() == value
    assert released_share_wraps(value) is None


@pytest.mark.parametrize(
    ("threshold", "custodians"), [(2, [C1, C2]), (2, [C1, C2, C3]), (3, [C3, C1, C2])]
)
def test_k_approvals_release_and_k_minus_1_do_not(threshold: int, custodians: list[str]) -> None:
    state = people()
    run(state, CREATE, create(threshold=threshold, custodians=custodians), HOSPITAL)
    run(state, REQUEST, request(), ADMIN)
    for count, custodian in enumerate(custodians[:threshold], start=1):
        wrap = base64.b64encode(custodian.encode()).decode("ascii")
        writes = run(state, APPROVE, approve(share_wrap=wrap), custodian)
        value = writes[request_key("esc-0001", "req-0001")]
        assert value is not None and value == canonical(json.loads(value))
        assert stored_request(state).released is (count == threshold)
    value = state.get(request_key("esc-0001", "req-0001")) or b""
    assert released_share_wraps(value) == [c.encode() for c in custodians[:threshold]]
    assert [a.custodian for a in stored_request(state).approvals] == custodians[:threshold]


@pytest.mark.parametrize("size", [1, 2, 3, 2048])
def test_share_wraps_of_1_to_2048_bytes_are_accepted(size: int) -> None:
    wrap = base64.b64encode(b"\xff" * size).decode("ascii")
    run(requested(), APPROVE, approve(share_wrap=wrap), C1)


# --- refusals ------------------------------------------------------------------------------

#: reason -> the (type, payload, sender) cases refused with it, on ``requested()``.
REFUSED: dict[str, list[tuple[str, dict[str, JSON], str]]] = {
    "invalid_payload": [
        (CREATE, create(escrow_id="short"), HOSPITAL),
        (CREATE, create(escrow_id="esc/0002"), HOSPITAL),
        (CREATE, create(threshold=1), HOSPITAL),
        (CREATE, create(threshold=17), HOSPITAL),
        (CREATE, create(threshold="2"), HOSPITAL),
        (CREATE, create(threshold=True), HOSPITAL),
        (CREATE, create(custodians=[C1]), HOSPITAL),
        (CREATE, create(custodians=[C1, C1]), HOSPITAL),
        (CREATE, create(custodians=[C1, "Jane Doe"]), HOSPITAL),
        (CREATE, create(custodians=[did(n) for n in range(100, 117)]), HOSPITAL),
        (CREATE, create(custodians=C1), HOSPITAL),
        (CREATE, create(threshold=4), HOSPITAL),
        (CREATE, create(key_did="did:web:example.org"), HOSPITAL),
        (CREATE, create(key_did=...), HOSPITAL),
        (CREATE, create(note="x"), HOSPITAL),
        (REQUEST, request(enc_key=ENC_KEY.upper()), ADMIN),
        (REQUEST, request(enc_key="00" * 32), ADMIN),
        (REQUEST, request(enc_key=...), ADMIN),
        (REQUEST, request(reason="Because"), ADMIN),
        (REQUEST, request(reason="x" * 41), ADMIN),
        (REQUEST, request(request_id="r"), ADMIN),
        (APPROVE, approve(share_wrap=""), C1),
        (APPROVE, approve(share_wrap="AAAA="), C1),
        (APPROVE, approve(share_wrap="AAB="), C1),
        (APPROVE, approve(share_wrap="AA"), C1),
        (APPROVE, approve(share_wrap="AA==\n"), C1),
        (APPROVE, approve(share_wrap="-_-_"), C1),
        (APPROVE, approve(share_wrap=base64.b64encode(bytes(2049)).decode()), C1),
        (APPROVE, approve(share_wrap=7), C1),
    ],
    "sender_not_registered": [
        (CREATE, create(escrow_id="esc-0002"), STRANGER),
        (REQUEST, request(request_id="req-0002"), RETIRED_ADMIN),
        (APPROVE, approve(), GONE),
    ],
    "not_organization": [
        (CREATE, create(escrow_id="esc-0002"), ADMIN),
        (CREATE, create(escrow_id="esc-0002"), PATIENT),
    ],
    "unknown_custodian": [
        (CREATE, create(escrow_id="esc-0002", custodians=[C1, STRANGER]), HOSPITAL),
        (CREATE, create(escrow_id="esc-0002", custodians=[C1, GONE]), HOSPITAL),
    ],
    "duplicate_escrow": [
        (CREATE, create(), HOSPITAL),
        (CREATE, create(), CLINIC),
    ],
    "unknown_escrow": [
        (REQUEST, request(escrow_id="esc-0002"), AUTHORITY),
        (APPROVE, approve(escrow_id="esc-0002"), C1),
    ],
    "not_allowed": [
        (REQUEST, request(request_id="req-0002"), DOCTOR),
        (REQUEST, request(request_id="req-0002"), C1),
        (REQUEST, request(request_id="req-0002"), HOSPITAL),
        (REQUEST, request(request_id="req-0002"), CLINIC_ADMIN),
        (REQUEST, request(request_id="req-0002"), CLINIC),
        (REQUEST, request(request_id="req-0002"), PATIENT),
    ],
    "duplicate_request": [
        (REQUEST, request(), ADMIN),
        (REQUEST, request(), AUTHORITY),
    ],
    "unknown_request": [
        (APPROVE, approve(request_id="req-0002"), C1),
    ],
    "not_custodian": [
        (APPROVE, approve(), HOSPITAL),
        (APPROVE, approve(), ADMIN),
        (APPROVE, approve(), AUTHORITY),
    ],
}
REFUSALS = [(t, p, s, reason) for reason, cases in REFUSED.items() for t, p, s in cases]


@pytest.mark.parametrize(("tx_type", "payload", "sender", "reason"), REFUSALS)
def test_refusal(tx_type: str, payload: dict[str, JSON], sender: str, reason: str) -> None:
    assert refusal(requested(), tx_type, payload, sender) == reason


# --- regressions, named after the attack ---------------------------------------------------


def test_approval_by_a_non_custodian_is_refused() -> None:
    state = requested()
    for sender in (HOSPITAL, ADMIN, DOCTOR, AUTHORITY, CLINIC):
        assert refusal(state, APPROVE, approve(), sender) == "not_custodian"
    assert stored_request(state).approvals == ()


def test_double_approval_is_refused() -> None:
    state = requested()
    run(state, APPROVE, approve(), C1)
    assert refusal(state, APPROVE, approve(), C1) == "already_approved"
    assert not stored_request(state).released
    run(state, APPROVE, approve(), C2)
    for custodian in (C1, C2, C3):
        assert refusal(state, APPROVE, approve(), custodian) == "already_released"
    assert len(stored_request(state).approvals) == 2


def test_request_by_an_ordinary_practitioner_is_refused() -> None:
    state = escrowed()
    for sender in (DOCTOR, C1, CLINIC_ADMIN):
        assert refusal(state, REQUEST, request(), sender) == "not_allowed"
    assert state.get(request_key("esc-0001", "req-0001")) is None


def test_escrow_created_by_a_practitioner_is_refused() -> None:
    for sender in (ADMIN, PRIVACY, C1):
        assert refusal(people(), CREATE, create(), sender) == "not_organization"


def test_threshold_above_custodians_is_refused() -> None:
    with pytest.raises(ContractError) as e:
        CONTRACT.apply(
            tx(CREATE, create(threshold=3, custodians=[C1, C2]), HOSPITAL), people(), CTX
        )
    assert e.value.reason == "invalid_payload"
    assert str(e.value).startswith("threshold:")


def test_approvals_on_one_request_do_not_release_another() -> None:
    state = requested()
    run(state, REQUEST, request(request_id="req-0002"), PRIVACY)
    run(state, APPROVE, approve(), C1)
    run(state, APPROVE, approve(request_id="req-0002"), C2)
    assert not stored_request(state).released


def test_a_tampered_request_record_is_tamper_error() -> None:
    value = json.loads(requested().get(request_key("esc-0001", "req-0001")) or b"")
    for broken in ({**value, "extra": 1}, {**value, "approvals": [{"x": 1}]}, [value]):
        with pytest.raises(TamperError):
            released_share_wraps(json.dumps(broken).encode())


# --- end to end: split, wrap, approve, release, recover ------------------------------------


def seal_share(share: shamir.Share, custodian: str, enc_key: str) -> str:
    """What a custodian's tooling does: HPKE-seal the share text (escrow.py's convention)."""
    public_key = X25519PublicKey.from_public_bytes(bytes.fromhex(enc_key))
    info = share_wrap_info("esc-0001", "req-0001", custodian)
    sealed = SUITE.encrypt(shamir.format_share(share).encode(), public_key, info=info)
    return base64.b64encode(sealed).decode("ascii")


def open_share(wrap: bytes, custodian: str, request_id: str = "req-0001") -> shamir.Share:
    """What the requester's tooling does with a released wrap."""
    private_key = X25519PrivateKey.from_private_bytes(REQUESTER_KEYS.private_key)
    info = share_wrap_info("esc-0001", request_id, custodian)
    return shamir.parse_share(SUITE.decrypt(wrap, private_key, info=info).decode())


def test_a_seed_split_2_of_3_is_recovered_from_the_released_wraps() -> None:
    seed = secrets.token_bytes(32)
    shares = dict(zip([C1, C2, C3], shamir.split(seed, 2, 3, secrets.token_bytes), strict=True))
    state = requested()
    enc_key = stored_request(state).enc_key
    run(state, APPROVE, approve(share_wrap=seal_share(shares[C3], C3, enc_key)), C3)
    key = request_key("esc-0001", "req-0001")
    assert released_share_wraps(state.get(key) or b"") is None
    one = base64.b64decode(stored_request(state).approvals[0].share_wrap)
    with pytest.raises(VerificationError):  # k - 1 shares do not recombine
        shamir.combine([open_share(one, C3)])
    run(state, APPROVE, approve(share_wrap=seal_share(shares[C1], C1, enc_key)), C1)
    wraps = released_share_wraps(state.get(key) or b"")
    assert wraps is not None and len(wraps) == 2
    custodians = [a.custodian for a in stored_request(state).approvals]
    recovered = [open_share(w, c) for w, c in zip(wraps, custodians, strict=True)]
    assert shamir.combine(recovered, k=2) == seed


def test_a_share_wrap_does_not_open_for_another_custodian_or_request() -> None:
    (share, _) = shamir.split(bytes(32), 2, 2, secrets.token_bytes)
    wrap = base64.b64decode(seal_share(share, C1, ENC_KEY))
    assert open_share(wrap, C1) == share
    with pytest.raises(InvalidTag):
        open_share(wrap, C2)
    with pytest.raises(InvalidTag):
        open_share(wrap, C1, "req-0002")


# --- properties ----------------------------------------------------------------------------

ALL_CASES = [(t, p, s) for t, p, s, _ in REFUSALS] + [
    (CREATE, create(escrow_id="esc-0002"), CLINIC),
    (REQUEST, request(request_id="req-0002"), PRIVACY),
    (APPROVE, approve(), C2),
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
    state = requested()
    before = state.snapshot()
    first = outcome(tx_type, payload, sender, state)
    assert outcome(tx_type, payload, sender, state) == first
    assert state.snapshot() == before


KNOWN_REASONS = {*REFUSED, "already_approved", "already_released"}
SENDERS = [AUTHORITY, HOSPITAL, CLINIC, ADMIN, PRIVACY, DOCTOR, C1, C2, C3, GONE, STRANGER]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
TEMPLATES = [
    (CREATE, create(escrow_id="esc-0002"), CLINIC),
    (REQUEST, request(request_id="req-0002"), PRIVACY),
    (APPROVE, approve(), C1),
    (APPROVE, approve(), C2),
    (APPROVE, approve(), C3),
]


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    """A template with a field perhaps replaced by anything, and perhaps another sender."""
    tx_type, template, sender = draw(st.sampled_from(TEMPLATES))
    payload = dict(template)
    if draw(st.booleans()):
        payload[draw(st.sampled_from([*template, "extra"]))] = draw(JSON_VALUES)
    if draw(st.integers(0, 3)) == 0:
        sender = draw(st.sampled_from(SENDERS))
    return tx(tx_type, payload, sender)


@settings(max_examples=200, deadline=None)
@given(st.lists(transactions(), min_size=1, max_size=6))
def test_fuzzed_transactions_are_applied_canonically_or_refused_with_a_reason(
    txs: list[Transaction],
) -> None:
    state = requested()
    for transaction in txs:
        before = state.snapshot()
        try:
            writes = CONTRACT.apply(transaction, state, CTX)
        except ContractError as e:
            assert e.reason in KNOWN_REASONS, e.reason
            continue
        assert CONTRACT.apply(transaction, state, CTX) == writes
        assert state.snapshot() == before
        for key, value in writes.items():
            assert key.startswith(("escrow/", "escrow-request/")), key
            assert value is not None and canonical(json.loads(value)) == value
        state.apply(writes)
    released = stored_request(state)
    assert released.released is (len(released.approvals) >= 2)
    assert len({a.custodian for a in released.approvals}) == len(released.approvals) <= 2
