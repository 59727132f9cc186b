"""Signed requests already seen, kept on disk until they expire (``data/requests.db``).

A signed read, key-release or audit request is valid for at most a few minutes; its nonce is
remembered here for exactly that long, so a replay is refused even across a restart of the
node. One row per request; expired rows are purged as new ones arrive; the table is bounded
(``max_entries``): a node flooded with valid requests refuses more (``OverloadedError``)
rather than forget one early.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from medledger.adapters.sqlite_connect import connect
from medledger.errors import OverloadedError, StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_by_expiry ON seen (expires);
"""
#: Purge expired rows every this many inserts (and whenever the table is full).
_PURGE_EVERY = 1024


class SqliteSeenRequests:
    """``seen_before(key, expires_s, now_s)``: remember ``key`` until ``expires_s``; True if it
    was already remembered and has not expired (a replay)."""

    def __init__(self, path: Path, *, max_entries: int = 1_000_000) -> None:
        self._conn = connect(path, readonly=False, what="request nonce")
        self._lock = threading.Lock()
        self._max = max_entries
        self._inserts = 0
        try:
            # A nonce lost to a power cut within the last commit is the only exposure: the
            # request it belonged to expires within minutes anyway.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._count = int(self._conn.execute("SELECT count(*) FROM seen").fetchone()[0])
        except sqlite3.Error as e:
            raise StorageError(f"request nonce setup failed: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def seen_before(self, key: str, expires_s: int, now_s: int) -> bool:
        with self._lock:
            try:
                return self._check_and_insert(key, expires_s, now_s)
            except sqlite3.Error as e:
                raise StorageError(f"request nonce check failed: {e}") from e

    def _check_and_insert(self, key: str, expires_s: int, now_s: int) -> bool:
        self._inserts += 1
        if self._count >= self._max or self._inserts % _PURGE_EVERY == 0:
            self._count -= self._conn.execute(
                "DELETE FROM seen WHERE expires <= ?", (now_s,)
            ).rowcount
            if self._count >= self._max:
                raise OverloadedError("too many requests in flight: try again shortly")
        row = self._conn.execute("SELECT expires FROM seen WHERE key = ?", (key,)).fetchone()
        if row is not None and int(row[0]) > now_s:
            return True
        self._conn.execute(
            "INSERT OR REPLACE INTO seen (key, expires) VALUES (?, ?)", (key, expires_s)
        )
        self._count += row is None
        return False
