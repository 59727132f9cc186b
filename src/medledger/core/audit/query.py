"""Listing access events: the query value, checked when it is made.

A patient's events are listed in the order the node recorded them, a page at a time, oldest
first (``order="oldest"``, the default) or newest first (``order="newest"``). A page goes on
from the position -- (batch sequence number, index in the batch) -- of the last event of the
previous page: ``after`` it when oldest first, ``before`` it when newest first. Positions
never change once an event is stored and events stored later get greater ones, so a page
never repeats or skips an event, even when several share a millisecond, and events recorded
while a patient pages back through older ones do not shift their pages. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from medledger.core.audit.event import DECISIONS, PURPOSE
from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.errors import InvalidInputError

MAX_LIST_LIMIT: Final = 1000
OLDEST: Final = "oldest"
NEWEST: Final = "newest"
ORDERS: Final = (OLDEST, NEWEST)


def _fail(name: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{name}: {message}", parameter=name)


def _time(name: str, value: object) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER):
        raise _fail(name, "milliseconds since the Unix epoch")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """One page of a patient's events: ``since_ms <= time < until_ms``, and the event's
    ``actor``, ``decision`` and ``purpose`` when given, and only what others did when
    ``others_only`` (the patient's own actions, e.g. listing this page, left out); at most
    ``limit`` (1..1000); in
    ``order``, going on ``after`` (oldest first) or ``before`` (newest first) a position."""

    patient: str
    since_ms: int | None = None
    until_ms: int | None = None
    actor: str | None = None
    decision: str | None = None
    purpose: str | None = None
    after: tuple[int, int] | None = None
    limit: int = 100
    order: str = OLDEST
    before: tuple[int, int] | None = None
    others_only: bool = False

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
        if type(self.others_only) is not bool:
            raise _fail("others_only", "true or false")
        _time("since_ms", self.since_ms)
        _time("until_ms", self.until_ms)
        check_cursor(self.after)
        check_cursor(self.before, "before")
        check_paging(self.order, self.after, self.before)
        check_limit(self.limit)

    @property
    def newest_first(self) -> bool:
        return self.order == NEWEST


def check_paging(order: object, after: object, before: object) -> None:
    """``order`` is one of ``ORDERS``, and only its own cursor is given: ``after`` oldest
    first, ``before`` newest first."""
    if not isinstance(order, str) or order not in ORDERS:
        raise _fail("order", f"one of {', '.join(ORDERS)}")
    if order == OLDEST and before is not None:
        raise _fail("before", "pages oldest first go on with after")
    if order == NEWEST and after is not None:
        raise _fail("after", "pages newest first go on with before")


def check_limit(limit: object) -> None:
    if type(limit) is not int or not 1 <= limit <= MAX_LIST_LIMIT:
        raise _fail("limit", f"1..{MAX_LIST_LIMIT}")


def check_cursor(cursor: object, name: str = "after") -> None:
    if cursor is None:
        return
    if (
        not isinstance(cursor, tuple)
        or len(cursor) != 2
        or any(type(x) is not int or x < 0 for x in cursor)
    ):
        raise _fail(name, "the position (batch, index) of the last event seen")
