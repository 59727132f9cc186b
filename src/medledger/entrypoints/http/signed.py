"""Signed requests: how a caller proves who asks, for reads that are never put on the ledger.

A signed request is an envelope in the transaction wire format (``medledger.core.ledger.tx``)
whose type names the request (``request.read``, ``request.list_audit`` ...), signed by the
requester's did:key. Checked here, in order:
1. the body's size, then the envelope: schema, canonical form, signature (``decode_transaction``);
2. network, type among the endpoint's, expiry within ``REQUEST_TTL_S`` (``check_intake``);
3. the nonce was not seen within its validity window (``ReplayGuard`` over a store that keeps
   seen nonces on disk until they expire: no replay, not even across a restart).
The payload's fields are the endpoint's business. Requests never reach the ledger; the decision
each one gets is recorded as an access event.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.envelope import (
    TxLimits,
    check_intake,
    decode_transaction,
    replayed_nonce_error,
)
from medledger.core.ledger.tx import SignedTransaction
from medledger.entrypoints.http.ledger_routes import read_body
from medledger.errors import InvalidInputError
from medledger.ports import SeenRequests

REQUEST_TTL_S = 300
PURPOSE = re.compile(r"[A-Z][A-Z0-9\-]{1,31}")


class ReplayGuard:
    """Refuses a signed request whose (sender, nonce) was seen within its validity window."""

    def __init__(self, seen: SeenRequests) -> None:
        self._seen = seen

    def check_and_remember(self, stx: SignedTransaction, now_s: int) -> None:
        if self._seen.seen_before(f"{stx.tx.sender}/{stx.tx.nonce}", stx.tx.expires, now_s):
            raise replayed_nonce_error()


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified request: who sent it, and its payload (not yet parsed)."""

    sender: str
    payload: Any
    type: str


class SignedRequests:
    """Verifies signed requests for one node's network; one replay guard for all endpoints."""

    def __init__(
        self, *, network: str, types: frozenset[str], limits: TxLimits, seen: SeenRequests
    ) -> None:
        self._network = network
        self._types = types
        self._limits = limits
        self._guard = ReplayGuard(seen)

    async def verify(self, request: Request, kind: str) -> Signed:
        raw = await read_body(request, self._limits.max_tx_bytes)
        stx = decode_transaction(raw, self._limits)
        now = int(time.time())
        check_intake(
            stx, network=self._network, now_s=now, known_types=self._types, limits=self._limits
        )
        if stx.tx.type != kind:
            raise InvalidInputError(f"this endpoint takes a {kind} request", parameter="type")
        if stx.tx.expires > now + REQUEST_TTL_S:
            raise InvalidInputError(
                f"a request must expire within {REQUEST_TTL_S} s", parameter="expires"
            )
        self._guard.check_and_remember(stx, now)
        return Signed(stx.tx.sender, stx.tx.payload, stx.tx.type)


def text_field(payload: Any, name: str, pattern: re.Pattern[str]) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInputError(f"{name} is missing or malformed", parameter=name)
    return value


def optional_text(payload: Any, name: str, pattern: re.Pattern[str]) -> str | None:
    return None if payload.get(name) is None else text_field(payload, name, pattern)


def did_field(payload: Any, name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not is_did_key(value):
        raise InvalidInputError(f"{name} must be an Ed25519 did:key", parameter=name)
    return value


def optional_int(payload: Any, name: str, low: int, high: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer in {low}..{high}", parameter=name)
    return value


def justification(payload: Any) -> str | None:
    """A break-glass justification: free text, checked for length by the gate."""
    value = payload.get("justification")
    if value is not None and not isinstance(value, str):
        raise InvalidInputError("justification must be a string", parameter="justification")
    return value
