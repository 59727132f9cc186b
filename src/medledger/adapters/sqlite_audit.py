"""The node's access-event store: sealed batches and their events (``data/audit.db``).

One SQLite file in WAL mode with full fsync on commit (``sqlite_connect``). A batch and all
its events are written in ONE transaction, so a batch on disk is whole; its anchor (the
``access.batch`` transaction's id and log index) is filled in when that commits.

Laid out for ingest at 10^5 events/s (ADR 0014): nothing is written per event but its bytes.

- ``batches``: one row per sealed batch -- root, count, time range, where the events' exact
  leaf bytes are (``segment``, ``body_offset``, ``body_length`` in ``audit_segments``; each
  event's end offset in ``offsets``, big-endian uint32), their leaf hashes (``leaves``, 32
  bytes each: what inclusion proofs are built from), and the anchor: transaction id, log
  index, state (``sealed`` -> ``anchored``, or ``failed`` with a reason). The bytes are
  made durable in their segment before the row commits; the row's commit is the batch's.
- ``break_glass``: the (rare) break-glass events' positions, for review.
- lookups by event id and by patient: ``sqlite_audit_index`` (``data/audit-index.db``),
  derived from the batches and rebuilt from them after a crash.

Events are listed in the order the node recorded them (batch, then index in the batch). Every
event read is its stored bytes parsed again (``parse_event``) and checked against its
canonical form, its batch's leaf hash and what the lookup promised: a row altered on disk is
a ``TamperError``, never a wrong answer or a traceback. SQLite failures are ``StorageError``.
The WAL is checkpointed by a thread of its own, so a commit waits for its own fsync only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from medledger.adapters.audit_segments import DEFAULT_MAX_BYTES, Segments
from medledger.adapters.sqlite_audit_index import AuditIndex
from medledger.adapters.sqlite_connect import connect, storage_errors, write_transaction
from medledger.core.audit.batch import SealedBatch
from medledger.core.audit.event import AccessEvent, parse_event
from medledger.core.audit.query import EventQuery
from medledger.core.merkle import HASH_SIZE, leaf_hash
from medledger.errors import InvalidInputError, StorageError, TamperError

SEALED: Final = "sealed"
ANCHORED: Final = "anchored"
FAILED: Final = "failed"
_STATES: Final = frozenset({SEALED, ANCHORED, FAILED})
#: The writer's page cache: large batches touch many index pages.
_CACHE_KIB: Final = 64 * 1024
#: 64 MiB of 4 KiB pages: past this the WAL is checkpointed and restarted.
_WAL_RESTART_FRAMES: Final = 16_384
#: A listing reads a batch's events for it this many at a time at least.
_MIN_READ: Final = 64
log = logging.getLogger("medledger.audit")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
  seq INTEGER PRIMARY KEY,
  batch_id TEXT NOT NULL UNIQUE, root BLOB NOT NULL, count INTEGER NOT NULL,
  first_time_ms INTEGER NOT NULL, last_time_ms INTEGER NOT NULL,
  leaves BLOB NOT NULL, offsets BLOB NOT NULL,
  segment INTEGER NOT NULL, body_offset INTEGER NOT NULL, body_length INTEGER NOT NULL,
  tx_id BLOB, log_index INTEGER, state TEXT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS batches_unanchored ON batches (seq) WHERE state != 'anchored';
CREATE TABLE IF NOT EXISTS break_glass (
  seq INTEGER NOT NULL, idx INTEGER NOT NULL, node TEXT NOT NULL, actor_org TEXT,
  PRIMARY KEY (seq, idx)) WITHOUT ROWID;
"""
_BATCH_COLUMNS: Final = (
    "seq, batch_id, root, count, first_time_ms, last_time_ms, leaves, tx_id, log_index, state,"
    " reason"
)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch as stored: enough to prove its events and to find (or redo) its anchor."""

    seq: int
    batch_id: str
    root: bytes
    count: int
    first_time_ms: int
    last_time_ms: int
    leaves: tuple[bytes, ...]
    tx_id: bytes | None
    log_index: int | None
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event and where it is: leaf ``index`` of batch ``batch_id``."""

    event: AccessEvent
    batch_id: str
    index: int


def _errors(doing: str) -> contextlib.AbstractContextManager[None]:
    return storage_errors("audit store", doing)


def _uint32s(values: Sequence[int]) -> bytes:
    """Big-endian uint32s, concatenated."""
    return struct.pack(f">{len(values)}I", *values)


def _slice(blob: sqlite3.Blob, start: int, length: int) -> bytes:
    blob.seek(start)
    return blob.read(length)


