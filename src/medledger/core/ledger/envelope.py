"""The transaction envelope: wire bytes <-> ``SignedTransaction``, signing and intake checks.

Wire format (one transaction has exactly one wire form)::

    wire      = JCS(body + {"sig": base64url-no-padding(signature)})     RFC 8785, RFC 4648 §5
    signed    = DOMAIN_TX || JCS(body)                                    RFC 8032 Ed25519
    tx_id     = SHA-256(signed)

``body`` is ``Transaction.body()``: the keys ``v network type payload sender nonce expires``.

What this module handles:

- ``sign_transaction``: the sender's signing callable over the signed bytes, checked against
  ``tx.sender`` before the result is returned.
- ``decode_transaction``: untrusted bytes to a ``SignedTransaction`` whose fields are
  well-formed and whose wire bytes are exactly canonical. It does not verify the signature.
- ``verify_transaction_signature``: Ed25519 over the signed bytes with the key of the sender's
  did:key.
- ``check_intake``: the stateless admission checks (network, type, expiry window, signature).

Not handled here: nonce replay (it needs the state; the caller checks ``nonce_state_key`` and
raises ``replayed_nonce_error``), whether a contract allows the transaction (``runtime``),
reading the clock (``now_s`` is a parameter), any I/O. Pure.

Every rejection is an ``IntakeError`` with a stable ``reason`` code (``IntakeReason``) and the
``parameter`` at fault. Messages never quote payload content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, get_args

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from medledger.core.identity.did_key import public_key_from_did
from medledger.core.ledger.canonical import DOMAIN_TX, JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.errors import (
    ConfigurationError,
    InvalidInputError,
    SignatureError,
    TooLargeError,
)

SIGNATURE_SIZE: Final = 64
#: base64url without padding of 64 bytes: 86 characters, the last one ending in 4 zero bits.
_SIG_B64 = re.compile(r"[A-Za-z0-9_\-]{86}")
#: The top-level keys of the wire object, in canonical (RFC 8785 §3.2.3) order.
WIRE_KEYS: Final = ("expires", "network", "nonce", "payload", "sender", "sig", "type", "v")
_WIRE_KEY_SET: Final = frozenset(WIRE_KEYS)
#: Longest decimal integer in the restricted model: "-9007199254740991".
_MAX_INT_DIGITS: Final = len(str(-MAX_SAFE_INTEGER))

IntakeReason = Literal[
    "oversize",  # a size limit of TxLimits: wire bytes, payload depth, a string's length
    "malformed",  # not UTF-8, not JSON, duplicate keys, NaN/Infinity, lone surrogates
    "schema_error",  # valid JSON but not a transaction: keys, field values, floats, sig format
    "non_canonical",  # a transaction, but not in its one RFC 8785 wire form
    "bad_signature",  # the signature does not verify under the sender's did:key
    "unknown_type",  # no contract owns the transaction type
    "wrong_network",  # signed for another network
    "expired",  # expires <= now
    "expires_too_far",  # expires > now + max_ttl_s
    "replayed_nonce",  # the sender already used this nonce (checked by the caller, on state)
    "duplicate",  # this very transaction (tx_id) was already submitted (checked by the caller)
]
INTAKE_REASONS: Final[frozenset[str]] = frozenset(get_args(IntakeReason))


@dataclass(frozen=True, slots=True)
class TxLimits:
    """Upper bounds on an untrusted transaction (to move into ``medledger.config``)."""

    # Wire bytes of one transaction, checked before anything is parsed.
    max_tx_bytes: int = 64 * 1024
    # Nesting below the payload object: {"a": [1]} has depth 2.
    max_payload_depth: int = 8
    # Any string in the payload, keys included, in code points. Bulk data belongs in the blob
    # store, referenced by hash.
    max_string_chars: int = 8 * 1024
    # How far in the future ``expires`` may be: bounds how long a node must remember a nonce
    # before the transaction could no longer be included anyway.
    max_ttl_s: int = 24 * 60 * 60

    def __post_init__(self) -> None:
        for name in ("max_tx_bytes", "max_payload_depth", "max_string_chars", "max_ttl_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive integer")


# --- errors ---------------------------------------------------------------------------------
class IntakeError(InvalidInputError):
    """A transaction was refused at intake. ``reason`` is a stable, machine-readable code."""

    def __init__(self, message: str, *, reason: IntakeReason, parameter: str | None = None) -> None:
        # Keep the subclass relations true: every "bad_signature" is a SignatureError and every
        # "oversize" a TooLargeError, so the edge's error table needs no reason codes.
        if reason not in INTAKE_REASONS:
            raise ValueError(f"unknown intake reason {reason!r}")
        if (reason == "bad_signature") != isinstance(self, SignatureError) or (
            reason == "oversize"
        ) != isinstance(self, TooLargeError):
            raise TypeError(f"raise {reason!r} as BadSignatureError or OversizeError")
        super().__init__(message, parameter=parameter)
        self.reason: IntakeReason = reason


class OversizeError(IntakeError, TooLargeError):
    """``reason == "oversize"``: a limit of ``TxLimits`` was exceeded."""

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message, reason="oversize", parameter=parameter)


class BadSignatureError(IntakeError, SignatureError):
    """``reason == "bad_signature"``: also a ``SignatureError``, like every failed signature."""

    def __init__(self, message: str, *, parameter: str = "sig") -> None:
        super().__init__(message, reason="bad_signature", parameter=parameter)


def replayed_nonce_error() -> IntakeError:
    """The error for a transaction whose ``(sender, nonce)`` the state has already seen.

    For the caller that holds the state (``runtime.nonce_state_key``); raise it.
    """
    return IntakeError(
        "the sender already used this nonce", reason="replayed_nonce", parameter="nonce"
    )


def _reject(reason: IntakeReason, message: str, *, parameter: str | None) -> NoReturn:
    raise IntakeError(message, reason=reason, parameter=parameter)


# --- signing --------------------------------------------------------------------------------
def signed_bytes(tx: Transaction) -> bytes:
    """``DOMAIN_TX || JCS(body)``: what the sender signs and what ``tx_id`` hashes."""
    if type(tx.version) is not int:  # True == 1 in Python, but "v":true is another body
        raise InvalidInputError("v must be an integer", parameter="v")
    try:
        return DOMAIN_TX + canonical(tx.body())
    except ValueError as e:  # rfc8785: strings that are not Unicode scalar values
        raise InvalidInputError(
            "payload holds a string that is not valid Unicode", parameter="payload"
        ) from e


def encode_signature(signature: bytes) -> str:
    """RFC 4648 §5 base64url without padding."""
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")


def decode_signature(text: object) -> bytes:
    """Strict inverse of ``encode_signature`` for a 64-byte signature: one spelling only."""
    if not isinstance(text, str) or not _SIG_B64.fullmatch(text):
        _reject("schema_error", "sig must be 86 characters of base64url", parameter="sig")
    raw = base64.urlsafe_b64decode(text + "==")
    if encode_signature(raw) != text:  # non-zero trailing bits: another spelling of raw
        _reject("schema_error", "sig is not canonical base64url", parameter="sig")
    return raw


def _wire(message: bytes, tx: Transaction, sig_text: str) -> bytes:
    """``JCS(body + {"sig": sig_text})`` from ``message = signed_bytes(tx)``, without a second
    canonicalisation (RFC 8785 is pure Python here: half the cost of a 64 KiB transaction).

    RFC 8785 §3.2.3 sorts members by key and serialises each one on its own, so adding a
    member inserts its text at its sorted place and changes nothing else. ``sig`` sorts
    between ``sender`` and ``type``: the wire is the body with ``,"sig":"..."`` inserted
    before its last two members, ``"type"`` and ``"v"`` (``WIRE_KEYS``).
    """
    # type, version and sig_text match ASCII-only patterns with nothing to escape, so their
    # canonical form is the plain quoted text (no canonicalisation call on the hot path).
    tail = b',"type":"' + tx.type.encode() + b'","v":' + str(tx.version).encode() + b"}"
    body = message[len(DOMAIN_TX) :]
    if not body.endswith(tail):  # unreachable for a Transaction; never guess
        raise InvalidInputError("body does not end with type and v", parameter="transaction")
    return body[: -len(tail)] + b',"sig":"' + sig_text.encode() + b'"' + tail


def sign_transaction(tx: Transaction, sign: Callable[[bytes], bytes]) -> SignedTransaction:
    """Sign ``tx`` with ``sign`` (the sender's Ed25519 key over the given bytes).

    Raises ``SignatureError`` if what ``sign`` returns does not verify under ``tx.sender``:
    a transaction signed with the wrong key never leaves this function.
    """
    message = signed_bytes(tx)
    signature = sign(message)
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise SignatureError("the signer did not return a 64-byte Ed25519 signature")
    try:
        _verify_ed25519(tx.sender, message, signature)
    except BadSignatureError as e:
        raise SignatureError("the signing key is not the key of tx.sender") from e
    return SignedTransaction(
        tx=tx,
        signature=signature,
        tx_id=hashlib.sha256(message).digest(),
        wire=_wire(message, tx, encode_signature(signature)),
    )


# --- decoding -------------------------------------------------------------------------------
def decode_transaction(raw: bytes, limits: TxLimits) -> SignedTransaction:
    """Parse untrusted wire bytes. The signature is NOT verified here (see ``check_intake``).

    1. Size: at most ``limits.max_tx_bytes``, before anything is parsed.
    2. UTF-8 and JSON (RFC 8259) with I-JSON's unique member names (RFC 7493 §2.3); no NaN,
       Infinity or floats; integers within ±(2**53 - 1).
    3. An object with exactly the keys ``WIRE_KEYS``.
    4. Payload limits: nesting depth and string lengths.
    5. The ``Transaction`` constructor's field checks; ``v`` is an integer, not a boolean.
    6. ``sig``: base64url without padding (RFC 4648 §5) of exactly 64 bytes, one spelling.
    7. ``raw`` is exactly the RFC 8785 encoding of what it parsed to: one wire form per
       transaction, so the bytes stored, ordered and logged are the bytes that were checked.
    """
    _check_size(raw, limits)
    obj = _parse_json(raw)
    fields = _check_keys(obj)
    _check_payload_limits(fields["payload"], limits)
    tx = _transaction(fields)
    signature = decode_signature(fields["sig"])
    message = _check_canonical(raw, tx, fields["sig"])
    return SignedTransaction(
        tx=tx, signature=signature, tx_id=hashlib.sha256(message).digest(), wire=bytes(raw)
    )


def _check_size(raw: bytes, limits: TxLimits) -> None:
    if len(raw) > limits.max_tx_bytes:
        raise OversizeError(
            f"a transaction is at most {limits.max_tx_bytes} bytes", parameter="transaction"
        )


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _reject("malformed", "an object has a duplicate key", parameter="transaction")
    return obj


def _no_float(text: str) -> NoReturn:
    del text
    _reject("schema_error", "numbers must be integers", parameter="transaction")


def _no_constant(text: str) -> NoReturn:
    del text
    _reject("malformed", "NaN and Infinity are not JSON", parameter="transaction")


def _safe_int(text: str) -> int:
    # Bound the digits before int(): Python's int() of a long decimal is quadratic.
    if len(text) > _MAX_INT_DIGITS or not -MAX_SAFE_INTEGER <= int(text) <= MAX_SAFE_INTEGER:
        _reject("schema_error", "an integer is out of range", parameter="transaction")
    return int(text)


def _parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IntakeError("not UTF-8", reason="malformed", parameter="transaction") from e
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_float=_no_float,
            parse_constant=_no_constant,
            parse_int=_safe_int,
        )
    except RecursionError as e:  # nesting far beyond any limit; refused, not crashed on
        raise OversizeError("nested too deeply", parameter="transaction") from e
    except ValueError as e:  # json.JSONDecodeError
        raise IntakeError("not JSON", reason="malformed", parameter="transaction") from e


def _check_keys(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        _reject("schema_error", "a transaction is a JSON object", parameter="transaction")
    for key in WIRE_KEYS:
        if key not in obj:
            _reject("schema_error", f"{key} is missing", parameter=key)
    if len(obj) != len(WIRE_KEYS):
        extra = sorted(set(obj) - _WIRE_KEY_SET)[0]
        _reject("schema_error", f"unexpected key {ascii(extra)[:40]}", parameter="transaction")
    return obj


def _check_payload_limits(payload: JSON, limits: TxLimits) -> None:
    stack: list[tuple[JSON, int]] = [(payload, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_payload_depth:
            raise OversizeError(
                f"payload is nested deeper than {limits.max_payload_depth}", parameter="payload"
            )
        if isinstance(item, str):
            strings: list[str] = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            strings = []
            stack.extend((v, depth + 1) for v in item)
        else:
            continue
        if any(len(s) > limits.max_string_chars for s in strings):
            raise OversizeError(
                f"a payload string is longer than {limits.max_string_chars}", parameter="payload"
            )


def _transaction(fields: dict[str, Any]) -> Transaction:
    if type(fields["v"]) is not int:
        _reject("schema_error", "v must be an integer", parameter="v")
    try:
        return Transaction(
            network=fields["network"],
            type=fields["type"],
            payload=fields["payload"],
            sender=fields["sender"],
            nonce=fields["nonce"],
            expires=fields["expires"],
            version=fields["v"],
        )
    except InvalidInputError as e:
        raise IntakeError(str(e), reason="schema_error", parameter=e.parameter) from e


def _check_canonical(raw: bytes, tx: Transaction, sig_text: str) -> bytes:
    """Step 7; returns the signed bytes."""
    try:
        message = signed_bytes(tx)
    except InvalidInputError as e:  # a lone surrogate (a "\\ud800" escape): not Unicode text
        raise IntakeError(str(e), reason="malformed", parameter=e.parameter) from e
    wire = _wire(message, tx, sig_text)
    if wire != raw:
        _reject(
            "non_canonical",
            "not the RFC 8785 canonical encoding (whitespace, key order, escapes or numbers)",
            parameter="transaction",
        )
    return message


# --- verification and intake ----------------------------------------------------------------
def _verify_ed25519(did: str, message: bytes, signature: bytes) -> None:
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_from_did(did))
        key.verify(signature, message)
    except (InvalidSignature, InvalidInputError, ValueError) as e:
        raise BadSignatureError("the signature does not verify under the sender's key") from e


def verify_transaction_signature(stx: SignedTransaction) -> None:
    """RFC 8032 §5.1.7 verification of ``stx.signature`` over ``DOMAIN_TX || JCS(body)``.

    The key is the one the sender's did:key names. Also checks that ``tx_id`` and ``wire``
    are the ones the transaction and signature determine, so a ``SignedTransaction``
    assembled from mismatched parts does not pass. Raises ``BadSignatureError``.
    """
    message = signed_bytes(stx.tx)
    if hashlib.sha256(message).digest() != stx.tx_id:
        raise BadSignatureError("tx_id is not the hash of the signed bytes", parameter="tx_id")
    if _wire(message, stx.tx, encode_signature(stx.signature)) != stx.wire:
        raise BadSignatureError("wire is not the encoding of this transaction", parameter="wire")
    _verify_ed25519(stx.tx.sender, message, stx.signature)


def check_intake(
    stx: SignedTransaction,
    *,
    network: str,
    now_s: int,
    known_types: frozenset[str],
    limits: TxLimits,
) -> None:
    """The stateless admission checks for a decoded transaction, cheapest first.

    1. Network: ``tx.network == network`` (a transaction for another network is never valid
       here, whatever its signature) -> ``wrong_network``.
    2. Type: a contract owns ``tx.type`` -> ``unknown_type``.
    3. Not expired: ``now_s < tx.expires`` -> ``expired`` (the runtime applies the same rule
       at the block's time).
    4. Expiry window: ``tx.expires <= now_s + limits.max_ttl_s`` -> ``expires_too_far``.
    5. Signature: ``verify_transaction_signature`` -> ``bad_signature``.

    Not checked here: nonce replay (state; see ``replayed_nonce_error``) and the contract's
    own rules (``runtime``). ``now_s`` is the caller's clock, read once at the edge.
    """
    tx = stx.tx
    if tx.network != network:
        _reject("wrong_network", "the transaction is for another network", parameter="network")
    if tx.type not in known_types:
        _reject("unknown_type", "no contract handles this transaction type", parameter="type")
    if tx.expires <= now_s:
        _reject("expired", "the transaction has expired", parameter="expires")
    if tx.expires > now_s + limits.max_ttl_s:
        _reject(
            "expires_too_far",
            f"expires is more than {limits.max_ttl_s} s in the future",
            parameter="expires",
        )
    verify_transaction_signature(stx)
