"""The access-event lookup index: event id and patient -> positions (``data/audit-index.db``).

Derived data: everything here can be rebuilt from the batches in ``audit.db``, so it lives in
a file of its own, written without waiting for fsync, and never on the path that makes an
event durable.

Why not one index row per event, inserted with its batch: event ids are random and patients
many, so each of a batch's ~10^4 inserts lands on a different page of a B-tree that grows
with the log; at 10^6 events every insert dirties a 4 KiB page, and ingest falls to a third
(ADR 0014). Instead, as in a log-structured merge tree:

- the positions of recent events are kept in memory (``_Epoch``: two dicts), filled as
  batches are stored;
- every ``epoch_events`` events (or ``epoch_s`` seconds) the epoch is written out on a thread
  of its own, in one transaction on this file's own connection -- ids in sorted order (each
  B-tree page touched once per epoch, not once per event), and one row per patient per epoch
  holding all their positions -- with ``indexed_upto``, the last batch it covers;
- on open, the batches after ``indexed_upto`` are read back into memory (a crash loses no
  index entry); ``close`` writes the epoch out first.

Readers see disk, the epoch being written and the open epoch, deduplicated by batch number.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from medledger.adapters.sqlite_connect import connect, storage_errors
from medledger.errors import StorageError, TamperError

log = logging.getLogger("medledger.audit")

#: One position: batch sequence number (uint64), index in the batch (uint32).
_POSITION: Final = struct.Struct(">QI")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_ids (
  event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS patient_runs (
  patient TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  first_time_ms INTEGER NOT NULL, last_time_ms INTEGER NOT NULL, positions BLOB NOT NULL,
  PRIMARY KEY (patient, first_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
Position = tuple[int, int]


def _between(position: Position, bounds: tuple[Position, Position | None]) -> bool:
    after, before = bounds
    return position > after and (before is None or position < before)


def _errors(doing: str) -> contextlib.AbstractContextManager[None]:
    return storage_errors("audit index", doing)


@dataclass
class _Epoch:
    """Positions of the events of consecutive batches, not yet on disk."""

    first_seq: int
    ids: dict[str, Position] = field(default_factory=dict)
    #: (seq, the batch's event ids in order): what is written out
    batches: list[tuple[int, list[str]]] = field(default_factory=list)
    #: patient -> [(seq, idx, time_ms)], in recording order
    patients: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    last_seq: int = -1
    count: int = 0
    began: float = field(default_factory=time.monotonic)

    def add(self, seq: int, entries: Sequence[tuple[str, str, int]]) -> int:
        """Add a batch's (event id, patient, time) entries; return how many ids were new."""
        ids, patients, new = self.ids, self.patients, 0
        for idx, (event_id, patient, time_ms) in enumerate(entries):
            if event_id not in ids:
                ids[event_id] = (seq, idx)
                new += 1
            patients.setdefault(patient, []).append((seq, idx, time_ms))
        self.batches.append((seq, [e[0] for e in entries]))
        self.last_seq = seq
        self.count += len(entries)
        return new


@dataclass(frozen=True, slots=True)
class PatientRun:
    """A patient's positions in some span of batches, and the time range they cover."""

    positions: tuple[Position, ...]
    first_time_ms: int
    last_time_ms: int


