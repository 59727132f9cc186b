"""The node's key vault: per record version, the salt, the data key's wraps and the facts an
access decision reads (security labels, codes, data time: ``medledger.core.access.facts``).

Off-chain and node-local (``data/keys.db``). Data keys are never stored in the clear: the
node keeps a wrap to its own encryption key (HPKE), plus a wrap per other recipient.
Erasure must leave nothing behind: the database runs with ``secure_delete=ON`` (freed pages
are zeroed) and, after shredding, checkpoints and truncates its WAL so no old page image of
a salt or wrap survives in it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from medledger.adapters.sqlite_connect import connect, storage_errors, write_transaction
from medledger.ports import KeyedVersion

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
  patient TEXT NOT NULL, record_id TEXT NOT NULL, version INTEGER NOT NULL,
  resource_type TEXT NOT NULL, cid TEXT NOT NULL, salt BLOB NOT NULL, node_wrap BLOB NOT NULL,
  anchored INTEGER NOT NULL DEFAULT 0, facts BLOB NOT NULL,
  PRIMARY KEY (patient, record_id, version));
CREATE TABLE IF NOT EXISTS wraps (
  patient TEXT NOT NULL, record_id TEXT NOT NULL, version INTEGER NOT NULL,
  recipient TEXT NOT NULL, wrap BLOB NOT NULL,
  PRIMARY KEY (patient, record_id, version, recipient));
"""


def _errors(doing: str) -> contextlib.AbstractContextManager[None]:
    return storage_errors("key vault", doing)


class SqliteKeyVault:
    """One writer connection (serialised by a lock); small, low-rate operations."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, readonly=False, what="key vault")
        self._lock = threading.Lock()
        with _errors("setup"):
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Homes made before the vault kept facts: their versions carry none (no label, code
        or time: consent limits on them do not match, ADR 0013). The interim access-event table
        gave way to the audit store (``data/audit.db``)."""
        columns = {str(r[1]) for r in self._conn.execute("PRAGMA table_info(versions)")}
        if "facts" not in columns:
            empty = b'{"codes":[],"labels":[],"time_ms":null}'.hex()
            self._conn.execute(
                f"ALTER TABLE versions ADD COLUMN facts BLOB NOT NULL DEFAULT x'{empty}'"
            )
        self._conn.execute("DROP TABLE IF EXISTS access_events")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[sqlite3.Connection]:
        with _errors(doing), write_transaction(self._conn, self._lock) as conn:
            yield conn

    def save_pending(self, version: KeyedVersion, wraps: Sequence[tuple[str, bytes]]) -> None:
        """Keep a version's key material before its anchor is submitted (not yet readable)."""
        with self._tx("save") as conn:
            conn.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    version.patient,
                    version.record_id,
                    version.version,
                    version.resource_type,
                    version.cid,
                    version.salt,
                    version.node_wrap,
                    version.facts,
                ),
            )
            conn.executemany(
                "INSERT INTO wraps VALUES (?, ?, ?, ?, ?)",
                [(version.patient, version.record_id, version.version, r, w) for r, w in wraps],
            )

    def mark_anchored(self, patient: str, record_id: str, version: int) -> None:
        with self._tx("anchor") as conn:
            conn.execute(
                "UPDATE versions SET anchored = 1 WHERE patient=? AND record_id=? AND version=?",
                (patient, record_id, version),
            )

    def drop_version(self, patient: str, record_id: str, version: int) -> None:
        """Forget a version whose anchor did not commit."""
        with self._tx("drop") as conn:
            for table in ("versions", "wraps"):
                conn.execute(
                    f"DELETE FROM {table} WHERE patient=? AND record_id=? AND version=?",  # noqa: S608
                    (patient, record_id, version),
                )

    def version(self, patient: str, record_id: str, version: int) -> KeyedVersion | None:
        with self._lock, _errors("read"):
            row = self._conn.execute(
                "SELECT * FROM versions WHERE patient=? AND record_id=? AND version=?",
                (patient, record_id, version),
            ).fetchone()
        return None if row is None else _version(row)

    def pending(self) -> list[KeyedVersion]:
        with self._lock, _errors("read"):
            rows = self._conn.execute("SELECT * FROM versions WHERE anchored = 0").fetchall()
        return [_version(r) for r in rows]

    def recipients(self, patient: str, record_id: str, version: int) -> list[tuple[str, bytes]]:
        with self._lock, _errors("read"):
            rows = self._conn.execute(
                "SELECT recipient, wrap FROM wraps WHERE patient=? AND record_id=? AND version=?",
                (patient, record_id, version),
            ).fetchall()
        return [(str(r), bytes(w)) for r, w in rows]

    def shred(self, patient: str, record_id: str) -> list[str]:
        """Destroy every version's salt and wraps; return the ciphertexts' CIDs to delete.

        ``secure_delete`` zeroes the freed pages; the WAL is then checkpointed and truncated
        so no page image holding the old rows stays in it.
        """
        with self._tx("shred") as conn:
            cids = [
                str(r[0])
                for r in conn.execute(
                    "SELECT cid FROM versions WHERE patient=? AND record_id=?", (patient, record_id)
                ).fetchall()
            ]
            conn.execute(
                "DELETE FROM versions WHERE patient=? AND record_id=?", (patient, record_id)
            )
            conn.execute("DELETE FROM wraps WHERE patient=? AND record_id=?", (patient, record_id))
        with self._lock, _errors("checkpoint"):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cids


def _version(row: Any) -> KeyedVersion:
    return KeyedVersion(
        patient=str(row[0]),
        record_id=str(row[1]),
        version=int(row[2]),
        resource_type=str(row[3]),
        cid=str(row[4]),
        salt=bytes(row[5]),
        node_wrap=bytes(row[6]),
        anchored=bool(row[7]),
        facts=bytes(row[8]),
    )
