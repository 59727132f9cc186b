"""The access-event store (medledger.adapters.sqlite_audit) on a real SQLite file: a batch
and its events in one transaction, listings and cursors, and every corrupted row read back
as a ``TamperError``, never as a wrong event or a traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.adapters.sqlite_audit import ANCHORED, FAILED, SEALED, SqliteAuditStore
from medledger.core.audit.batch import SealedBatch, seal_batch
from medledger.core.audit.event import AccessEvent
from medledger.core.audit.query import EventQuery
from medledger.errors import StorageError, TamperError
from tests.unit.audit.events import (
    DOCTOR,
    NODE,
    OTHER_PATIENT,
    PATIENT,
    T0,
    break_glass,
    did,
    event_id,
    make_event,
)

TX = b"\x01" * 32


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteAuditStore]:
    s = SqliteAuditStore(path)
    yield s
    s.close()


def batch_of(n: int, events: list[AccessEvent]) -> SealedBatch:
    return seal_batch(event_id(1_000_000 + n), events)


def two_batches(store: SqliteAuditStore) -> tuple[SealedBatch, SealedBatch]:
    first = batch_of(1, [make_event(0), make_event(1, patient=OTHER_PATIENT), make_event(2)])
    second = batch_of(
        2,
        [
            make_event(3, decision="deny", reasons=("no-consent",), consents=()),
            break_glass(4),
            make_event(5, actor=did(40), purpose="HPAYMT"),
        ],
    )
    store.save_batch(first, TX)
    store.save_batch(second, TX)
    return first, second


def corrupt(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


# --- writing and reading back ---------------------------------------------------------------
def test_a_batch_and_its_events_read_back_exactly(store: SqliteAuditStore) -> None:
    first, _ = two_batches(store)
    for i, event in enumerate(first.events):
        stored = store.event(event.event_id)
        assert stored is not None
        assert (stored.event, stored.batch_id, stored.index) == (event, first.batch_id, i)
    row = store.batch(first.batch_id)
    assert row is not None
    assert (row.root, row.count, row.leaves, row.state) == (
        first.root, 3, first.leaves, SEALED,
    )  # fmt: skip
    assert (row.first_time_ms, row.last_time_ms, row.tx_id) == (T0, T0 + 2, TX)
    assert store.counts() == (6, 2)


def test_unknown_ids_are_none(store: SqliteAuditStore) -> None:
    two_batches(store)
    assert store.event(event_id(77)) is None
    assert store.batch(event_id(77)) is None
    assert store.position(event_id(77)) is None


def test_a_batch_is_durable_for_a_new_connection(store: SqliteAuditStore, path: Path) -> None:
    first, _ = two_batches(store)
    other = SqliteAuditStore(path)
    try:
        assert other.event(first.events[2].event_id) is not None
    finally:
        other.close()


def test_an_event_recorded_twice_keeps_its_first_batch(store: SqliteAuditStore) -> None:
    event = make_event(0)
    assert store.save_batch(batch_of(1, [event]), TX) == 1
    assert store.save_batch(batch_of(2, [event, make_event(1)]), TX) == 1
    stored = store.event(event.event_id)
    assert stored is not None
    assert stored.batch_id == event_id(1_000_001)


def test_a_batch_id_is_stored_once(store: SqliteAuditStore) -> None:
    store.save_batch(batch_of(1, [make_event(0)]), TX)
    with pytest.raises(StorageError):
        store.save_batch(batch_of(1, [make_event(1)]), TX)
    assert store.event(make_event(1).event_id) is None  # nothing of the failed batch stayed


def test_the_anchor_states(store: SqliteAuditStore) -> None:
    first, second = two_batches(store)
    assert [b.batch_id for b in store.unanchored()] == [first.batch_id, second.batch_id]
    store.mark_anchored(first.batch_id, b"\x02" * 32, 17)
    store.mark_failed(second.batch_id, b"\x03" * 32, "expired")
    one, two = store.batch(first.batch_id), store.batch(second.batch_id)
    assert one is not None and two is not None
    assert (one.state, one.tx_id, one.log_index) == (ANCHORED, b"\x02" * 32, 17)
    assert (two.state, two.reason) == (FAILED, "expired")
    assert [b.batch_id for b in store.unanchored()] == [second.batch_id]
    store.set_anchor_tx(second.batch_id, b"\x04" * 32)
    again = store.batch(second.batch_id)
    assert again is not None
    assert (again.state, again.tx_id, again.reason) == (SEALED, b"\x04" * 32, None)


# --- listings -------------------------------------------------------------------------------
def test_a_patients_events_in_recording_order(store: SqliteAuditStore) -> None:
    first, second = two_batches(store)
    listed = store.list_events(EventQuery(PATIENT))
    assert listed == [first.events[0], first.events[2], *second.events]
    assert store.list_events(EventQuery(OTHER_PATIENT)) == [first.events[1]]
    assert store.list_events(EventQuery(did(99))) == []


def test_filters(store: SqliteAuditStore) -> None:
    _, second = two_batches(store)
    assert store.list_events(EventQuery(PATIENT, decision="deny")) == [second.events[0]]
    assert store.list_events(EventQuery(PATIENT, purpose="HPAYMT")) == [second.events[2]]
    assert store.list_events(EventQuery(PATIENT, actor=did(40))) == [second.events[2]]
    assert [e.time_ms for e in store.list_events(EventQuery(PATIENT, since_ms=T0 + 3,
                                                            until_ms=T0 + 5))] == [
        T0 + 3, T0 + 4,
    ]  # fmt: skip
    assert len(store.list_events(EventQuery(PATIENT, actor=DOCTOR))) == 4


def test_pages_never_repeat_or_skip(store: SqliteAuditStore) -> None:
    events = [make_event(i, time_ms=T0) for i in range(25)]  # all in one millisecond
    for n in range(5):
        store.save_batch(batch_of(n, events[5 * n : 5 * n + 5]), TX)
    seen: list[AccessEvent] = []
    after = None
    while page := store.list_events(EventQuery(PATIENT, after=after, limit=7)):
        seen.extend(page)
        after = store.position(page[-1].event_id)
    assert seen == events


def test_a_long_listing_spans_many_batches(store: SqliteAuditStore) -> None:
    events = [make_event(i) for i in range(150)]
    for n in range(150):
        store.save_batch(batch_of(n, [events[n], make_event(1000 + n, patient=OTHER_PATIENT)]), TX)
    assert store.list_events(EventQuery(PATIENT, limit=1000)) == events
    assert store.list_events(EventQuery(PATIENT, limit=100)) == events[:100]


def test_break_glass_events_by_node_or_actor_org(store: SqliteAuditStore) -> None:
    _, second = two_batches(store)
    elsewhere = break_glass(9, actor_org=did(50))
    store.save_batch(batch_of(3, [elsewhere]), TX)
    assert store.break_glass_events(NODE, after=None, limit=10) == [second.events[1], elsewhere]
    assert store.break_glass_events(did(50), after=None, limit=10) == [elsewhere]
    assert store.break_glass_events(did(51), after=None, limit=10) == []
    position = store.position(second.events[1].event_id)
    assert store.break_glass_events(NODE, after=position, limit=10) == [elsewhere]


# --- tampering ------------------------------------------------------------------------------
def segment_of(path: Path) -> Path:
    return path.with_name("audit-events") / "00000000.seg"


def edit_segment(path: Path, old: bytes, new: bytes) -> None:
    segment = segment_of(path)
    data = segment.read_bytes()
    assert old in data
    segment.write_bytes(data.replace(old, new, 1))


def test_a_flipped_byte_in_an_event_is_tamper(store: SqliteAuditStore, path: Path) -> None:
    first, _ = two_batches(store)
    edit_segment(path, b"TREAT", b"HRESE")  # still parses: no longer the leaf
    with pytest.raises(TamperError, match="leaf hash"):
        store.event(first.events[0].event_id)
    with pytest.raises(TamperError):
        store.list_events(EventQuery(PATIENT))


def test_an_event_that_no_longer_parses_is_tamper(store: SqliteAuditStore, path: Path) -> None:
    first, _ = two_batches(store)
    edit_segment(path, b'{"action"', b'["action"')
    with pytest.raises(TamperError, match="parse"):
        store.event(first.events[0].event_id)


def test_a_missing_segment_is_tamper(store: SqliteAuditStore, path: Path) -> None:
    first, _ = two_batches(store)
    segment_of(path).unlink()
    with pytest.raises(TamperError, match="missing"):
        store.event(first.events[0].event_id)


def test_a_truncated_segment_is_tamper(path: Path) -> None:
    two_batches(store := SqliteAuditStore(path))
    store.close()
    with segment_of(path).open("r+b") as f:
        f.truncate(100)
    with pytest.raises(TamperError, match="shorter"):
        SqliteAuditStore(path)


def test_bytes_of_a_batch_that_never_committed_are_cut_off(path: Path) -> None:
    """A crash between the segment write and the batch row's commit."""
    first, second = two_batches(store := SqliteAuditStore(path))
    store.close()
    committed = segment_of(path).stat().st_size
    with segment_of(path).open("ab") as f:
        f.write(b'{"half":"a batch"')
    stray = path.with_name("audit-events") / "00000001.seg"
    stray.write_bytes(b"a segment no batch names")
    store = SqliteAuditStore(path)
    try:
        assert segment_of(path).stat().st_size == committed
        assert not stray.exists()
        third = batch_of(3, [make_event(9)])
        store.save_batch(third, TX)
        for event in [*first.events, *second.events, *third.events]:
            assert store.event(event.event_id) is not None
    finally:
        store.close()