class AuditIndex:
    """The index file, its in-memory epochs, and the thread that writes epochs out."""

    def __init__(self, path: Path, *, epoch_events: int = 200_000, epoch_s: float = 60.0) -> None:
        self._path = path
        self._epoch_events = epoch_events
        self._epoch_s = epoch_s
        self._conn = connect(path, readonly=False, what="audit index")
        with _errors("setup"):
            # Derived data: a crash may lose the last commits, never their consistency (WAL),
            # and ``indexed_upto`` rolls back with them.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA cache_size=-65536")
            self._conn.executescript(_SCHEMA)
        self._reader = connect(path, readonly=True, what="audit index")
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()  # guards the epochs
        self._open: _Epoch = _Epoch(self.indexed_upto() + 1)
        self._writing: _Epoch | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-index", daemon=True)
        self._thread.start()

    def indexed_upto(self) -> int:
        """The last batch whose events are all on disk here (0: none)."""
        with self._read_lock, _errors("read"):
            row = self._reader.execute(
                "SELECT value FROM meta WHERE key = 'indexed_upto'"
            ).fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Write the open epoch out, then stop."""
        with self._cond:
            if self._closed:
                return
            while self._writing is not None:
                self._cond.wait()
            if self._open.count:
                self._writing, self._open = self._open, _Epoch(self._open.last_seq + 1)
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=120)
        with self._read_lock:
            self._reader.close()
        self._conn.close()

    # --- adding -------------------------------------------------------------------------------
    def add(self, seq: int, entries: Sequence[tuple[str, str, int]]) -> int:
        """A stored batch's (event id, patient, time_ms), in batch order; return how many ids
        were new to the open epoch. Starts writing the epoch out when it is full or old."""
        with self._cond:
            new = self._open.add(seq, entries)
            full = self._open.count >= self._epoch_events
            old = time.monotonic() - self._open.began >= self._epoch_s
            if full or old:
                while self._writing is not None:  # one epoch written at a time
                    self._cond.wait()
                self._writing, self._open = self._open, _Epoch(seq + 1)
                self._cond.notify_all()
        return new

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._writing is None and not self._closed:
                    self._cond.wait()
                epoch = self._writing
            if epoch is None:
                return
            try:
                self._write(epoch)
            except StorageError as e:  # kept in memory; rebuilt from the batches on open
                log.error("audit index epoch not written: %s", e)
                if self._closed:
                    return
                time.sleep(1.0)
                continue
            with self._cond:
                self._writing = None
                self._cond.notify_all()
                if self._closed:
                    return

    def _write(self, epoch: _Epoch) -> None:
        """One transaction: the epoch's ids, one row per patient, and the new
        ``indexed_upto``. Each batch's ids go in as one statement over a JSON array (SQLite
        inserts them without coming back to Python); the pages they touch are written once,
        at the commit."""
        runs = [
            (
                patient,
                entries[0][0],
                entries[-1][0],
                min(e[2] for e in entries),
                max(e[2] for e in entries),
                b"".join(_POSITION.pack(s, i) for s, i, _ in entries),
            )
            for patient, entries in epoch.patients.items()
        ]
        with _errors("write"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for seq, ids in epoch.batches:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO event_ids SELECT value, ?, key FROM json_each(?)",
                        (seq, json.dumps(ids)),
                    )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO patient_runs VALUES (?,?,?,?,?,?)", runs
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('indexed_upto', ?)", (epoch.last_seq,)
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- reading ------------------------------------------------------------------------------
    def _epochs(self) -> list[_Epoch]:
        with self._cond:
            return [e for e in (self._writing, self._open) if e is not None]

    def position(self, event_id: str) -> Position | None:
        for epoch in reversed(self._epochs()):
            with self._cond:
                found = epoch.ids.get(event_id)
            if found is not None:
                return found
        with self._read_lock, _errors("read"):
            row = self._reader.execute(
                "SELECT seq, idx FROM event_ids WHERE event_id = ?", (event_id,)
            ).fetchone()
        if row is None:
            return None
        if not isinstance(row[0], int) or not isinstance(row[1], int):
            raise TamperError("an audit index row is malformed")
        return int(row[0]), int(row[1])

    def patient_runs(
        self,
        patient: str,
        *,
        after: Position,
        since_ms: int | None,
        until_ms: int | None,
        before: Position | None = None,
        newest_first: bool = False,
    ) -> Iterator[PatientRun]:
        """The patient's runs of positions strictly between ``after`` and ``before`` (no
        bound when None), in recording order -- from disk, then from memory -- or, with
        ``newest_first``, the reverse of it, each run's positions reversed too. Positions on
        disk that the epochs hold too are skipped."""
        epochs = self._epochs()
        in_memory_from = min((e.first_seq for e in epochs), default=None)
        with self._cond:
            memory = [list(e.patients.get(patient, ())) for e in epochs]
        bounds = (after, before)
        disk = self._disk_runs(
            patient, bounds, (since_ms, until_ms), in_memory_from, newest_first=newest_first
        )
        if not newest_first:
            yield from disk
        for entries in reversed(memory) if newest_first else memory:
            kept = [(s, i, t) for s, i, t in entries if _between((s, i), bounds)]
            if newest_first:
                kept.reverse()
            if kept:
                times = [t for _, _, t in kept]
                yield PatientRun(tuple((s, i) for s, i, _ in kept), min(times), max(times))
        if newest_first:
            yield from disk

    def _disk_runs(
        self,
        patient: str,
        bounds: tuple[Position, Position | None],
        times: tuple[int | None, int | None],
        before_seq: int | None,
        *,
        newest_first: bool,
    ) -> Iterator[PatientRun]:
        (after, before), (since_ms, until_ms) = bounds, times
        where, params = ["patient = ?", "last_seq >= ?"], [patient, after[0]]
        for condition, value in (("last_time_ms >= ?", since_ms), ("first_time_ms < ?", until_ms),
                                 ("first_seq < ?", before_seq),
                                 ("first_seq <= ?", before and before[0])):  # fmt: skip
            if value is not None:
                where.append(condition)
                params.append(value)
        # 64 rows at a time, going on from the last row's first_seq, in either direction
        if newest_first:
            step, cursor_seq = "first_seq < ? ORDER BY first_seq DESC", 2**63 - 1
        else:
            step, cursor_seq = "first_seq > ? ORDER BY first_seq", -1
        while True:
            rows = self._read_rows(
                f"SELECT first_seq, last_seq, first_time_ms, last_time_ms, positions"  # noqa: S608
                f" FROM patient_runs WHERE {' AND '.join(where)} AND {step} LIMIT 64",
                [*params, cursor_seq],
            )
            for first_seq, last_seq, first_time, last_time, blob in rows:
                if not isinstance(blob, bytes) or not blob or len(blob) % _POSITION.size:
                    raise TamperError("an audit index row is malformed")
                all_positions = list(_POSITION.iter_unpack(blob))
                if any(not first_seq <= s <= last_seq for s, _ in all_positions):
                    raise TamperError("an audit index row names batches outside its range")
                positions = [p for p in all_positions if _between(p, bounds)]
                if newest_first:
                    positions.reverse()
                if positions:
                    yield PatientRun(tuple(positions), int(first_time), int(last_time))
                cursor_seq = int(first_seq)
            if len(rows) < 64:
                return

    def _read_rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read_lock, _errors("read"):
            return self._reader.execute(sql, params).fetchall()

    # --- rebuilding ---------------------------------------------------------------------------
    def catch_up(
        self, batches: Callable[[int], Iterator[tuple[int, list[tuple[str, str, int]]]]]
    ) -> int:
        """Add every batch after ``indexed_upto`` (``batches(after_seq)`` yields them in
        order, read back from ``audit.db``); return how many."""
        count = 0
        for seq, entries in batches(self._open.first_seq - 1):
            self.add(seq, entries)
            count += 1
        return count
