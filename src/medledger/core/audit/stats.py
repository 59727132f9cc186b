"""Access-decision aggregates for an organization's privacy officer: counts, never events.

What a privacy officer's console charts (issue 8): access decisions per UTC day (permit, deny,
break-glass) and denials by actor, over a bounded window of the events one node decided.
Aggregates only: the result names actors (practitioners' did:keys, which are on the ledger
anyway) and counts, never a patient, a record or a justification.

What this module handles: the window (``StatsWindow``: ``since_ms <= time < until_ms``, at
most ``MAX_WINDOW_DAYS`` days, checked when it is made) and tallying a stream of events into
an ``AccessStats`` value (``tally``), stopping after ``max_events`` and saying so. Not handled
here: reading the events (``services.audit``), who may ask (the HTTP edge). Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from medledger.core.audit.event import AccessEvent
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER
from medledger.errors import InvalidInputError

DAY_MS: Final = 86_400_000
MAX_WINDOW_DAYS: Final = 31
#: Denials by actor: the most frequent this many (the rest are counted in ``other_denials``).
TOP_ACTORS: Final = 20
#: The most events one request tallies; past it the answer says ``truncated``. Each event is
#: read back and re-checked (about 0.1 ms), so this bounds a request to a few seconds.
MAX_EVENTS: Final = 50_000


@dataclass(frozen=True, slots=True)
class StatsWindow:
    """``since_ms <= time < until_ms``, both on UTC day boundaries' scale, at most
    ``MAX_WINDOW_DAYS`` long."""

    since_ms: int
    until_ms: int

    def __post_init__(self) -> None:
        for name in ("since_ms", "until_ms"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
                raise InvalidInputError(
                    f"{name}: milliseconds since the Unix epoch", parameter=name
                )
        if not self.since_ms < self.until_ms <= self.since_ms + MAX_WINDOW_DAYS * DAY_MS:
            raise InvalidInputError(
                f"until_ms: after since_ms, at most {MAX_WINDOW_DAYS} days later",
                parameter="until_ms",
            )

    @classmethod
    def last_days(cls, days: int, now_ms: int) -> StatsWindow:
        """The ``days`` UTC days up to and including today's (so today's bar is complete)."""
        if type(days) is not int or not 1 <= days <= MAX_WINDOW_DAYS:
            raise InvalidInputError(f"days: 1..{MAX_WINDOW_DAYS}", parameter="days")
        end = (now_ms // DAY_MS + 1) * DAY_MS
        return cls(end - days * DAY_MS, end)

    def days(self) -> list[str]:
        """The UTC dates (``YYYY-MM-DD``) the window touches, in order."""
        first, last = self.since_ms // DAY_MS, (self.until_ms - 1) // DAY_MS
        return [_date(d * DAY_MS) for d in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class DayCounts:
    day: str
    permit: int
    deny: int
    break_glass: int


@dataclass(frozen=True, slots=True)
class ActorDenials:
    actor: str
    actor_org: str | None
    count: int


@dataclass(frozen=True, slots=True)
class AccessStats:
    """What ``tally`` found: every day of the window (zeros included), the top denied
    actors, and whether it stopped at ``max_events``."""

    window: StatsWindow
    days: tuple[DayCounts, ...]
    denials_by_actor: tuple[ActorDenials, ...]
    other_denials: int
    total: int
    truncated: bool

    def to_json(self) -> dict[str, object]:
        return {
            "since_ms": self.window.since_ms,
            "until_ms": self.window.until_ms,
            "days": [
                {"day": d.day, "permit": d.permit, "deny": d.deny, "break-glass": d.break_glass}
                for d in self.days
            ],
            "denials_by_actor": [
                {"actor": a.actor, "actor_org": a.actor_org, "count": a.count}
                for a in self.denials_by_actor
            ],
            "other_denials": self.other_denials,
            "total": self.total,
            "truncated": self.truncated,
        }


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def tally(
    events: Iterable[AccessEvent],
    window: StatsWindow,
    *,
    node: str,
    max_events: int = MAX_EVENTS,
) -> AccessStats:
    """Count the events ``node`` decided inside ``window``: per UTC day and decision, and
    denials per actor (the top ``TOP_ACTORS``, ties by actor for a stable order). Events
    outside the window or decided by another node are skipped; after ``max_events`` counted
    the tally stops with ``truncated``."""
    per_day: dict[str, Counter[str]] = {day: Counter() for day in window.days()}
    denials: Counter[tuple[str, str | None]] = Counter()
    total, truncated = 0, False
    for event in events:
        if event.node != node or not window.since_ms <= event.time_ms < window.until_ms:
            continue
        if total == max_events:
            truncated = True
            break
        total += 1
        per_day[_date(event.time_ms)][event.decision] += 1
        if event.decision == "deny":
            denials[(event.actor, event.actor_org)] += 1
    ranked = sorted(denials.items(), key=lambda item: (-item[1], item[0][0]))
    top = ranked[:TOP_ACTORS]
    return AccessStats(
        window=window,
        days=tuple(
            DayCounts(day, c["permit"], c["deny"], c["break-glass"]) for day, c in per_day.items()
        ),
        denials_by_actor=tuple(ActorDenials(a, org, n) for (a, org), n in top),
        other_denials=sum(n for _, n in ranked[TOP_ACTORS:]),
        total=total,
        truncated=truncated,
    )
