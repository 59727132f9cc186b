"""Newest-first listing of a patient's access events (issue 8 item 2) on the real store and
its index (``sqlite_audit`` + ``sqlite_audit_index``, SQLite files on disk): paging newest
first, with any page sizes and filters, yields exactly the naive reverse of the full listing
-- wherever the positions are (index epochs written out, being written, still in memory),
across a restart, and while new events keep arriving."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.adapters.sqlite_audit import SqliteAuditStore
from medledger.core.audit.batch import seal_batch
from medledger.core.audit.event import AccessEvent
from medledger.core.audit.query import EventQuery
from tests.unit.audit.events import DOCTOR, OTHER_PATIENT, PATIENT, T0, did, event_id, make_event

TX = b"\x01" * 32
OTHER_DOCTOR = did(40)


@dataclass(frozen=True)
class Spec:
    """One event to record: whose, by whom, what was decided, for what, when (ms after T0).
    Times repeat and go backwards: recording order, not the clock, is the order."""

    patient: str
    actor: str
    decision: str
    purpose: str
    time: int


specs = st.builds(
    Spec,
    patient=st.sampled_from([PATIENT, PATIENT, OTHER_PATIENT]),
    actor=st.sampled_from([DOCTOR, OTHER_DOCTOR, PATIENT]),
    decision=st.sampled_from(["permit", "deny"]),
    purpose=st.sampled_from(["TREAT", "HPAYMT"]),
    time=st.integers(0, 30),
)
batches = st.lists(st.lists(specs, min_size=1, max_size=6), min_size=0, max_size=6)
filters = st.fixed_dictionaries(
    {},
    optional={
        "decision": st.sampled_from(["permit", "deny"]),
        "actor": st.sampled_from([DOCTOR, OTHER_DOCTOR]),
        "purpose": st.sampled_from(["TREAT", "HPAYMT"]),
        "since_ms": st.integers(0, 30).map(lambda t: T0 + t),
        "until_ms": st.integers(0, 31).map(lambda t: T0 + t),
        "others_only": st.booleans(),
    },
)


class Log:
    """The store under test and, beside it, every event in the order it was recorded."""

    def __init__(self, path: Path, epoch_events: int) -> None:
        self.path, self.epoch_events = path, epoch_events
        self.store = SqliteAuditStore(path, index_epoch_events=epoch_events)
        self.recorded: list[AccessEvent] = []
        self.batches = 0

    def record(self, specs: list[list[Spec]]) -> None:
        for batch in specs:
            events: list[AccessEvent] = []
            for s in batch:
                n = len(self.recorded) + len(events)
                events.append(
                    make_event(n, patient=s.patient, actor=s.actor, time_ms=T0 + s.time,
                               purpose=s.purpose, decision=s.decision,
                               reasons=("no-consent",) if s.decision == "deny"
                               else ("consent-permit",),
                               consents=() if s.decision == "deny" else ("consent-1",))
                )  # fmt: skip
            self.batches += 1
            self.store.save_batch(seal_batch(event_id(10**9 + self.batches), events), TX)
            self.recorded.extend(events)

    def restart(self) -> None:
        self.store.close()
        self.store = SqliteAuditStore(self.path, index_epoch_events=self.epoch_events)


def naive(recorded: list[AccessEvent], patient: str, f: dict[str, Any]) -> list[AccessEvent]:
    """The oracle: every event of the patient that the filters keep, in recording order."""
    return [
        e
        for e in recorded
        if e.patient == patient
        and ("decision" not in f or e.decision == f["decision"])
        and ("actor" not in f or e.actor == f["actor"])
        and ("purpose" not in f or e.purpose == f["purpose"])
        and ("since_ms" not in f or e.time_ms >= f["since_ms"])
        and ("until_ms" not in f or e.time_ms < f["until_ms"])
        and (not f.get("others_only") or e.actor != patient)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=batches,
    during=batches,
    f=filters,
    limits=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    epoch_events=st.integers(1, 12),
    restart_at=st.none() | st.integers(0, 5),
)
def test_paging_newest_first_is_the_reverse_of_the_full_listing(
    before: list[list[Spec]],
    during: list[list[Spec]],
    f: dict[str, Any],
    limits: list[int],
    epoch_events: int,
    restart_at: int | None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp) / "audit.db", epoch_events)
        try:
            log.record(before)
            expected = naive(log.recorded, PATIENT, f)[::-1]
            seen: list[AccessEvent] = []
            cursor: tuple[int, int] | None = None
            for n in range(len(log.recorded) + 1):
                limit = limits[n % len(limits)]
                query = EventQuery(PATIENT, **f, order="newest", before=cursor, limit=limit)
                page = log.store.list_events(query)
                seen.extend(page)
                if len(page) < limit:
                    break
                if n == 0:
                    log.record(during)  # newer than every cursor from now on: never listed
                if n == restart_at:
                    log.restart()  # the cursor is a position: it survives the restart
                cursor = log.store.position(page[-1].event_id)
            assert seen == expected
            everything = naive(log.recorded, PATIENT, f)
            whole = EventQuery(PATIENT, **f, order="newest", limit=1000)
            assert log.store.list_events(whole) == everything[::-1]
            assert log.store.list_events(EventQuery(PATIENT, **f, limit=1000)) == everything
        finally:
            log.store.close()


def test_newest_first_across_epochs_on_disk_and_in_memory(tmp_path: Path) -> None:
    """A fixed case of the property: 10 batches, epochs of 4 events, one page at a time."""
    log = Log(tmp_path / "audit.db", 4)
    try:
        mine = [Spec(PATIENT, DOCTOR, "permit", "TREAT", 0)] * 2
        log.record([[*mine, Spec(OTHER_PATIENT, DOCTOR, "permit", "TREAT", 0)]] * 10)
        first = log.store.list_events(EventQuery(PATIENT, order="newest", limit=3))
        assert first == naive(log.recorded, PATIENT, {})[::-1][:3]
        assert first[0] == log.recorded[-2]  # the most recent of the patient's events
        older = log.store.list_events(
            EventQuery(PATIENT, order="newest", limit=3,
                       before=log.store.position(first[-1].event_id))
        )  # fmt: skip
        assert older == naive(log.recorded, PATIENT, {})[::-1][3:6]
    finally:
        log.store.close()


def test_newest_first_over_more_index_rows_than_one_read(tmp_path: Path) -> None:
    """100 epochs of one batch each, all on disk after a restart: the index rows are read 64
    at a time, newest first too."""
    log = Log(tmp_path / "audit.db", 1)
    try:
        log.record([[Spec(PATIENT, DOCTOR, "permit", "TREAT", n % 30)] for n in range(100)])
        log.restart()
        seen: list[AccessEvent] = []
        cursor = None
        while page := log.store.list_events(
            EventQuery(PATIENT, order="newest", before=cursor, limit=9)
        ):
            seen.extend(page)
            cursor = log.store.position(page[-1].event_id)
        assert seen == log.recorded[::-1]
    finally:
        log.store.close()


def test_a_page_of_a_large_batch_reads_it_in_chunks_and_misses_nothing(tmp_path: Path) -> None:
    """One batch of 300 events: a page reads no more of it than it can still take (64 at a
    time at least), so a selective filter goes on through chunk after chunk, both ways."""
    log = Log(tmp_path / "audit.db", 1000)
    try:
        decisions = ["deny" if n % 7 == 0 else "permit" for n in range(300)]
        log.record([[Spec(PATIENT, DOCTOR, d, "TREAT", 0) for d in decisions]])
        denied = naive(log.recorded, PATIENT, {"decision": "deny"})
        for order, expected in (("oldest", denied), ("newest", denied[::-1])):
            seen: list[AccessEvent] = []
            cursor = None
            while page := log.store.list_events(
                EventQuery(PATIENT, decision="deny", order=order, limit=5,
                           after=cursor if order == "oldest" else None,
                           before=cursor if order == "newest" else None)
            ):  # fmt: skip
                seen.extend(page)
                cursor = log.store.position(page[-1].event_id)
            assert seen == expected
        assert log.store.list_events(EventQuery(PATIENT, limit=1000)) == log.recorded
    finally:
        log.store.close()
