"""Privacy officers' review notes, off-chain and node-local (``data/review-notes.db``, ADR 0022).

A note is free text about an emergency access (PHI-prone): the ledger holds only its salted
commitment, in the ``access.review`` transaction; the note and its salt live here, one row per
reviewed event, written in one SQLite transaction (synchronous=FULL) or not at all. Erasure
keeps a tombstone (event, reviewer, commitment, when) so a note cannot be attached again, and
leaves no text behind: ``secure_delete=ON`` zeroes freed pages, and the WAL is checkpointed
and truncated after each erasure. Messages never echo a note (``detail=False``).
"""

from __future__ import annotations

import threading
from pathlib import Path

from medledger.adapters.sqlite_connect import connect, storage_errors, write_transaction
from medledger.errors import StorageError
from medledger.ports import StoredNote

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    event_id   TEXT PRIMARY KEY,
    reviewer   TEXT NOT NULL,
    commitment TEXT NOT NULL,
    note       TEXT,              -- NULL once erased
    salt       TEXT,              -- NULL once erased
    stored_ms  INTEGER NOT NULL,
    erased_ms  INTEGER
);
"""


class SqliteReviewNotes:
    """``put`` a note once per event, ``get`` it back, ``erase`` its text."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, readonly=False, what="review note")
        self._lock = threading.Lock()
        with storage_errors("review note store", "setup"):
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def put(
        self, *, event_id: str, reviewer: str, commitment: str, note: str, salt: str, now_ms: int
    ) -> StoredNote:
        """Store the note for ``event_id`` unless one is stored (or was erased); return the
        row that is stored afterwards, so a caller sees an earlier row instead of its own."""
        with (
            storage_errors("review note", "write", detail=False),
            write_transaction(self._conn, self._lock) as conn,
        ):
            conn.execute(
                "INSERT OR IGNORE INTO notes (event_id, reviewer, commitment, note, salt,"
                " stored_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, reviewer, commitment, note, salt, now_ms),
            )
        found = self.get(event_id)
        if found is None:  # pragma: no cover - inserted or already there; rows are never deleted
            raise StorageError("review note write failed: the row is missing")
        return found

    def get(self, event_id: str) -> StoredNote | None:
        with self._lock, storage_errors("review note", "read", detail=False):
            row = self._conn.execute(
                "SELECT event_id, reviewer, commitment, note, salt, stored_ms, erased_ms"
                " FROM notes WHERE event_id = ?",
                (event_id,),
            ).fetchone()
        if row is None:
            return None
        return StoredNote(
            str(row[0]), str(row[1]), str(row[2]),
            None if row[3] is None else str(row[3]), None if row[4] is None else str(row[4]),
            int(row[5]), None if row[6] is None else int(row[6]),
        )  # fmt: skip

    def erase(self, event_id: str, now_ms: int) -> bool:
        """Shred the note's text and salt, keep the tombstone; False if there was none."""
        with (
            storage_errors("review note", "erase", detail=False),
            write_transaction(self._conn, self._lock) as conn,
        ):
            erased = conn.execute(
                "UPDATE notes SET note = NULL, salt = NULL, erased_ms = ?"
                " WHERE event_id = ? AND erased_ms IS NULL",
                (now_ms, event_id),
            ).rowcount
        with self._lock, storage_errors("review note", "checkpoint"):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(erased)
