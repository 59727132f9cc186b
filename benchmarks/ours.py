"""medledger's own store: ``SqliteLog`` on disk, behind the ``TransparencyLog`` service.

Appends go to ``SqliteLog.append`` (one WAL transaction, ``synchronous=FULL``, per batch); proofs
are served by ``TransparencyLog`` exactly as the HTTP API serves them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from medledger.adapters.sqlite_log import SqliteLog
from medledger.config import LogConfig
from medledger.core.note import Signer
from medledger.services.log import TransparencyLog

_ORIGIN = "bench.medledger.example/log"


class OursAppender:
    """The system under test: a ``SqliteLog`` file and the service that serves its proofs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = SqliteLog(path)
        signer = Signer(_ORIGIN, bytes(32))
        self.service = TransparencyLog(self.log, signer, LogConfig(origin=_ORIGIN))

    def append(self, batch: Sequence[bytes]) -> None:
        self.log.append(batch)

    def root(self) -> bytes:
        return self.log.head()[1]

    def disk_bytes(self) -> int:
        """Database file + WAL after a TRUNCATE checkpoint run on a separate connection."""
        conn = sqlite3.connect(self.path)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if busy:
            raise RuntimeError("the WAL checkpoint was blocked by a reader")
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        self.log.close()
