"""The ledger on SQLite: genesis, blocks, transactions with their outcomes, and contract state.

One database file (``data/ledger.db``, WAL, ``synchronous=FULL``). A block, its transactions,
the state writes and the sparse-Merkle-tree nodes they change are committed in ONE transaction
(``commit_block``), so a crash leaves the ledger at the previous block or at the new one.
The transparency log is a separate file; the node re-appends a committed block's log entries
on restart if the crash came between the two commits (see ``services.ledger``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.adapters.sqlite_connect import connect
from medledger.adapters.sqlite_state import SqliteState
from medledger.core.state.smt import StateProof
from medledger.errors import ConflictError, StorageError
from medledger.ports import BlockRecord, TxRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,
                                   header BLOB NOT NULL, signature BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (tx_id BLOB PRIMARY KEY, height INTEGER NOT NULL,
                                idx INTEGER NOT NULL, wire BLOB NOT NULL, ok INTEGER NOT NULL,
                                reason TEXT, message TEXT, log_index INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS txs_by_block ON txs (height, idx);
"""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    height: int
    hash: bytes
    header: bytes  # canonical header JSON, exactly as signed (after the domain prefix)
    signature: bytes


@dataclass(frozen=True, slots=True)
class StoredTx:
    tx_id: bytes
    height: int
    index: int
    wire: bytes
    ok: bool
    reason: str | None
    message: str | None
    log_index: int


class _StateCache:
    """Committed state values by key (None for an absent key), kept in step with commits.

    Every request reads the same few keys (the requester, their organization, a patient's
    consents, a record's head and version), and blocks change few of them: a commit updates
    the keys it wrote that are cached. A value read from SQLite is only cached if no block
    committed since the read began (``generation``), so a value read just before a commit
    never outlives it. Bounded by entries and bytes, least recently used dropped first."""

    def __init__(self, max_entries: int, max_bytes: int, max_value_bytes: int) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, bytes | None] = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._max_entries, self._max_bytes = max_entries, max_bytes
        self._max_value_bytes = max_value_bytes

    def get(self, key: str) -> tuple[bool, bytes | None, int]:
        """(hit, value, generation to pass to ``fill`` on a miss)."""
        with self._lock:
            values = self._values
            if key in values:
                values.move_to_end(key)
                return True, values[key], self._generation
            return False, None, self._generation

    def fill(self, key: str, value: bytes | None, generation: int) -> None:
        size = len(key) + (0 if value is None else len(value))
        if size > self._max_value_bytes:
            return
        with self._lock:
            if generation != self._generation or key in self._values:
                return
            self._values[key] = value
            self._bytes += size
            while len(self._values) > self._max_entries or self._bytes > self._max_bytes:
                old_key, old = self._values.popitem(last=False)
                self._bytes -= len(old_key) + (0 if old is None else len(old))

    def committed(self, writes: Mapping[str, bytes | None]) -> None:
        """A block committed ``writes``: cached keys take their new values."""
        with self._lock:
            self._generation += 1
            for key, value in writes.items():
                if key in self._values:
                    old = self._values.pop(key)
                    self._bytes -= len(key) + (0 if old is None else len(old))
                    size = len(key) + (0 if value is None else len(value))
                    if size <= self._max_value_bytes:
                        self._values[key] = value
                        self._bytes += size


#: The committed-state cache of a node's ledger: ~20,000 records' heads and versions, their
#: patients' consent indexes and the participants, within 32 MiB.
STATE_CACHE_ENTRIES = 65_536
STATE_CACHE_BYTES = 32 << 20
STATE_CACHE_VALUE_BYTES = 64 << 10


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    return connect(path, readonly=readonly, what="ledger")


