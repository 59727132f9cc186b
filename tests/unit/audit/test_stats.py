"""Access-decision aggregates (``core.audit.stats``): per day, denials by actor, the window."""

from __future__ import annotations

import pytest

from medledger.core.audit.event import AccessEvent
from medledger.core.audit.stats import DAY_MS, MAX_WINDOW_DAYS, TOP_ACTORS, StatsWindow, tally
from medledger.errors import InvalidInputError

from .events import DOCTOR, NODE, T0, break_glass, did, make_event

DAY0 = (T0 // DAY_MS) * DAY_MS  # 2023-11-14 00:00 UTC


def window(days: int = 3) -> StatsWindow:
    return StatsWindow(DAY0, DAY0 + days * DAY_MS)


def deny(n: int, **changes: object) -> AccessEvent:
    return make_event(n, decision="deny", reasons=("no-consent",), consents=(), **changes)


def test_counts_each_decision_on_its_utc_day_and_every_day_appears() -> None:
    events = [
        make_event(1, time_ms=DAY0 + 10),
        deny(2, time_ms=DAY0 + 20),
        break_glass(3, time_ms=DAY0 + DAY_MS + 5),
        make_event(4, time_ms=DAY0 + DAY_MS - 1),  # last millisecond of day 0
    ]
    stats = tally(events, window(), node=NODE)
    assert [(d.day, d.permit, d.deny, d.break_glass) for d in stats.days] == [
        ("2023-11-14", 2, 1, 0),
        ("2023-11-15", 0, 0, 1),
        ("2023-11-16", 0, 0, 0),
    ]
    assert stats.total == 4 and not stats.truncated


def test_events_outside_the_window_or_of_another_node_are_not_counted() -> None:
    events = [
        make_event(1, time_ms=DAY0 - 1),
        make_event(2, time_ms=DAY0 + 3 * DAY_MS),  # until is exclusive
        make_event(3, time_ms=DAY0 + 5, node=did(9)),
    ]
    stats = tally(events, window(), node=NODE)
    assert stats.total == 0 and all(d.permit == 0 for d in stats.days)


def test_denials_by_actor_are_ranked_and_the_rest_summed() -> None:
    events = [deny(i, time_ms=DAY0 + i, actor=did(100 + i % 25)) for i in range(100)]
    events += [deny(1000 + i, time_ms=DAY0 + i, actor=DOCTOR) for i in range(10)]
    stats = tally(events, window(), node=NODE)
    assert stats.denials_by_actor[0].actor == DOCTOR and stats.denials_by_actor[0].count == 10
    assert len(stats.denials_by_actor) == TOP_ACTORS
    counted = sum(a.count for a in stats.denials_by_actor) + stats.other_denials
    assert counted == 110 == stats.days[0].deny
    # permits never show up as denials
    assert tally([make_event(1, time_ms=DAY0)], window(), node=NODE).denials_by_actor == ()


def test_the_tally_stops_at_its_bound_and_says_so() -> None:
    events = (make_event(i, time_ms=DAY0 + i) for i in range(50))
    stats = tally(events, window(), node=NODE, max_events=20)
    assert stats.truncated and stats.total == 20 and stats.days[0].permit == 20


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (DAY0, DAY0),  # empty
        (DAY0 + 1, DAY0),  # reversed
        (DAY0, DAY0 + (MAX_WINDOW_DAYS + 1) * DAY_MS),  # too long
        (-1, DAY0),
        (True, DAY0),  # a bool is not a time
    ],
)
def test_a_window_that_is_empty_reversed_or_too_long_is_refused(since: int, until: int) -> None:
    with pytest.raises(InvalidInputError):
        StatsWindow(since, until)


def test_last_days_ends_with_today_complete() -> None:
    now = DAY0 + 5 * DAY_MS + 123
    w = StatsWindow.last_days(7, now)
    assert w.until_ms == DAY0 + 6 * DAY_MS and len(w.days()) == 7
    assert w.days()[-1] == "2023-11-19"
    with pytest.raises(InvalidInputError):
        StatsWindow.last_days(MAX_WINDOW_DAYS + 1, now)


def test_json_form_names_decisions_as_the_events_do() -> None:
    stats = tally([break_glass(1, time_ms=DAY0)], window(1), node=NODE)
    body = stats.to_json()
    assert body["days"] == [{"day": "2023-11-14", "permit": 0, "deny": 0, "break-glass": 1}]
    assert body["total"] == 1 and body["truncated"] is False
