"""A node's consortium bookkeeping in SQLite (``data/consortium.db``).

What it keeps: for each etcd log position applied, the batch id, the block height it gave (or
the reason it was rejected); the final blocks with their C2SP certificates; the alarm (a
state root that differs from the quorum's). Written after the block commit: a crash in
between re-applies the position, which gives no block the second time (the transactions are
in the chain already), so applying is idempotent.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from medledger.adapters.sqlite_connect import connect
from medledger.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (
    position INTEGER PRIMARY KEY, batch_id TEXT, height INTEGER, reason TEXT);
CREATE INDEX IF NOT EXISTS applied_batch ON applied(batch_id);
CREATE TABLE IF NOT EXISTS final (height INTEGER PRIMARY KEY, hash BLOB NOT NULL,
    position INTEGER NOT NULL, certificate BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alarm (id INTEGER PRIMARY KEY CHECK (id = 1), height INTEGER,
    message TEXT NOT NULL);
"""


class SqliteConsortium:
    def __init__(self, path: Path) -> None:
        self._conn = connect(path, readonly=False, what="consortium")
        self._lock = threading.Lock()
        try:
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StorageError(f"cannot create the consortium database: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[object, ...] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return None if row is None else tuple(row)

    def applied_position(self) -> int:
        row = self._one("SELECT MAX(position) FROM applied")
        return int(row[0]) if row and row[0] is not None else 0  # type: ignore[call-overload]

    def seen(self, batch_id: str) -> bool:
        return (
            self._one("SELECT 1 FROM applied WHERE batch_id = ? LIMIT 1", (batch_id,)) is not None
        )

    def record(
        self, position: int, batch_id: str | None, height: int | None, reason: str | None
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?)",
                (position, batch_id, height, reason),
            )

    def rejected(self, limit: int = 20) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT position, reason FROM applied WHERE reason IS NOT NULL "
                "ORDER BY position DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(int(p), str(r)) for p, r in rows]

    def position_of(self, height: int) -> int | None:
        row = self._one("SELECT position FROM applied WHERE height = ?", (height,))
        return None if row is None else int(row[0])  # type: ignore[call-overload]

    def save_final(self, height: int, block_hash: bytes, position: int, certificate: bytes) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO final VALUES (?, ?, ?, ?)",
                (height, block_hash, position, certificate),
            )

    def final_height(self) -> int:
        row = self._one("SELECT MAX(height) FROM final")
        return int(row[0]) if row and row[0] is not None else 0  # type: ignore[call-overload]

    def certificate(self, height: int) -> tuple[bytes, int, bytes] | None:
        row = self._one("SELECT hash, position, certificate FROM final WHERE height = ?", (height,))
        if row is None:
            return None
        return bytes(row[0]), int(row[1]), bytes(row[2])  # type: ignore[call-overload]

    def raise_alarm(self, height: int, message: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO alarm VALUES (1, ?, ?)", (height, message))

    def alarm(self) -> tuple[int, str] | None:
        row = self._one("SELECT height, message FROM alarm WHERE id = 1")
        return None if row is None else (int(row[0]), str(row[1]))  # type: ignore[call-overload]
