"""The escrow contract: an organization's emergency key, released by k custodian approvals.

Issue 4 item 6. An organization splits the seed of an emergency key k-of-n among custodians
(``medledger.core.recovery.shamir``) off the ledger; the ledger records the escrow, each request
to release it and each custodian's approval, so every release is public, ordered and signed.

``escrow.create`` ``{"escrow_id", "threshold", "custodians", "key_did"}``
  1. parse: ``escrow_id`` 8-64 of [A-Za-z0-9_-], ``threshold`` in 2..16, ``custodians`` 2..16
     distinct did:keys with ``threshold <= len(custodians)``, ``key_did`` the did:key of the
     escrowed key (``invalid_payload``);
  2. the sender is an active participant (``sender_not_registered``) and an organization, the
     escrowed key's owner (``not_organization``);
  3. every custodian is a registered, active participant (``unknown_custodian``);
  4. the escrow id is new (``duplicate_escrow``).

``escrow.request`` ``{"escrow_id", "request_id", "enc_key", "reason"}``
  1. parse: ``request_id`` as an escrow id, ``enc_key`` the requester's X25519 public key
     (``common.parse_enc_key``), ``reason`` 1-40 of [a-z-] (``invalid_payload``);
  2. active sender (``sender_not_registered``); 3. the escrow exists (``unknown_escrow``);
  4. the sender is a genesis authority, or an active practitioner of the escrow's organization
     holding the role administrator or privacy-officer (``not_allowed``);
  5. the request id is new for this escrow (``duplicate_request``).

``escrow.approve`` ``{"escrow_id", "request_id", "share_wrap"}``
  1. parse: ``share_wrap`` canonical, padded standard base64 (RFC 4648 §4) of 1-2048 bytes
     (``invalid_payload``);
  2. active sender (``sender_not_registered``); 3. the escrow (``unknown_escrow``) and the
     request (``unknown_request``) exist;
  4. the sender is one of the escrow's custodians (``not_custodian``);
  5. the request is not released yet (``already_released``) and the sender has not approved it
     (``already_approved``).
  The approval is appended (block order makes the list deterministic); the request is released
  when it holds ``threshold`` approvals, and takes no more.

State: ``escrow/<escrow_id>`` (``Escrow``) and ``escrow-request/<escrow_id>/<request_id>``
(``EscrowRequest``), canonical JSON. ``released_share_wraps`` reads the wraps back for the
requester's tooling.

**Share wraps** are opaque to the ledger, which can neither open nor check them. The convention
for the custodians' and requester's tooling (the end-to-end test follows it): RFC 9180 §6.1
single-shot ``Seal`` in mode_base with ``key_wrap``'s suite (DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM), to the request's ``enc_key``, of the UTF-8 ``shamir.format_share``
text, with ``info = share_wrap_info(escrow_id, request_id, custodian)`` and an empty AAD; the
wrap is ``enc (32) || ct``. ``key_wrap.wrap_key`` is not reused: it seals exactly a 32-byte data
key under a record-version ``WrapInfo``, and a share text is ~90 bytes; wrapping a fresh key and
AES-GCM-encrypting the share under it would only add a second layer doing what HPKE does.

**What "released" means.** Each wrap is readable by the requester as soon as its approval is in a
block; ``released`` is the ledger's record that ``threshold`` custodians have approved, not a
cryptographic gate. The gate is Shamir's: fewer than k shares reveal nothing of the seed. The
requester must check the recovered key against ``key_did`` (the only authenticating step).

Not handled here: splitting, wrapping, unwrapping and combining (tooling off the ledger), and
revoking or rotating an escrow (a later issue). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import JSON, canonical
from medledger.core.ledger.contracts.common import (
    INVALID_PAYLOAD,
    ORGANIZATION,
    PRACTITIONER,
    Fields,
    Participant,
    acting_org,
    invalid,
    load_state_object,
    parse_enc_key,
    read_participant,
    require_sender,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError, TamperError

CREATE: Final = "escrow.create"
REQUEST: Final = "escrow.request"
APPROVE: Final = "escrow.approve"
ESCROW_PREFIX: Final = "escrow/"
REQUEST_PREFIX: Final = "escrow-request/"
DOMAIN_SHARE_WRAP: Final = b"medledger/escrow-share/v1\x00"

NOT_ORGANIZATION: Final = "not_organization"
NOT_ALLOWED: Final = "not_allowed"
UNKNOWN_CUSTODIAN: Final = "unknown_custodian"
DUPLICATE_ESCROW: Final = "duplicate_escrow"
UNKNOWN_ESCROW: Final = "unknown_escrow"
DUPLICATE_REQUEST: Final = "duplicate_request"
UNKNOWN_REQUEST: Final = "unknown_request"
NOT_CUSTODIAN: Final = "not_custodian"
ALREADY_APPROVED: Final = "already_approved"
ALREADY_RELEASED: Final = "already_released"

MIN_CUSTODIANS: Final = 2
MAX_CUSTODIANS: Final = 16
MAX_SHARE_WRAP_BYTES: Final = 2048
MAX_SHARE_WRAP_CHARS: Final = 4 * -(-MAX_SHARE_WRAP_BYTES // 3)
#: Who may ask for an organization's escrowed key, besides a genesis authority.
REQUESTER_ROLES: Final = frozenset({"administrator", "privacy-officer"})

ESCROW_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
REASON: Final = re.compile(r"[a-z-]{1,40}")
BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_ID_RULE: Final = "must be 8-64 of [A-Za-z0-9_-]"


def escrow_key(escrow_id: str) -> str:
    return f"{ESCROW_PREFIX}{escrow_id}"


def request_key(escrow_id: str, request_id: str) -> str:
    return f"{REQUEST_PREFIX}{escrow_id}/{request_id}"


def share_wrap_info(escrow_id: str, request_id: str, custodian: str) -> bytes:
    """The HPKE ``info`` of a share wrap: a wrap made for one request does not open as another."""
    body = {"escrow_id": escrow_id, "request_id": request_id, "custodian": custodian}
    return DOMAIN_SHARE_WRAP + canonical(body)


@dataclass(frozen=True, slots=True)
class Escrow:
    """The state record ``escrow/<escrow_id>``; ``custodians`` sorted."""

    escrow_id: str
    org: str
    threshold: int
    custodians: tuple[str, ...]
    key_did: str
    height: int

    def to_state(self) -> bytes:
        return canonical(
            {
                "escrow_id": self.escrow_id,
                "org": self.org,
                "threshold": self.threshold,
                "custodians": list(self.custodians),
                "key_did": self.key_did,
                "height": self.height,
            }
        )

    @classmethod
    def from_state(cls, raw: bytes) -> Escrow:
        """Read back what ``to_state`` wrote; anything else is ``TamperError``."""
        obj = _fields(raw, cls.__dataclass_fields__, "an escrow")
        custodians = obj["custodians"]
        if not isinstance(custodians, list) or not isinstance(obj["threshold"], int):
            raise TamperError("an escrow record is malformed")
        return cls(**{**obj, "custodians": tuple(custodians)})


@dataclass(frozen=True, slots=True)
class Approval:
    custodian: str
    share_wrap: str
    height: int

    def to_json(self) -> dict[str, JSON]:
        return {"custodian": self.custodian, "share_wrap": self.share_wrap, "height": self.height}


@dataclass(frozen=True, slots=True)
class EscrowRequest:
    """The state record ``escrow-request/<escrow_id>/<request_id>``."""

    escrow_id: str
    request_id: str
    requester: str
    enc_key: str
    reason: str
    approvals: tuple[Approval, ...]
    released: bool
    height: int

    def to_state(self) -> bytes:
        return canonical(
            {
                "escrow_id": self.escrow_id,
                "request_id": self.request_id,
                "requester": self.requester,
                "enc_key": self.enc_key,
                "reason": self.reason,
                "approvals": [a.to_json() for a in self.approvals],
                "released": self.released,
                "height": self.height,
            }
        )

    @classmethod
    def from_state(cls, raw: bytes) -> EscrowRequest:
        """Read back what ``to_state`` wrote; anything else is ``TamperError``."""
        obj = _fields(raw, cls.__dataclass_fields__, "an escrow request")
        approvals = obj["approvals"]
        if not isinstance(approvals, list) or not isinstance(obj["released"], bool):
            raise TamperError("an escrow request is malformed")
        try:
            parsed = tuple(Approval(**a) for a in approvals)
        except TypeError as e:
            raise TamperError("an escrow approval has the wrong fields") from e
        if not all(isinstance(a.share_wrap, str) for a in parsed):
            raise TamperError("an escrow approval is malformed")
        return cls(**{**obj, "approvals": parsed})


def _fields(raw: bytes, names: Iterable[str], what: str) -> dict[str, JSON]:
    obj = load_state_object(raw)
    if set(obj) != set(names):
        raise TamperError(f"{what} record has the wrong fields")
    return obj


def released_share_wraps(raw: bytes) -> list[bytes] | None:
    """The share wraps of a released request (state bytes), in approval order; None before."""
    request = EscrowRequest.from_state(raw)
    if not request.released:
        return None
    return [base64.b64decode(a.share_wrap, validate=True) for a in request.approvals]


class EscrowContract:
    """Creates escrows, records release requests and custodian approvals."""

    name: Final = "escrow"
    #: A prefix of both ``escrow/`` and ``escrow-request/``.
    namespace: Final = "escrow"
    tx_types: Final = frozenset({CREATE, REQUEST, APPROVE})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type == CREATE:
            return _create(tx, state, ctx)
        if tx.type == REQUEST:
            return _request(tx, state, ctx)
        if tx.type == APPROVE:
            return _approve(tx, state, ctx)
        raise ContractError("unknown_type", f"the escrow contract has no {tx.type}")


def _create(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    fields = Fields(tx.payload, required=("escrow_id", "threshold", "custodians", "key_did"))
    escrow_id = fields.text("escrow_id", ESCROW_ID, _ID_RULE)
    threshold = fields.integer("threshold", MIN_CUSTODIANS, MAX_CUSTODIANS)
    custodians = _parse_custodians(fields.strings("custodians", max_items=MAX_CUSTODIANS))
    if threshold > len(custodians):
        raise invalid("threshold", "must not exceed the number of custodians")
    key_did = fields.did("key_did")
    sender = require_sender(state, tx.sender)
    if sender.kind != ORGANIZATION:
        raise ContractError(NOT_ORGANIZATION, "only an organization escrows its key")
    for custodian in custodians:
        participant = read_participant(state, custodian)
        if participant is None or not participant.active:
            raise ContractError(UNKNOWN_CUSTODIAN, "custodians: not all registered and active")
    key = escrow_key(escrow_id)
    if state.get(key) is not None:
        raise ContractError(DUPLICATE_ESCROW, "escrow_id: already used")
    escrow = Escrow(escrow_id, sender.did, threshold, custodians, key_did, ctx.height)
    return {key: escrow.to_state()}


def _parse_custodians(custodians: list[str]) -> tuple[str, ...]:
    if len(custodians) < MIN_CUSTODIANS:
        raise invalid("custodians", f"must list at least {MIN_CUSTODIANS}")
    if not all(is_did_key(custodian) for custodian in custodians):
        raise invalid("custodians", "must hold only Ed25519 did:keys")
    if len(set(custodians)) != len(custodians):
        raise invalid("custodians", "a custodian is listed twice")
    return tuple(sorted(custodians))


def _request(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    fields = Fields(tx.payload, required=("escrow_id", "request_id", "enc_key", "reason"))
    escrow_id = fields.text("escrow_id", ESCROW_ID, _ID_RULE)
    request_id = fields.text("request_id", ESCROW_ID, _ID_RULE)
    try:
        enc_key = parse_enc_key(tx.payload["enc_key"])
    except InvalidInputError as e:
        raise ContractError(INVALID_PAYLOAD, str(e)) from e
    reason = fields.text("reason", REASON, "must be 1-40 of [a-z-]")
    sender = require_sender(state, tx.sender)
    escrow = _read_escrow(state, escrow_id)
    if not _may_request(state, sender, escrow):
        raise ContractError(
            NOT_ALLOWED, "only an authority or the organization's administrator or privacy officer"
        )
    key = request_key(escrow_id, request_id)
    if state.get(key) is not None:
        raise ContractError(DUPLICATE_REQUEST, "request_id: already used for this escrow")
    request = EscrowRequest(
        escrow_id, request_id, sender.did, enc_key, reason, (), released=False, height=ctx.height
    )
    return {key: request.to_state()}


def _may_request(state: StateReader, sender: Participant, escrow: Escrow) -> bool:
    """Step 4 of ``escrow.request``: an authority, or the org's administrator/privacy officer."""
    if sender.is_authority:
        return True
    return (
        sender.kind == PRACTITIONER
        and acting_org(state, sender) == escrow.org
        and not REQUESTER_ROLES.isdisjoint(sender.roles)
    )


