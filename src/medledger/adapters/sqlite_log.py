"""The transparency log on SQLite: entries, tlog-tiles hash tiles and signed checkpoints.

Layout (one database file, WAL, ``synchronous=FULL``):

- ``entries(idx, data)``: the exact entry bytes; RFC 9162 leaf hash = SHA-256(0x00 || data).
- ``tiles(id, width, hashes)``: one row per C2SP tlog-tiles hash tile (height 8, width <= 256).
  ``hashes`` holds the tile's bottom row (tree level 8*L) followed by the seven levels of
  complete nodes above it inside the tile, so any perfect subtree hash is one slice of one row:
  a proof reads O(log n / 8) rows and hashes nothing. ~64 bytes of hashes per entry.
- ``meta``: the tree size and its compact range (the right edge, to resume appending).
- ``checkpoints(size, root, note)``: every signed checkpoint; the last one guards the signer.

Durability: one ``append`` is one SQLite transaction; it returns only after COMMIT, which in
WAL mode with ``synchronous=FULL`` has fsynced the WAL. A kill -9 at any point leaves either the
old or the new state. Full tiles never change and are cached (bounded LRU); memory stays flat.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from medledger.adapters.sqlite_connect import connect
from medledger.config import Limits
from medledger.core.merkle import HASH_SIZE, CompactRange, NodeId, leaf_hash
from medledger.core.merkle.compact import LevelRun
from medledger.errors import InvalidInputError, NotFoundError, StorageError, TooLargeError
from medledger.ports import SignedCheckpoint

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
SCHEMA_VERSION = 1
#: Full tiles (~16 KiB each) kept in memory: 64 MiB at most, whatever the log's size. 4,096
#: bottom tiles cover a million entries, so random proofs at that size mostly hit the cache.
_FULL_TILE_CACHE = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (id INTEGER PRIMARY KEY, width INTEGER NOT NULL,
                                  hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL,
                                        note BLOB NOT NULL);
"""


def _tile_key(level: int, index: int) -> int:
    return (level << 56) | index


def _split_rows(width: int, blob: bytes) -> tuple[bytes, ...]:
    """Split a tile blob into its in-tile rows, bottom first."""
    rows, at = [], 0
    for r in range(TILE_HEIGHT):
        n = (width >> r) * HASH_SIZE
        rows.append(blob[at : at + n])
        at += n
    if at != len(blob):
        raise StorageError("a stored tile has the wrong length for its width")
    return tuple(rows)


def _level_offsets(width: int) -> list[int]:
    """Byte offset of each in-tile level's row inside a tile blob whose bottom row is ``width``."""
    offsets, at = [], 0
    for r in range(TILE_HEIGHT):
        offsets.append(at)
        at += (width >> r) * HASH_SIZE
    return offsets


class _PartialTile:
    """A right-edge tile being filled: one growing row per in-tile level."""

    __slots__ = ("index", "rows")

    def __init__(self, index: int, blob: bytes = b"", width: int = 0) -> None:
        self.index = index
        offsets = _level_offsets(width)
        self.rows = [
            bytearray(blob[offsets[r] : offsets[r] + (width >> r) * HASH_SIZE])
            for r in range(TILE_HEIGHT)
        ]

    @property
    def width(self) -> int:
        return len(self.rows[0]) // HASH_SIZE

    def blob(self) -> bytes:
        return b"".join(self.rows)


def _tile_slices(start: int, hashes: list[bytes], per_tile: int) -> Iterator[tuple[int, bytes]]:
    """Cut a run of consecutive nodes at tile boundaries: (tile index, the slice's bytes)."""
    at = 0
    while at < len(hashes):
        tile_index, offset = divmod(start + at, per_tile)
        end = at + per_tile - offset
        yield tile_index, b"".join(hashes[at:end])
        at = end


def _tile_to_fill(partials: dict[int, _PartialTile], tile_level: int, index: int) -> _PartialTile:
    """The right-edge tile of ``tile_level`` if it is ``index``, else a new one that replaces it."""
    tile = partials.get(tile_level)
    if tile is None or tile.index != index:
        tile = partials[tile_level] = _PartialTile(index)
    return tile


