"""Reading a time window of access events back from the store, for the officer's aggregates
(``SqliteAuditStore.events_between`` and ``AuditService.access_stats``' input): only batches
that overlap the window, every page of batches, each event re-checked as on any read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from medledger.adapters.sqlite_audit import SqliteAuditStore
from medledger.core.audit.batch import seal_batch
from medledger.core.audit.stats import DAY_MS, StatsWindow, tally
from medledger.errors import TamperError
from tests.unit.audit.events import NODE, T0, event_id, make_event

TX = b"\x01" * 32
BATCHES = 1205  # more than one page of batches (1000)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.db"
    store = SqliteAuditStore(path)
    for i in range(BATCHES):  # one event a batch, 1 ms apart, every third denied
        decision = "deny" if i % 3 == 0 else "permit"
        event = make_event(i, time_ms=T0 + i, decision=decision,
                           reasons=("no-consent",) if decision == "deny" else ("consent-permit",),
                           consents=() if decision == "deny" else ("consent-1",))  # fmt: skip
        store.save_batch(seal_batch(event_id(1_000_000 + i), [event]), TX)
    store.close()
    return path


def test_only_the_batches_overlapping_the_window_every_page_of_them(path: Path) -> None:
    store = SqliteAuditStore(path)
    try:
        times = [e.time_ms - T0 for e in store.events_between(T0 + 5, T0 + 1200)]
    finally:
        store.close()
    assert times == list(range(5, 1200))


def test_the_tally_over_the_store_counts_each_decision_once(path: Path) -> None:
    store = SqliteAuditStore(path)
    day = (T0 // DAY_MS) * DAY_MS
    try:
        stats = tally(store.events_between(day, day + DAY_MS), StatsWindow(day, day + DAY_MS),
                      node=NODE)  # fmt: skip
    finally:
        store.close()
    denies = len(range(0, BATCHES, 3))
    assert (stats.days[0].deny, stats.days[0].permit) == (denies, BATCHES - denies)


def test_an_altered_event_in_the_window_is_tamper_not_a_wrong_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SqliteAuditStore(path)
    for i in range(3):
        store.save_batch(seal_batch(event_id(2_000_000 + i), [make_event(i)]), TX)
    store.close()
    with sqlite3.connect(path) as db:  # a leaf hash that no longer matches its event
        db.execute(
            "UPDATE batches SET leaves = zeroblob(32) WHERE seq = (SELECT max(seq) FROM batches)"
        )
    store = SqliteAuditStore(path)
    try:
        with pytest.raises(TamperError):
            list(store.events_between(T0, T0 + 3))
    finally:
        store.close()