def _approve(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    fields = Fields(tx.payload, required=("escrow_id", "request_id", "share_wrap"))
    escrow_id = fields.text("escrow_id", ESCROW_ID, _ID_RULE)
    request_id = fields.text("request_id", ESCROW_ID, _ID_RULE)
    share_wrap = _parse_share_wrap(tx.payload["share_wrap"])
    sender = require_sender(state, tx.sender)
    escrow = _read_escrow(state, escrow_id)
    key = request_key(escrow_id, request_id)
    raw = state.get(key)
    if raw is None:
        raise ContractError(UNKNOWN_REQUEST, "request_id: no such request for this escrow")
    request = EscrowRequest.from_state(raw)
    if sender.did not in escrow.custodians:
        raise ContractError(NOT_CUSTODIAN, "only the escrow's custodians approve")
    if request.released:
        raise ContractError(ALREADY_RELEASED, "the request is already released")
    if any(a.custodian == sender.did for a in request.approvals):
        raise ContractError(ALREADY_APPROVED, "this custodian already approved the request")
    approvals = (*request.approvals, Approval(sender.did, share_wrap, ctx.height))
    released = len(approvals) >= escrow.threshold
    updated = EscrowRequest(
        request.escrow_id,
        request.request_id,
        request.requester,
        request.enc_key,
        request.reason,
        approvals,
        released,
        request.height,
    )
    return {key: updated.to_state()}


def _parse_share_wrap(value: JSON) -> str:
    """Canonical padded standard base64 of 1-2048 bytes, checked before anything is decoded."""
    rule = f"must be padded standard base64 of 1-{MAX_SHARE_WRAP_BYTES} bytes"
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_SHARE_WRAP_CHARS
        or not BASE64.fullmatch(value)
    ):
        raise invalid("share_wrap", rule)
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as e:  # unreachable after the pattern, kept as a guard
        raise invalid("share_wrap", rule) from e
    if len(raw) > MAX_SHARE_WRAP_BYTES or base64.b64encode(raw).decode("ascii") != value:
        raise invalid("share_wrap", rule + ", with zero trailing bits")
    return value


def _read_escrow(state: StateReader, escrow_id: str) -> Escrow:
    raw = state.get(escrow_key(escrow_id))
    if raw is None:
        raise ContractError(UNKNOWN_ESCROW, "escrow_id: no such escrow")
    return Escrow.from_state(raw)