def _fill_tiles(
    partials: dict[int, _PartialTile], runs: list[LevelRun]
) -> dict[tuple[int, int], _PartialTile]:
    """Add each level's run of new node hashes to the tile rows that hold them.

    Tree level ``8*L + r`` is in-tile row ``r`` of the tiles at tile level ``L``, ``256 >> r``
    nodes a tile. Runs come lowest level first, so a tile is first reached through its bottom
    row, and the tiles of one tile level are reached in index order: ``partials`` ends up with
    the right-edge tile of every tile level. Returns every tile written, keyed (level, index).
    """
    touched: dict[tuple[int, int], _PartialTile] = {}
    for level, start, hashes in runs:
        tile_level, r = divmod(level, TILE_HEIGHT)
        for index, row_slice in _tile_slices(start, hashes, TILE_WIDTH >> r):
            tile = touched.get((tile_level, index))
            if tile is None:
                tile = touched[(tile_level, index)] = _tile_to_fill(partials, tile_level, index)
            tile.rows[r] += row_slice
    return touched


def _write_order(
    first: int, touched: dict[tuple[int, int], _PartialTile]
) -> list[tuple[tuple[int, int], _PartialTile]]:
    """The tiles in the order a leaf-by-leaf append first reached them, so that the SQLite
    file is byte for byte the same as when tiles were written from a per-node visitor.

    Tile (L, i) is first reached by the first node of its bottom row (tree level 8*L) that a
    batch starting at leaf ``first`` completes; that node is complete once its last leaf is
    appended. Lower levels are reached first when one leaf completes several nodes.
    """

    def first_reached(key: tuple[int, int]) -> tuple[int, int]:
        tile_level, index = key
        shift = TILE_HEIGHT * tile_level
        node = max(first >> shift, index << TILE_HEIGHT)
        return ((node + 1) << shift) - 1, tile_level

    return sorted(touched.items(), key=lambda item: first_reached(item[0]))


@contextlib.contextmanager
def _read_errors() -> Iterator[None]:
    """The adapter boundary for reads: a failed read (a corrupt page, a locked or vanished
    file) is a ``StorageError``, never a bare ``sqlite3.Error`` the edges do not expect."""
    try:
        yield
    except sqlite3.Error as e:
        raise StorageError(f"cannot read the log database: {e}") from e


def _blob(value: object) -> bytes:
    """A stored BLOB; a corrupt record header can turn it into NULL, a number or text."""
    if not isinstance(value, bytes):
        raise StorageError("the log database is corrupt: a stored blob has the wrong type")
    return value


def _int(value: object) -> int:
    """A stored INTEGER (not a rowid), checked for the same reason as ``_blob``."""
    if not isinstance(value, int):
        raise StorageError("the log database is corrupt: a stored number has the wrong type")
    return value


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    return connect(path, readonly=readonly, what="log")


