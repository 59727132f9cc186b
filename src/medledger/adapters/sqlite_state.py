"""Contract state and its sparse Merkle tree on SQLite, written in the caller's transaction.

Tables (on a connection the ledger owns; ``create_schema`` makes them):

- ``state(key TEXT PRIMARY KEY, value BLOB)``: the current contract state.
- ``smt_nodes(id BLOB PRIMARY KEY, kind INTEGER, a BLOB, b BLOB) WITHOUT ROWID``: the current
  tree (``medledger.core.state.smt``) by position: ``id`` is the ``NodeKey`` (path prefix +
  depth byte, so the nodes of one subtree are neighbours in the table); a leaf is ``kind`` 0
  with ``a, b = key_hash, value_hash``, an internal node ``kind`` 1 with ``a, b = left, right``.
- ``state_meta(one, root)``: one row, the state root the tables hold.

The workflow per block: ``stage(writes)`` reads the nodes on the changed paths (one query per
tree level, as ``smt.update`` asks) and returns the new root without writing; the ledger puts
that root in the block header; ``write_staged()`` then executes the row changes on the
connection, and the ledger commits state, nodes and block in ONE transaction. This class never
begins, commits or rolls back: a rollback by the caller leaves the old state and root.

Caching: internal nodes of the top ``cached_levels`` levels (at most 2**cached_levels - 1 of
them) are kept in memory, so memory does not grow with the state. The cache is tagged with the
root it belongs to and dropped whenever ``state_meta`` shows another root (after a rollback,
say). A root determines the whole tree (the tree is canonical), so the tag is enough. With
the default 16 levels that is at most 65,535 nodes, about 16 MiB. Below them a block of 1,000
changes on a million keys reads ~6,000 rows: the connection's page cache or ``mmap_size`` (the
caller's settings) decide how many of those reads reach the disk.

Not thread-safe: one ``SqliteState`` per connection, used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from medledger.core.state.smt import (
    EMPTY_STATE_ROOT,
    Internal,
    Leaf,
    Node,
    NodeKey,
    StateProof,
    UpdateResult,
    hash_key,
    hash_value,
    prove,
    update,
)
from medledger.errors import ConflictError, InvalidInputError, StorageError

#: Node ids per ``SELECT ... WHERE id IN (...)`` (SQLite allows 32,766 parameters since 3.32).
_READ_CHUNK = 500
_LEAF, _INTERNAL = 0, 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS smt_nodes (id BLOB PRIMARY KEY, kind INTEGER NOT NULL,"
    " a BLOB NOT NULL, b BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS state_meta (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " root BLOB NOT NULL)",
    "INSERT OR IGNORE INTO state_meta (one, root) VALUES (1, zeroblob(32))",
)


@contextlib.contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    """The adapter boundary: a failed statement is a ``StorageError``."""
    try:
        yield
    except sqlite3.Error as e:
        raise StorageError(f"cannot {doing} the state database: {e}") from e


def _node(kind: object, a: object, b: object) -> Node:
    """A stored row as a node; a corrupt row is a ``StorageError``."""
    try:
        if kind == _LEAF:
            return Leaf(a, b)  # type: ignore[arg-type]  # checked by the constructor
        if kind == _INTERNAL:
            return Internal(a, b)  # type: ignore[arg-type]
    except InvalidInputError as e:
        raise StorageError("the state database is corrupt: a malformed tree node") from e
    raise StorageError("the state database is corrupt: a tree node of unknown kind")


def _row(key: NodeKey, node: Node) -> tuple[bytes, int, bytes, bytes]:
    if isinstance(node, Leaf):
        return key, _LEAF, node.key_hash, node.value_hash
    return key, _INTERNAL, node.left_hash, node.right_hash


class _NodeReader:
    """``NodeStore`` over ``smt_nodes``, with the internal nodes of the top levels cached."""

    def __init__(self, conn: sqlite3.Connection, cached_levels: int) -> None:
        self._conn = conn
        # A key of a node at depth < cached_levels (<= 32) is short and ends with its depth.
        self._max_len = 1 + (cached_levels + 7) // 8
        self._levels = cached_levels
        self.cache: dict[NodeKey, Internal] = {}

    def cacheable(self, key: NodeKey) -> bool:
        return len(key) <= self._max_len and key[-1] < self._levels

    def get(self, key: NodeKey) -> Node | None:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with _storage_errors("read"):
            row = self._conn.execute(
                "SELECT kind, a, b FROM smt_nodes WHERE id = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        node = _node(*row)
        if isinstance(node, Internal) and self.cacheable(key):
            self.cache[key] = node
        return node

    def get_many(self, keys: Sequence[NodeKey]) -> dict[NodeKey, Node]:
        found: dict[NodeKey, Node] = {}
        missing: list[NodeKey] = []
        cache, max_len, levels = self.cache, self._max_len, self._levels
        for key in keys:
            cached = cache.get(key)
            if cached is None:
                missing.append(key)
            else:
                found[key] = cached
        for at in range(0, len(missing), _READ_CHUNK):
            chunk = missing[at : at + _READ_CHUNK]
            marks = ",".join("?" * len(chunk))
            with _storage_errors("read"):
                rows = self._conn.execute(
                    f"SELECT id, kind, a, b FROM smt_nodes WHERE id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
            try:
                for key, kind, a, b in rows:
                    if kind == _INTERNAL:
                        found[key] = node = Internal(a, b)
                        if len(key) <= max_len and key[-1] < levels:
                            cache[key] = node
                    else:
                        found[key] = _node(kind, a, b)
            except InvalidInputError as e:
                raise StorageError("the state database is corrupt: a malformed tree node") from e
        return found


@dataclass(frozen=True, slots=True)
class _Staged:
    base_root: bytes
    writes: dict[str, bytes | None]
    result: UpdateResult


class SqliteState:
    """The contract state and its state root on one SQLite connection the caller owns."""

    def __init__(self, conn: sqlite3.Connection, *, cached_levels: int = 16) -> None:
        """Use the tables ``create_schema`` made on ``conn``. ``cached_levels`` (0-32) top
        levels of internal nodes are cached: at most ``2**cached_levels - 1`` nodes, about
        250 bytes each."""
        if not 0 <= cached_levels <= 32:
            raise InvalidInputError("cached_levels must be in 0..32", parameter="cached_levels")
        self._conn = conn
        self._nodes = _NodeReader(conn, cached_levels)
        self._cache_root: bytes | None = None
        self._staged: _Staged | None = None

    @staticmethod
    def create_schema(conn: sqlite3.Connection) -> None:
        """Create the tables if they are missing. Runs on ``conn`` as is: commit it after."""
        with _storage_errors("create"):
            for statement in _SCHEMA:
                conn.execute(statement)

    # --- reads ----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The current value of ``key``, or None."""
        with _storage_errors("read"):
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = row[0]
        if not isinstance(value, bytes):
            raise StorageError("the state database is corrupt: a value is not a blob")
        return value

    def root(self) -> bytes:
        """The state root of what the connection sees (including its uncommitted writes)."""
        with _storage_errors("read"):
            row = self._conn.execute("SELECT root FROM state_meta WHERE one = 1").fetchone()
        if row is None:
            raise StorageError("the state database has no state root: call create_schema")
        root = row[0]
        if not (isinstance(root, bytes) and len(root) == len(EMPTY_STATE_ROOT)):
            raise StorageError("the state database is corrupt: the root is not a 32-byte blob")
        return root

    def prove(self, key: str) -> tuple[bytes | None, StateProof]:
        """The value of ``key`` (None if absent) and its proof against ``root()``."""
        root = self._sync_cache()
        return self.get(key), prove(self._nodes, root, hash_key(key))

    # --- a block's writes -------------------------------------------------------------------
    def stage(self, writes: Mapping[str, bytes | None]) -> bytes:
        """Compute the state root after ``writes`` (key -> value, None deletes) and the row
        changes, without writing anything. Returns the new root; ``write_staged`` writes it.
        Staging again replaces what was staged."""
        self._staged = None
        root = self._sync_cache()
        changes = {hash_key(k): None if v is None else hash_value(v) for k, v in writes.items()}
        result = update(self._nodes, root, changes)
        self._staged = _Staged(root, dict(writes), result)
        return result.root

    def write_staged(self) -> Mapping[str, bytes | None]:
        """Execute the staged row changes on the connection, inside the caller's transaction
        (the caller commits them with its block, or rolls them back). Returns the writes
        (key -> value, None for a delete)."""
        staged, self._staged = self._staged, None
        if staged is None:
            raise ConflictError("nothing is staged")
        conn = self._conn
        if conn.isolation_level is None and not conn.in_transaction:
            raise ConflictError("write_staged must run inside the caller's transaction")
        if self.root() != staged.base_root:
            raise ConflictError("the state changed since it was staged: stage again")
        result = staged.result
        self._cache_root = None  # until every statement has run
        with _storage_errors("write"):
            conn.executemany(
                "DELETE FROM state WHERE key = ?",
                [(k,) for k, v in staged.writes.items() if v is None],
            )
            conn.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, v) for k, v in staged.writes.items() if v is not None],
            )
            conn.executemany(
                "DELETE FROM smt_nodes WHERE id = ?", [(key,) for key in result.deletes]
            )
            conn.executemany(
                "INSERT OR REPLACE INTO smt_nodes (id, kind, a, b) VALUES (?, ?, ?, ?)",
                [_row(key, node) for key, node in sorted(result.puts.items())],
            )
            conn.execute("UPDATE state_meta SET root = ? WHERE one = 1", (result.root,))
        cache, cacheable = self._nodes.cache, self._nodes.cacheable
        for key in result.deletes:
            cache.pop(key, None)
        for key, node in result.puts.items():
            if cacheable(key):
                if isinstance(node, Internal):
                    cache[key] = node
                else:
                    cache.pop(key, None)
        self._cache_root = result.root
        return staged.writes

    def _sync_cache(self) -> bytes:
        """The current root; the node cache is dropped unless it belongs to that root."""
        root = self.root()
        if root != self._cache_root:
            self._nodes.cache.clear()
            self._cache_root = root
        return root


class ScratchState:
    """A throwaway state that commits each block itself: the fresh state ``medledger chain
    verify`` replays the chain into (``services.chain_audit.ScratchState``). ``conn`` is a
    connection of its own, in autocommit mode (``isolation_level=None``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        SqliteState.create_schema(conn)
        self._conn = conn
        self._state = SqliteState(conn)

    def get(self, key: str) -> bytes | None:
        return self._state.get(key)

    def stage(self, writes: Mapping[str, bytes | None]) -> bytes:
        """The state root after ``writes``; ``commit`` applies them."""
        return self._state.stage(writes)

    def commit(self) -> None:
        """Write what was staged, in a transaction of its own."""
        with _storage_errors("write"):
            self._conn.execute("BEGIN")
        try:
            self._state.write_staged()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            raise
        with _storage_errors("commit"):
            self._conn.commit()