class SqliteLedger:
    """Blocks, transactions and state. One writer (the block builder); readers per thread."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self._path = path
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        # Only the writing instance sees every commit, so only it may cache (a read-only
        # instance in another process would keep stale values).
        self._cache: _StateCache | None = None
        if readonly:
            if not path.exists():
                raise StorageError(f"{path.name} does not exist")
            self.state = SqliteState(self._reader())
            return
        self._writer = _connect(path, readonly=False)
        try:
            self._writer.executescript(_SCHEMA)
            SqliteState.create_schema(self._writer)
        except sqlite3.Error as e:
            raise StorageError(f"cannot initialise the ledger database: {e}") from e
        self.state = SqliteState(self._writer)
        self._cache = _StateCache(STATE_CACHE_ENTRIES, STATE_CACHE_BYTES, STATE_CACHE_VALUE_BYTES)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads in one read transaction."""
        conn = self._reader()
        conn.execute("BEGIN")
        self._local.snapshot = True  # reads see the snapshot, not the cache
        try:
            yield
        finally:
            self._local.snapshot = False
            conn.execute("COMMIT")

    # --- genesis -------------------------------------------------------------------------
    def genesis(self) -> bytes | None:
        row = self._reader().execute("SELECT value FROM ledger_meta WHERE key='genesis'").fetchone()
        return None if row is None else bytes(row[0])

    # --- writes (the block builder) ------------------------------------------------------
    def commit_block(
        self, block: BlockRecord, txs: Sequence[TxRecord], *, genesis: bytes | None = None
    ) -> None:
        """Block + transactions + staged state in one durable transaction."""
        conn = self._writer
        if conn is None:
            raise StorageError("the ledger is open read-only")
        try:
            conn.execute("BEGIN IMMEDIATE")
            if genesis is not None:
                conn.execute("INSERT INTO ledger_meta VALUES ('genesis', ?)", (genesis,))
            conn.execute(
                "INSERT INTO blocks (height, hash, header, signature) VALUES (?, ?, ?, ?)",
                (block.height, block.hash, block.header, block.signature),
            )
            conn.executemany(
                "INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        t.tx_id,
                        t.height,
                        t.index,
                        t.wire,
                        int(t.ok),
                        t.reason,
                        t.message,
                        t.log_index,
                    )
                    for t in txs
                ),
            )
            writes = self.state.write_staged()
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise ConflictError(f"block {block.height} conflicts with the stored chain") from e
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StorageError(f"block {block.height} was not committed: {e}") from e
        if self._cache is not None:
            self._cache.committed(writes)

    # --- reads ---------------------------------------------------------------------------
    def latest(self) -> StoredBlock | None:
        row = (
            self._reader()
            .execute(
                "SELECT height, hash, header, signature FROM blocks ORDER BY height DESC LIMIT 1"
            )
            .fetchone()
        )
        return None if row is None else _block(row)

    def block(self, height: int) -> StoredBlock | None:
        row = (
            self._reader()
            .execute("SELECT height, hash, header, signature FROM blocks WHERE height=?", (height,))
            .fetchone()
        )
        return None if row is None else _block(row)

    def iter_blocks(self, start: int = 0) -> Iterator[StoredBlock]:
        conn = self._reader()
        at = start
        while True:
            rows = conn.execute(
                "SELECT height, hash, header, signature FROM blocks WHERE height >= ? "
                "ORDER BY height LIMIT 256",
                (at,),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _block(row)
            at = int(rows[-1][0]) + 1

    def tx(self, tx_id: bytes) -> StoredTx | None:
        row = self._reader().execute("SELECT * FROM txs WHERE tx_id=?", (tx_id,)).fetchone()
        return None if row is None else _tx(row)

    def block_txs(self, height: int) -> list[StoredTx]:
        rows = (
            self._reader()
            .execute("SELECT * FROM txs WHERE height=? ORDER BY idx", (height,))
            .fetchall()
        )
        return [_tx(r) for r in rows]

    def state_get(self, key: str) -> bytes | None:
        """Committed state: from the cache, else read on this thread's connection (not the
        builder's)."""
        cache = self._cache
        if cache is None or getattr(self._local, "snapshot", False):
            return self._read_state(key)
        hit, value, generation = cache.get(key)
        if hit:
            return value
        value = self._read_state(key)
        cache.fill(key, value, generation)
        return value

    def _read_state(self, key: str) -> bytes | None:
        row = self._reader().execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def prove_state(self, key: str) -> tuple[StoredBlock, bytes | None, StateProof]:
        """The latest block, ``key``'s committed value (None if absent) and its proof against
        that block's ``state_root``, all read in ONE read transaction (``snapshot``, so not the
        cache): a block, its state and its tree nodes commit together, so the proof's root is
        the header's even while the builder commits."""
        with self.snapshot():
            block = self.latest()
            if block is None:
                raise StorageError("the ledger has no blocks yet")
            state: SqliteState | None = getattr(self._local, "state", None)
            if state is None:  # one per reader connection: its node cache is tagged by root
                state = self._local.state = SqliteState(self._reader())
            value, proof = state.prove(key)
        return block, value, proof

    def state_root(self) -> bytes:
        """The committed state root, read on this thread's connection."""
        return SqliteState(self._reader()).root()

    def iter_state(self, chunk: int = 1024) -> Iterator[tuple[str, bytes]]:
        """Every committed (key, value) in key order, in bounded chunks."""
        return iter_state_rows(self._reader(), chunk)

    def state_scan(
        self, prefix: str, *, after: str = "", limit: int = 100
    ) -> list[tuple[str, bytes]]:
        """Committed keys under ``prefix`` in order, after ``after`` (keyset paging)."""
        rows = (
            self._reader()
            .execute(
                "SELECT key, value FROM state WHERE key > ? AND key >= ? AND key < ? "
                "ORDER BY key LIMIT ?",
                (after, prefix, prefix + "\U0010ffff", limit),
            )
            .fetchall()
        )
        return [(str(k), bytes(v)) for k, v in rows]


def _block(row: Any) -> StoredBlock:
    return StoredBlock(int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]))


def _tx(row: Any) -> StoredTx:
    return StoredTx(
        tx_id=bytes(row[0]),
        height=int(row[1]),
        index=int(row[2]),
        wire=bytes(row[3]),
        ok=bool(row[4]),
        reason=None if row[5] is None else str(row[5]),
        message=None if row[6] is None else str(row[6]),
        log_index=int(row[7]),
    )


def iter_state_rows(conn: sqlite3.Connection, chunk: int = 1024) -> Iterator[tuple[str, bytes]]:
    """(key, value) of a ``state`` table in key order, ``chunk`` rows at a time."""
    after = ""  # state keys are never empty
    while True:
        rows = conn.execute(
            "SELECT key, value FROM state WHERE key > ? ORDER BY key LIMIT ?", (after, chunk)
        ).fetchall()
        if not rows:
            return
        for key, value in rows:
            yield str(key), bytes(value)
        after = str(rows[-1][0])