class _Checkpointer:
    """Copies the WAL into the database on its own thread and connection, so a batch's commit
    waits for its own WAL fsync only, not for the previous batches' pages to be copied (a
    PASSIVE checkpoint never blocks the writer). If the WAL still grows past
    ``_WAL_RESTART_FRAMES`` (readers pinning it), a RESTART checkpoint waits for them and
    starts it afresh, which bounds the file."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, readonly=False, what="audit")
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames > _WAL_RESTART_FRAMES:
                    self._conn.execute("PRAGMA wal_checkpoint(RESTART)")
            except sqlite3.Error as e:  # the next commit's own checkpoint still runs
                log.warning("audit store checkpoint failed: %s", e)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()


class SqliteAuditStore:
    """One writer connection and one read-only reader, each serialised by its own lock: a
    large batch being written does not hold up listings (WAL readers see the last commit).
    The WAL is checkpointed by a thread of its own (``_Checkpointer``)."""

    def __init__(
        self,
        path: Path,
        *,
        index_epoch_events: int = 200_000,
        segment_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._conn = connect(path, readonly=False, what="audit")
        self._lock = threading.Lock()
        with _errors("setup"):
            self._conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn.execute(f"PRAGMA journal_size_limit={_WAL_RESTART_FRAMES * 4096}")
            self._conn.executescript(_SCHEMA)
        self._reader = connect(path, readonly=True, what="audit")
        self._read_lock = threading.Lock()
        self._checkpointer = _Checkpointer(path)
        self._segments = Segments(path.with_name(path.stem + "-events"), max_bytes=segment_bytes)
        self._end = self._recover_segments()
        self._index = AuditIndex(
            path.with_name(path.stem + "-index.db"), epoch_events=index_epoch_events
        )
        caught_up = self._index.catch_up(self._entries_after)
        if caught_up:
            log.info("audit index: %d batches read back from the store", caught_up)

    def _recover_segments(self) -> tuple[int, int]:
        """Cut segments back to their committed batches; return where appends continue."""
        rows = self._read(
            "SELECT segment, max(body_offset + body_length) FROM batches GROUP BY segment"
        )
        committed = {int(segment): int(end) for segment, end in rows}
        self._segments.recover(committed)
        last = max(committed, default=0)
        return last, committed.get(last, 0)

    def close(self) -> None:
        self._index.close()
        self._segments.close()
        self._checkpointer.close()
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[sqlite3.Connection]:
        with _errors(doing), write_transaction(self._conn, self._lock) as conn:
            yield conn

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock, _errors("read"):
            return self._reader.execute(sql, params).fetchall()

    # --- writes -------------------------------------------------------------------------------
    def save_batch(self, batch: SealedBatch, tx_id: bytes) -> int:
        """Store a sealed batch and every event of it durably; return how many events were
        new (an id recorded twice keeps one position, unspecified which).

        1. the events' bytes, appended to the current segment and fdatasync'ed;
        2. one SQLite transaction: the batch row naming them, and its break-glass positions.
        The commit of 2 is the commit point (bytes of 1 without it are cut off on open)."""
        bodies = [e.leaf_bytes() for e in batch.events]
        data = b"".join(bodies)
        events = batch.events
        with self._lock:  # one append-and-commit at a time: segment order is commit order
            segment, offset = self._segments.append(data, after=self._end)
            with _errors("save"):
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    seq = conn.execute(
                        "INSERT INTO batches (batch_id, root, count, first_time_ms,"
                        " last_time_ms, leaves, offsets, segment, body_offset, body_length,"
                        " tx_id, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            batch.batch_id,
                            batch.root,
                            batch.count,
                            batch.first_time_ms,
                            batch.last_time_ms,
                            b"".join(batch.leaves),
                            _uint32s(list(itertools.accumulate(map(len, bodies)))),
                            segment,
                            offset,
                            len(data),
                            tx_id,
                            SEALED,
                        ),
                    ).lastrowid
                    conn.executemany(
                        "INSERT INTO break_glass VALUES (?,?,?,?)",
                        (
                            (seq, i, e.node, e.actor_org)
                            for i, e in enumerate(events)
                            if e.decision == "break-glass"
                        ),
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            if seq is None:  # pragma: no cover - an INSERT into a rowid table has one
                raise StorageError("the audit store gave the batch no row number")
            self._end = (segment, offset + len(data))
        self._checkpointer.poke()
        return self._index.add(seq, [(e.event_id, e.patient, e.time_ms) for e in events])

    def set_anchor_tx(self, batch_id: str, tx_id: bytes) -> None:
        """A new anchor transaction for a batch whose earlier one did not commit."""
        with self._tx("anchor") as conn:
            conn.execute(
                "UPDATE batches SET tx_id = ?, state = ?, reason = NULL WHERE batch_id = ?",
                (tx_id, SEALED, batch_id),
            )

    def mark_anchored(self, batch_id: str, tx_id: bytes, log_index: int) -> None:
        with self._tx("anchor") as conn:
            conn.execute(
                "UPDATE batches SET tx_id = ?, log_index = ?, state = ?, reason = NULL"
                " WHERE batch_id = ?",
                (tx_id, log_index, ANCHORED, batch_id),
            )

    def mark_failed(self, batch_id: str, tx_id: bytes, reason: str) -> None:
        with self._tx("anchor") as conn:
            conn.execute(
                "UPDATE batches SET tx_id = ?, state = ?, reason = ? WHERE batch_id = ?",
                (tx_id, FAILED, reason[:200], batch_id),
            )

    # --- batches ------------------------------------------------------------------------------
    def batch(self, batch_id: str) -> StoredBatch | None:
        rows = self._read(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,))  # noqa: S608
        return _batch(rows[0]) if rows else None

    def unanchored(self) -> list[StoredBatch]:
        """Batches whose anchor has not committed (sealed or failed), oldest first."""
        rows = self._read(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE state != 'anchored' ORDER BY seq"  # noqa: S608
        )
        return [_batch(r) for r in rows]

    def counts(self) -> tuple[int, int]:
        """(events, batches) stored."""
        rows = self._read("SELECT coalesce(sum(count), 0), count(*) FROM batches")
        return int(rows[0][0]), int(rows[0][1])

    # --- events -------------------------------------------------------------------------------
    def _events_at(self, seq: int, idxs: Sequence[int]) -> list[StoredEvent]:
        """The events at ``idxs`` of batch ``seq``, each read back from its bytes and checked
        against its batch's leaf hash."""
        with self._read_lock, _errors("read"):
            row = self._reader.execute(
                "SELECT batch_id, count, segment, body_offset, body_length FROM batches"
                " WHERE seq = ?",
                (seq,),
            ).fetchone()
            if row is None:
                raise TamperError("an access event's batch is missing")
            batch_id, count, segment, body_offset, body_length = row
            if not all(isinstance(v, int) for v in row[1:]) or not isinstance(batch_id, str):
                raise TamperError("a stored access-event batch row is malformed")
            with (
                self._reader.blobopen("batches", "offsets", seq, readonly=True) as offsets,
                self._reader.blobopen("batches", "leaves", seq, readonly=True) as leaves,
            ):
                if len(offsets) != 4 * count or len(leaves) != HASH_SIZE * count:
                    raise TamperError("a stored access-event batch has the wrong sizes")
                spans = []
                for idx in idxs:
                    if not 0 <= idx < count:
                        raise TamperError("an access event's index is outside its batch")
                    start = 0 if idx == 0 else int.from_bytes(_slice(offsets, 4 * idx - 4, 4))
                    end = int.from_bytes(_slice(offsets, 4 * idx, 4))
                    if not start < end <= body_length:
                        raise TamperError("a stored access event's offsets are corrupted")
                    spans.append((idx, start, end, _slice(leaves, HASH_SIZE * idx, HASH_SIZE)))
        out = []
        for idx, start, end, leaf in spans:
            body = self._segments.read(segment, body_offset + start, end - start)
            out.append(StoredEvent(_event(body, leaf), batch_id, idx))
        return out

    def event(self, event_id: str) -> StoredEvent | None:
        position = self._index.position(event_id)
        if position is None:
            return None
        stored = self._events_at(position[0], [position[1]])[0]
        if stored.event.event_id != event_id:
            raise TamperError("a stored access event is not the one its id row names")
        return stored

    def position(self, event_id: str) -> tuple[int, int] | None:
        """Where an event is in recording order: (batch sequence number, index)."""
        return self._index.position(event_id)

    def list_events(self, query: EventQuery) -> list[AccessEvent]:
        """A patient's events matching ``query``, in recording order after ``query.after``,
        or newest first before ``query.before`` (each a ``position``)."""
        found: list[AccessEvent] = []
        runs = self._index.patient_runs(
            query.patient,
            after=query.after if query.after is not None else (-1, -1),
            since_ms=query.since_ms,
            until_ms=query.until_ms,
            before=query.before,
            newest_first=query.newest_first,
        )
        for run in runs:
            for seq, group in itertools.groupby(run.positions, key=lambda p: p[0]):
                idxs = [idx for _, idx in group]
                # read (and check) no more of a large batch than the page can still take
                at = 0
                while at < len(idxs):
                    chunk = idxs[at : at + max(query.limit - len(found), _MIN_READ)]
                    at += len(chunk)
                    for stored in self._events_at(seq, chunk):
                        if stored.event.patient != query.patient:
                            raise TamperError("a patient index names another patient's event")
                        if _matches(stored.event, query):
                            found.append(stored.event)
                            if len(found) == query.limit:
                                return found
        return found

    def _entries_after(self, after_seq: int) -> Iterator[tuple[int, list[tuple[str, str, int]]]]:
        """Every batch after ``after_seq``, as the index needs it, read back and checked."""
        rows = self._read("SELECT seq, count FROM batches WHERE seq > ? ORDER BY seq", (after_seq,))
        for seq, count in rows:
            events = self._events_at(int(seq), range(int(count)))
            yield int(seq), [(s.event.event_id, s.event.patient, s.event.time_ms) for s in events]

    def events_between(self, since_ms: int, until_ms: int) -> Iterator[AccessEvent]:
        """Every event of the batches whose time range meets ``since_ms <= t < until_ms``,
        batch by batch in recording order (the caller filters by time and stops when it
        has enough): for aggregates over a bounded window."""
        after = -1
        while True:  # a page of batches at a time: a long window may span millions
            rows = self._read(
                "SELECT seq, count FROM batches WHERE seq > ? AND last_time_ms >= ?"
                " AND first_time_ms < ? ORDER BY seq LIMIT 1000",
                (after, since_ms, until_ms),
            )
            for seq, count in rows:
                for stored in self._events_at(int(seq), range(int(count))):
                    yield stored.event
            if len(rows) < 1000:
                return
            after = int(rows[-1][0])

    def break_glass_events(
        self, org: str, *, after: tuple[int, int] | None, limit: int
    ) -> list[AccessEvent]:
        """Break-glass events decided by ``org``'s node or by an actor acting for ``org``,
        in recording order, after the ``position`` ``after``."""
        after_seq, after_idx = after if after is not None else (-1, -1)
        rows = self._read(
            "SELECT seq, idx FROM break_glass WHERE (node = ? OR actor_org = ?)"
            " AND (seq, idx) > (?, ?) ORDER BY seq, idx LIMIT ?",
            (org, org, after_seq, after_idx, limit),
        )
        found = []
        for seq, group in itertools.groupby(rows, key=lambda r: r[0]):
            for stored in self._events_at(seq, [r[1] for r in group]):
                if stored.event.decision != "break-glass":
                    raise TamperError("the break-glass index names another kind of event")
                found.append(stored.event)
        return found


