"""Listing access events: the query value, checked when it is made.

A patient's events are listed in the order the node recorded them (oldest first), a page at
a time: ``after`` is the position -- (batch sequence number, index in the batch) -- of the
last event of the previous page, so a page never repeats or skips an event, even when
several share a millisecond. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from medledger.core.audit.event import DECISIONS, PURPOSE
from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.errors import InvalidInputError

MAX_LIST_LIMIT: Final = 1000


def _fail(name: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{name}: {message}", parameter=name)


def _time(name: str, value: object) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER):
        raise _fail(name, "milliseconds since the Unix epoch")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """One page of a patient's events: ``since_ms <= time < until_ms``, and the event's
    ``actor``, ``decision`` and ``purpose`` when given; at most ``limit`` (1..1000)."""

    patient: str
    since_ms: int | None = None
    until_ms: int | None = None
    actor: str | None = None
    decision: str | None = None
    purpose: str | None = None
    after: tuple[int, int] | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.patient, str) or not is_did_key(self.patient):
            raise _fail("patient", "must be a did:key")
        if self.actor is not None and (
            not isinstance(self.actor, str) or not is_did_key(self.actor)
        ):
            raise _fail("actor", "must be a did:key")
        if self.decision is not None and self.decision not in DECISIONS:
            raise _fail("decision", f"one of {', '.join(DECISIONS)}")
        if self.purpose is not None and (
            not isinstance(self.purpose, str) or not PURPOSE.fullmatch(self.purpose)
        ):
            raise _fail("purpose", "a v3-ActReason code")
        _time("since_ms", self.since_ms)
        _time("until_ms", self.until_ms)
        check_cursor(self.after)
        check_limit(self.limit)


def check_limit(limit: object) -> None:
    if type(limit) is not int or not 1 <= limit <= MAX_LIST_LIMIT:
        raise _fail("limit", f"1..{MAX_LIST_LIMIT}")


def check_cursor(after: object) -> None:
    if after is None:
        return
    if (
        not isinstance(after, tuple)
        or len(after) != 2
        or any(type(x) is not int or x < 0 for x in after)
    ):
        raise _fail("after", "the position (batch, index) of the last event seen")