def test_segments_rotate(path: Path) -> None:
    store = SqliteAuditStore(path, segment_bytes=2_000)
    try:
        events = [make_event(i) for i in range(12)]
        for n in range(6):
            store.save_batch(batch_of(n, events[2 * n : 2 * n + 2]), TX)
        assert len(list(path.with_name("audit-events").glob("*.seg"))) > 2
        assert store.list_events(EventQuery(PATIENT)) == events
    finally:
        store.close()
    reopened = SqliteAuditStore(path)
    try:
        assert reopened.list_events(EventQuery(PATIENT)) == events
    finally:
        reopened.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE batches SET leaves = substr(leaves, 2) || X'00'",
        "UPDATE batches SET offsets = X'00000001' || substr(offsets, 5)",
        "UPDATE batches SET offsets = substr(offsets, 5)",
        "UPDATE batches SET count = count + 1",
    ],
)
def test_corrupted_batch_rows_are_tamper(store: SqliteAuditStore, path: Path, sql: str) -> None:
    first, _ = two_batches(store)
    corrupt(path, sql)
    with pytest.raises(TamperError):
        store.event(first.events[0].event_id)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE batches SET root = X'00'",
        "UPDATE batches SET state = 'done'",
        "UPDATE batches SET leaves = X'00'",
        "UPDATE batches SET state = 'anchored'",  # no log index
        "UPDATE batches SET tx_id = 'text'",
    ],
)
def test_malformed_batch_rows_are_tamper(store: SqliteAuditStore, path: Path, sql: str) -> None:
    first, _ = two_batches(store)
    corrupt(path, sql)
    with pytest.raises(TamperError):
        store.batch(first.batch_id)
    if "'anchored'" not in sql:  # an anchored batch is not listed as unanchored
        with pytest.raises(TamperError):
            store.unanchored()