class SqliteLog:
    """LogWriter, LogReader and CheckpointStore on one SQLite file. One writer per file."""

    def __init__(self, path: Path, limits: Limits | None = None, *, readonly: bool = False) -> None:
        """Open (creating if needed) the log at ``path``; ``readonly`` opens no writer."""
        self._path = path
        self._limits = limits or Limits()
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._cache: OrderedDict[int, tuple[bytes, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._published: dict[int, tuple[int, tuple[bytes, ...]]] = {}
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        try:
            if readonly:
                if not path.exists():
                    raise StorageError(f"{path.name} does not exist")
                self._check_schema(self._reader())
                self._range = self._load_range(self._reader())
                self._head = (self._range.size, self._range.root())
                return
            self._writer = _connect(path, readonly=False)
            self._writer.executescript(_SCHEMA)
            self._init_meta(self._writer)
            self._range = self._load_range(self._writer)
            self._partials = self._load_partials(self._writer)
            self._publish()
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the log database: {e}") from e

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._cache_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Run this thread's reads in one read transaction: a consistent view of the log."""
        conn = self._reader()
        with _read_errors():
            conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            # End the transaction without masking what went wrong inside it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        with _read_errors():
            conn.execute("COMMIT")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise StorageError(f"log database schema is not {SCHEMA_VERSION}")

    def _init_meta(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT INTO meta VALUES ('size', 0)")
            conn.execute("INSERT INTO meta VALUES ('range', X'')")
            conn.execute("COMMIT")
        self._check_schema(conn)

    def _load_range(self, conn: sqlite3.Connection) -> CompactRange:
        size = self._meta_int("size", conn)
        blob = _blob(self._meta("range", conn))
        hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        try:
            return CompactRange(size, hashes)
        except InvalidInputError as e:
            raise StorageError(f"stored compact range is corrupt: {e}") from e

    def _load_partials(self, conn: sqlite3.Connection) -> dict[int, _PartialTile]:
        """The right-edge tile of every tile level that is not full yet."""
        partials: dict[int, _PartialTile] = {}
        size, level = self._range.size, 0
        while size >> (TILE_HEIGHT * level):
            nodes_at_level = size >> (TILE_HEIGHT * level)
            index, width = divmod(nodes_at_level, TILE_WIDTH)
            if width:
                row = conn.execute(
                    "SELECT width, hashes FROM tiles WHERE id=?", (_tile_key(level, index),)
                ).fetchone()
                if row is None or row[0] != width:
                    raise StorageError(f"tile {level}/{index} is missing or has the wrong width")
                partials[level] = _PartialTile(index, _blob(row[1]), width)
            level += 1
        return partials

    @staticmethod
    def _meta_int(key: str, conn: sqlite3.Connection) -> int:
        return _int(SqliteLog._meta(key, conn))

    @staticmethod
    def _meta(key: str, conn: sqlite3.Connection) -> object:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            raise StorageError(f"the log database is corrupt: meta {key!r} is missing")
        return row[0]

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path, readonly=True)
            self._local.conn = conn
            with self._cache_lock:
                self._readers.append(conn)
        return conn

    # --- LogWriter ---------------------------------------------------------------------------
    def append(self, entries: Sequence[bytes]) -> int:
        """Append durably in one transaction; return the first index."""
        if not entries:
            raise InvalidInputError("nothing to append", parameter="entries")
        if len(entries) > self._limits.max_batch_entries:
            raise TooLargeError(
                f"batch of {len(entries)} entries exceeds {self._limits.max_batch_entries}",
                parameter="entries",
            )
        for e in entries:
            if len(e) > self._limits.max_entry_bytes:
                raise TooLargeError(
                    f"entry of {len(e)} bytes exceeds {self._limits.max_entry_bytes}",
                    parameter="entry",
                )
        with self._write_lock:
            if self._writer is None:
                raise StorageError("the log is open read-only")
            return self._append_locked(entries, self._writer)

    def _append_locked(self, entries: Sequence[bytes], conn: sqlite3.Connection) -> int:
        first = self._range.size
        new_range = self._range.copy()
        runs = new_range.extend_levels([leaf_hash(e) for e in entries])
        partials = {
            lvl: _PartialTile(t.index, t.blob(), t.width) for lvl, t in self._partials.items()
        }
        touched = _fill_tiles(partials, runs)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO entries (idx, data) VALUES (?, ?)",
                ((first + i, e) for i, e in enumerate(entries)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO tiles (id, width, hashes) VALUES (?, ?, ?)",
                (
                    (_tile_key(lvl, idx), t.width, t.blob())
                    for (lvl, idx), t in _write_order(first, touched)
                ),
            )
            conn.execute("UPDATE meta SET value=? WHERE key='size'", (new_range.size,))
            conn.execute("UPDATE meta SET value=? WHERE key='range'", (b"".join(new_range.hashes),))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StorageError(f"append failed and was rolled back: {e}") from e
        # Only after a durable commit does the in-memory state move on.
        self._range = new_range
        self._partials = {lvl: t for lvl, t in partials.items() if t.width < TILE_WIDTH}
        self._publish()
        return first

    def _publish(self) -> None:
        """Expose immutable snapshots of the right-edge tiles to readers (an atomic swap)."""
        self._head = (self._range.size, self._range.root())
        self._published = {
            lvl: (t.index, tuple(bytes(r) for r in t.rows)) for lvl, t in self._partials.items()
        }

    # --- LogReader ---------------------------------------------------------------------------
    @_read_errors()
    def size(self) -> int:
        return self._meta_int("size", self._reader())

    def preview(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """(size, root) the log would have after appending ``entries``; writes nothing."""
        with self._write_lock:
            tree = self._range.copy()
        tree.extend(leaf_hash(e) for e in entries)
        return tree.size, tree.root()

    def head(self) -> tuple[int, bytes]:
        """(size, root) of the committed tree: a snapshot swapped in after each COMMIT."""
        return self._head

    @_read_errors()
    def entries(self, start: int, end: int) -> list[bytes]:
        if not 0 <= start <= end:
            raise InvalidInputError(f"bad entry range [{start}, {end})", parameter="index")
        rows = (
            self._reader()
            .execute(
                "SELECT idx, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, end),
            )
            .fetchall()
        )
        if len(rows) != end - start:
            raise NotFoundError(f"entries [{start}, {end}) are not all in the log")
        return [_blob(r[1]) for r in rows]

    def iter_entries(self, start: int = 0, chunk: int = 4096) -> Iterator[tuple[int, bytes]]:
        """Stream (index, data) from ``start`` in bounded chunks (flat memory)."""
        conn = self._reader()
        at = start
        while True:
            with _read_errors():
                rows = conn.execute(
                    "SELECT idx, data FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?", (at, chunk)
                ).fetchall()
            if not rows:
                return
            for idx, data in rows:
                yield int(idx), _blob(data)
            at = int(rows[-1][0]) + 1

    def _tile_rows(self, level: int, index: int) -> tuple[bytes, ...]:
        """The tile's in-tile rows (bottom first), from the writer's right edge, cache or disk."""
        partial = self._published.get(level)
        if partial is not None and partial[0] == index:
            return partial[1]
        key = _tile_key(level, index)
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:  # not a decorator: this is the proof hot path
            row = (
                self._reader()
                .execute("SELECT width, hashes FROM tiles WHERE id=?", (key,))
                .fetchone()
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot read the log database: {e}") from e
        if row is None:
            raise NotFoundError(f"tile {level}/{index} does not exist")
        rows = _split_rows(_int(row[0]), _blob(row[1]))
        if row[0] == TILE_WIDTH:
            with self._cache_lock:
                self._cache[key] = rows
                if len(self._cache) > _FULL_TILE_CACHE:
                    self._cache.popitem(last=False)
        return rows

    def tile_row(self, level: int, index: int) -> bytes:
        """The bottom row of hash tile (level, index): what tlog-tiles serves."""
        return self._tile_rows(level, index)[0]

    def node_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        out: list[bytes] = []
        tiles: dict[tuple[int, int], tuple[bytes, ...]] = {}  # each tile read once per call
        for node in nodes:
            tile_level, r = divmod(node.level, TILE_HEIGHT)
            bottom = node.index << r
            key = (tile_level, bottom >> TILE_HEIGHT)
            rows = tiles.get(key)
            if rows is None:
                rows = tiles[key] = self._tile_rows(*key)
            row = rows[r]
            at = ((bottom & (TILE_WIDTH - 1)) >> r) * HASH_SIZE
            h = row[at : at + HASH_SIZE]
            if len(h) != HASH_SIZE:
                raise NotFoundError(f"node {node.level}/{node.index} is not complete yet")
            out.append(h)
        return out

    # --- CheckpointStore ---------------------------------------------------------------------
    @_read_errors()
    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = (
            self._reader()
            .execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
        return None if row is None else SignedCheckpoint(int(row[0]), _blob(row[1]), _blob(row[2]))

    def save_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        with self._write_lock:
            if self._writer is None:
                raise StorageError("the log is open read-only")
            try:
                self._writer.execute(
                    "INSERT OR IGNORE INTO checkpoints (size, root, note) VALUES (?, ?, ?)",
                    (checkpoint.size, checkpoint.root, checkpoint.note),
                )
            except sqlite3.Error as e:
                raise StorageError(f"cannot save checkpoint: {e}") from e

    @_read_errors()
    def checkpoints(self) -> list[SignedCheckpoint]:
        rows = (
            self._reader()
            .execute("SELECT size, root, note FROM checkpoints ORDER BY size")
            .fetchall()
        )
        return [SignedCheckpoint(int(s), _blob(r), _blob(n)) for s, r, n in rows]

    @_read_errors()
    def checkpoints_before(self, before: int | None, limit: int) -> list[SignedCheckpoint]:
        """Up to ``limit`` stored checkpoints of size below ``before`` (all if None), newest
        first: a page of the log's history."""
        rows = (
            self._reader()
            .execute(
                "SELECT size, root, note FROM checkpoints WHERE size < ? ORDER BY size DESC"
                " LIMIT ?",
                ((1 << 63) - 1 if before is None else before, limit),
            )
            .fetchall()
        )
        return [SignedCheckpoint(int(s), _blob(r), _blob(n)) for s, r, n in rows]

    # --- integrity (for `medledger log verify`) ----------------------------------------------
    @_read_errors()
    def stored_range(self) -> CompactRange:
        """The size and right edge as stored in ``meta`` (read, not the in-memory copy)."""
        return self._load_range(self._reader())

    @_read_errors()
    def tile_ids(self) -> list[tuple[int, int, int]]:
        """Every stored tile as (level, index, width)."""
        rows = self._reader().execute("SELECT id, width FROM tiles ORDER BY id").fetchall()
        return [(int(i) >> 56, int(i) & ((1 << 56) - 1), _int(w)) for i, w in rows]

    @_read_errors()
    def tile_blob(self, level: int, index: int) -> bytes:
        """The whole stored blob of a tile, bypassing the cache (for tamper checks)."""
        row = (
            self._reader()
            .execute("SELECT hashes FROM tiles WHERE id=?", (_tile_key(level, index),))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"tile {level}/{index} does not exist")
        return _blob(row[0])