def _matches(event: AccessEvent, query: EventQuery) -> bool:
    return (
        (query.since_ms is None or event.time_ms >= query.since_ms)
        and (query.until_ms is None or event.time_ms < query.until_ms)
        and (query.actor is None or event.actor == query.actor)
        and (query.decision is None or event.decision == query.decision)
        and (query.purpose is None or event.purpose == query.purpose)
        and (not query.others_only or event.actor != query.patient)
    )


# --- reading rows back: every row re-checked ---------------------------------------------------
def _event(body: bytes, leaf: bytes) -> AccessEvent:
    """An event from its stored bytes: they parse, are canonical, and hash to the batch's
    stored leaf hash."""
    try:
        event = parse_event(json.loads(body))
    except (ValueError, InvalidInputError) as e:
        raise TamperError(f"a stored access event does not parse: {e}") from e
    if event.leaf_bytes() != body:
        raise TamperError("a stored access event is not in its canonical form")
    if leaf_hash(body) != leaf:
        raise TamperError("a stored access event does not match its batch's leaf hash")
    return event


def _batch(row: Sequence[Any]) -> StoredBatch:
    seq, batch_id, root, count, first, last, leaves, tx_id, log_index, state, reason = row
    if (
        not isinstance(seq, int)
        or not isinstance(batch_id, str)
        or not isinstance(root, bytes)
        or len(root) != HASH_SIZE
        or not isinstance(count, int)
        or count < 1
        or not isinstance(leaves, bytes)
        or len(leaves) != count * HASH_SIZE
        or not isinstance(first, int)
        or not isinstance(last, int)
        or state not in _STATES
        or (tx_id is not None and (not isinstance(tx_id, bytes) or len(tx_id) != HASH_SIZE))
        or (state == ANCHORED and (tx_id is None or not isinstance(log_index, int)))
    ):
        raise TamperError("a stored access-event batch row is malformed")
    hashes = tuple(leaves[i : i + HASH_SIZE] for i in range(0, len(leaves), HASH_SIZE))
    return StoredBatch(
        seq, batch_id, root, count, first, last, hashes, tx_id, log_index, state,
        None if reason is None else str(reason),
    )  # fmt: skip