def index_of(path: Path) -> Path:
    return path.with_name("audit-index.db")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE event_ids SET idx = 1 - idx WHERE idx < 2",
        "UPDATE event_ids SET idx = 99",
        "UPDATE event_ids SET seq = 'x'",
    ],
)
def test_an_id_index_row_naming_another_event_is_tamper(path: Path, sql: str) -> None:
    first, _ = two_batches(store := SqliteAuditStore(path))
    store.close()  # the index is written out
    corrupt(index_of(path), sql)
    store = SqliteAuditStore(path)
    try:
        with pytest.raises(TamperError):
            store.event(first.events[0].event_id)
    finally:
        store.close()


@pytest.mark.parametrize(
    "positions",
    [
        bytes.fromhex("0000000000000001 00000001"),  # the other patient's event
        bytes.fromhex("0000000000000001"),  # not whole positions
        bytes.fromhex("0000000000000009 00000000"),  # no such batch
    ],
)
def test_a_patient_index_naming_another_event_is_tamper(path: Path, positions: bytes) -> None:
    two_batches(store := SqliteAuditStore(path))
    store.close()
    corrupt(index_of(path), "UPDATE patient_runs SET positions = ? WHERE patient = ?",
            positions, PATIENT)  # fmt: skip
    store = SqliteAuditStore(path)
    try:
        with pytest.raises(TamperError):
            store.list_events(EventQuery(PATIENT))
    finally:
        store.close()


# --- the index: epochs, crashes, rebuilding ---------------------------------------------------
def test_lookups_span_epochs_on_disk_and_in_memory(path: Path) -> None:
    store = SqliteAuditStore(path, index_epoch_events=4)
    try:
        events = [make_event(i, patient=PATIENT if i % 3 else OTHER_PATIENT) for i in range(30)]
        for n in range(10):
            store.save_batch(batch_of(n, events[3 * n : 3 * n + 3]), TX)
        for e in events:
            stored = store.event(e.event_id)
            assert stored is not None
            assert stored.event == e
        mine = [e for e in events if e.patient == PATIENT]
        assert store.list_events(EventQuery(PATIENT, limit=1000)) == mine
        seen: list[AccessEvent] = []
        after = None
        while page := store.list_events(EventQuery(PATIENT, after=after, limit=3)):
            seen.extend(page)
            after = store.position(page[-1].event_id)
        assert seen == mine
    finally:
        store.close()


def test_an_index_lost_in_a_crash_is_rebuilt_from_the_batches(path: Path) -> None:
    crashed = SqliteAuditStore(path)
    first, second = two_batches(crashed)  # never closed: the index is only in memory
    reopened = SqliteAuditStore(path)
    try:
        assert reopened.list_events(EventQuery(PATIENT)) == [
            first.events[0], first.events[2], *second.events,
        ]  # fmt: skip
        assert reopened.event(first.events[1].event_id) is not None
    finally:
        reopened.close()
        crashed.close()


def test_a_deleted_index_file_is_rebuilt(path: Path) -> None:
    first, _ = two_batches(store := SqliteAuditStore(path))
    store.close()
    index_of(path).unlink()
    store = SqliteAuditStore(path)
    try:
        assert store.event(first.events[2].event_id) is not None
        assert len(store.list_events(EventQuery(PATIENT))) == 5
    finally:
        store.close()


def test_a_break_glass_index_naming_another_event_is_tamper(
    store: SqliteAuditStore, path: Path
) -> None:
    two_batches(store)
    corrupt(path, "UPDATE break_glass SET idx = 0")
    with pytest.raises(TamperError, match="break-glass"):
        store.break_glass_events(NODE, after=None, limit=10)


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "audit.db"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError):
        SqliteAuditStore(bad)
