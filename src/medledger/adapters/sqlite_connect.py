"""How every medledger SQLite file is opened: WAL, full fsync on commit, a busy timeout.

Writers open read-write in autocommit mode (transactions are explicit ``BEGIN IMMEDIATE``);
readers open the file read-only through a ``file:`` URI, so a reader can never write.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from medledger.errors import StorageError

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path, *, readonly: bool, what: str) -> sqlite3.Connection:
    """Open ``path``; ``what`` names the database in errors (never its contents)."""
    try:
        if readonly:
            uri = path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open the {what} database: {e}") from e
    return conn


@contextlib.contextmanager
def write_transaction(
    conn: sqlite3.Connection, lock: threading.Lock
) -> Iterator[sqlite3.Connection]:
    """One writer's ``BEGIN IMMEDIATE`` ... ``COMMIT`` under ``lock``, rolled back on any
    error (the caller maps ``sqlite3.Error`` to its own ``StorageError`` message)."""
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


@contextlib.contextmanager
def storage_errors(what: str, doing: str, *, detail: bool = True) -> Iterator[None]:
    """``sqlite3.Error`` as ``StorageError("<what> <doing> failed: ...")``; without
    ``detail`` only the error's type is named (a store whose messages could echo PHI)."""
    try:
        yield
    except sqlite3.Error as e:
        reason = str(e) if detail else type(e).__name__
        raise StorageError(f"{what} {doing} failed: {reason}") from e
