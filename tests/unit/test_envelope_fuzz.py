"""Fuzzing ``decode_transaction`` (medledger.core.ledger.envelope) with Hypothesis.

Two properties, over arbitrary bytes, arbitrary JSON (floats, huge integers, lone surrogates,
deep nesting, almost-transactions) and mutations of valid wire bytes:

1. It only ever returns a ``SignedTransaction`` or raises a ``MedledgerError``: no
   ``KeyError``, ``TypeError``, ``RecursionError``, ``UnicodeError`` ... escapes.
2. Bytes that differ from a valid transaction's wire never decode to a transaction whose
   signature verifies: there is no second wire form of a signed transaction.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.envelope import (
    WIRE_KEYS,
    TxLimits,
    decode_transaction,
    sign_transaction,
    verify_transaction_signature,
)
from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.errors import MedledgerError

LIMITS = TxLimits(max_tx_bytes=4096)  # small, so that the size check is reached too
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
_OTHER = Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)
SENDER = did_from_public_key(_KEY.public_key().public_bytes_raw())
OTHER = did_from_public_key(_OTHER.public_key().public_bytes_raw())


def _valid(payload: dict[str, Any], nonce: str = "nonce-0001") -> SignedTransaction:
    tx = Transaction("medledger-test", "consent.grant", payload, SENDER, nonce, 1_700_000_600)
    return sign_transaction(tx, _KEY.sign)


BASES = [
    _valid({}),
    _valid({"grantee": OTHER, "scopes": ["Observation", "Patient"], "until": 1_700_003_600}),
    _valid({"text": 'caf\u00e9 \u2028 \U0001f600 \n \x1f \\ "', "n": [-1, 0, None, True]}),
    _valid({"a": {"b": {"c": [[], {}]}}, "big": MAX_SAFE_INTEGER, "neg": -MAX_SAFE_INTEGER}),
]


def decode_or_refuse(raw: bytes) -> SignedTransaction | None:
    """Property 1: a SignedTransaction, or a MedledgerError (any other exception fails)."""
    try:
        stx = decode_transaction(raw, LIMITS)
    except MedledgerError as e:
        event(f"refused: {getattr(e, 'reason', type(e).__name__)}")
        return None
    event("decoded")
    return stx


def verifies(stx: SignedTransaction) -> bool:
    try:
        verify_transaction_signature(stx)
    except MedledgerError:
        return False
    return True


# --- arbitrary input ------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=LIMITS.max_tx_bytes + 64))
def test_arbitrary_bytes_are_decoded_or_refused(raw: bytes) -> None:
    stx = decode_or_refuse(raw)
    assert stx is None or not verifies(stx)


_any_text = st.text(max_size=10) | st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\x00"])
_any_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _any_text
)
_any_json = st.recursive(
    _any_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_any_text, inner, max_size=4),
    max_leaves=12,
)


def _dumps(value: Any, style: int) -> bytes:
    """Several spellings: canonical-ish, Python's default, pretty, ASCII-escaped."""
    try:
        if style == 0:
            return canonical(value)
        if style == 1:
            return json.dumps(value).encode("utf-8", "surrogatepass")
        if style == 2:
            return json.dumps(value, indent=1, sort_keys=True).encode("utf-8", "surrogatepass")
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()
    except (ValueError, TypeError):  # rfc8785 refuses floats/NaN/surrogates: use Python's
        return json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")


@FUZZ
@given(_any_json, st.integers(0, 3))
def test_arbitrary_json_is_decoded_or_refused(value: Any, style: int) -> None:
    stx = decode_or_refuse(_dumps(value, style))
    assert stx is None or not verifies(stx)


_EXTRA_KEYS = ("extra", "V", "sig ", "")


@st.composite
def _almost_tx(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A valid wire and its object with one to three top-level keys replaced, deleted or
    added, or with something arbitrary put into its payload."""
    wire = draw(st.sampled_from(BASES)).wire
    obj: dict[str, Any] = json.loads(wire)
    for key in draw(st.sets(st.sampled_from([*WIRE_KEYS, *_EXTRA_KEYS]), min_size=1, max_size=3)):
        action = draw(st.sampled_from(["replace", "replace", "delete", "into_payload"]))
        if action == "delete":
            obj.pop(key, None)
        elif action == "into_payload":
            payload = obj.get("payload")
            payload = payload if isinstance(payload, dict) else {}
            obj["payload"] = {**payload, key: draw(_any_json)}
        else:
            obj[key] = draw(_any_json)
    return wire, obj


@FUZZ
@given(_almost_tx(), st.integers(0, 3))
def test_almost_transactions_are_decoded_or_refused(
    case: tuple[bytes, dict[str, Any]], style: int
) -> None:
    wire, obj = case
    raw = _dumps(obj, style)
    stx = decode_or_refuse(raw)
    if stx is not None and verifies(stx):
        assert raw == wire  # e.g. a deleted key that was not there


# --- mutations of valid wire bytes ----------------------------------------------------------
_SNIPPETS = [b" ", b"\n", b",", b'"', b"\\", b"0", b"-", b".0", b"e1", b"\\u0041", b"=", b"A", b"}"]


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid wire and a mutation of it: byte flips, truncation, insertion, deletion."""
    wire = draw(st.sampled_from(BASES)).wire
    raw = bytearray(wire)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "replace"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(_SNIPPETS))
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        else:
            raw[at : at + 1] = draw(st.sampled_from(_SNIPPETS))
    return wire, bytes(raw)


@FUZZ
@given(_mutated())
def test_mutated_wire_never_verifies_unless_identical(case: tuple[bytes, bytes]) -> None:
    wire, raw = case
    stx = decode_or_refuse(raw)
    if stx is not None and verifies(stx):
        assert raw == wire


@st.composite
def _sig_mutated(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """One character of the signature's base64url replaced: the mutation most likely to parse."""
    wire = draw(st.sampled_from(BASES)).wire
    start = wire.index(b'"sig":"') + len(b'"sig":"')
    at = start + draw(st.integers(0, 85))
    char = draw(
        st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    )
    return wire, wire[:at] + bytes([char]) + wire[at + 1 :]


@FUZZ
@given(_sig_mutated())
def test_mutated_signature_never_verifies_unless_identical(case: tuple[bytes, bytes]) -> None:
    wire, raw = case
    stx = decode_or_refuse(raw)
    if raw != wire:
        assert stx is None or not verifies(stx)


_path_value = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)


@FUZZ
@given(st.sampled_from(BASES), st.sampled_from(WIRE_KEYS), _path_value)
def test_re_encoded_field_change_never_verifies(
    base: SignedTransaction, key: str, value: Any
) -> None:
    # A semantic change, re-encoded canonically: it parses, but the signature must not hold.
    obj = json.loads(base.wire)
    if key == "payload":
        obj["payload"] = {**obj["payload"], "injected": value}
    else:
        obj[key] = value
    raw = canonical(obj)
    assume(raw != base.wire)
    stx = decode_or_refuse(raw)
    assert stx is None or not verifies(stx)
