"""A single flipped byte in any stored entry, hash or checkpoint is caught by `log verify`.

One real node home is built once: 3,300 entries in batches of uneven sizes, with signed
checkpoints in between but none at the final size, so the database holds full and partial
level-0 tiles, a level-1 tile, a compact range and several checkpoints. Each test copies the
home, changes exactly one thing with SQLite directly (as an attacker or a failing disk
would), and runs ``medledger log verify`` as a user does. It must exit non-zero with a one-line
message naming what is wrong, and never with a Python traceback.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from medledger.bootstrap import LOG_DB_FILE, init_home, open_node
from medledger.core.checkpoint import Checkpoint, sign_checkpoint
from medledger.core.note import Signer

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture

ORIGIN = "tamper.medledger.test/log"
PASSPHRASE = "tamper-test-passphrase"
BATCHES = (1, 255, 700, 1000, 44, 1000, 300)  # 3,300 entries: 12 full tiles + 0/12 of width 228
CHECKPOINT_AFTER = (0, 1, 3, 5)  # batch numbers after which a checkpoint is signed
SIZE = sum(BATCHES)
HASH = 32
TILE_WIDTH = 256
FORGED_SIZE = 2000  # a size with no checkpoint of its own


def record(index: int) -> bytes:
    return b"record %d " % index + bytes([index % 251]) * (index % 40)


@dataclass(frozen=True)
class BuiltLog:
    home: Path
    checkpoint_sizes: tuple[int, ...]
    root_at_forged_size: bytes


@pytest.fixture(scope="module")
def built_log(tmp_path_factory: pytest.TempPathFactory) -> BuiltLog:
    """The pristine home every test copies; nothing writes to it after this fixture."""
    home = tmp_path_factory.mktemp("tamper") / "home"
    init_home(home, origin=ORIGIN, passphrase=PASSPHRASE)
    node = open_node(home, passphrase=PASSPHRASE)
    try:
        at, sizes = 0, []
        for batch, count in enumerate(BATCHES):
            node.log.append([record(i) for i in range(at, at + count)])
            at += count
            if batch in CHECKPOINT_AFTER:
                sizes.append(node.log.sign_current().size)
        root = node.log.root_at(FORGED_SIZE)
    finally:
        node.close()
    _checkpoint_wal(home / LOG_DB_FILE)
    return BuiltLog(home, tuple(sizes), root)


@pytest.fixture
def tampered_home(built_log: BuiltLog, tmp_path: Path) -> Path:
    """A private copy of the built home, for one test to tamper with."""
    copy = tmp_path / "home"
    shutil.copytree(built_log.home, copy)
    return copy


# --- tampering, as an attacker with write access to the database would ----------------------
def _checkpoint_wal(db: Path) -> None:
    """Move everything into the main database file, so the file alone is the state."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def tamper(home: Path, sql: str, *params: object) -> None:
    """Run one statement on a fresh connection, commit it, and checkpoint the WAL."""
    db = home / LOG_DB_FILE
    with contextlib.closing(sqlite3.connect(db)) as conn:
        changed = conn.execute(sql, params).rowcount
        conn.commit()
        assert changed == 1, f"{sql!r} changed {changed} rows"
    _checkpoint_wal(db)


def read_one(home: Path, sql: str, *params: object) -> bytes:
    with contextlib.closing(sqlite3.connect(home / LOG_DB_FILE)) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, f"{sql!r} found nothing"
    return bytes(row[0])


def flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    """``data`` with one bit of byte ``at`` flipped: the smallest possible corruption."""
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def tile_id(level: int, index: int) -> int:
    return (level << 56) | index


# --- what `medledger log verify` must say -----------------------------------------------------
def verify_fails(medledger_cli: MedledgerCli, home: Path) -> str:
    """Run `medledger log verify`; assert a clean failure and return its message."""
    result = medledger_cli("log", "verify", "--home", str(home))
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode != 0, f"tampering was not caught:\n{output}"
    assert "error:" in result.stderr, output
    return result.stderr


def names_entry(message: str, index: int) -> bool:
    """Does ``message`` point at something that covers entry ``index``: its level-0 tile, or a
    checkpoint whose tree contains it?"""
    if f"tile 0/{index // TILE_WIDTH} " in message:
        return True
    sizes = [int(s) for s in re.findall(r"checkpoint at size (\d+)", message)]
    return any(size > index for size in sizes)


# --- the tests ------------------------------------------------------------------------------
def test_untouched_copy_verifies(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    result = medledger_cli("log", "verify", "--home", str(tampered_home))
    assert result.returncode == 0, result.stderr
    assert f"OK {SIZE} entries" in result.stdout


@pytest.mark.parametrize("index", [0, SIZE // 2, SIZE - 1], ids=["first", "middle", "last"])
def test_flipped_entry_byte_is_caught(
    tampered_home: Path, medledger_cli: MedledgerCli, index: int
) -> None:
    data = read_one(tampered_home, "SELECT data FROM entries WHERE idx=?", index)
    tamper(
        tampered_home,
        "UPDATE entries SET data=? WHERE idx=?",
        flip(data, len(data) // 2),
        index,
    )
    message = verify_fails(medledger_cli, tampered_home)
    assert names_entry(message, index), message


@pytest.mark.parametrize(
    ("level", "index", "offset"),
    [
        (0, 3, 100 * HASH + 5),  # the bottom row: a leaf hash
        (0, 3, 256 * HASH + 9),  # in-tile level 1, the first row above the bottom
        (0, 3, 510 * HASH - 1),  # in-tile level 7: the last byte of the tile
        (1, 0, 5 * HASH),  # the level-1 tile (tree level 8)
        (0, SIZE // TILE_WIDTH, 200 * HASH + 31),  # the partial right-edge tile
    ],
    ids=["bottom-row", "in-tile-upper-level", "in-tile-top-level", "level-1-tile", "partial-tile"],
)
def test_flipped_tile_hash_is_caught(
    tampered_home: Path, medledger_cli: MedledgerCli, level: int, index: int, offset: int
) -> None:
    blob = read_one(tampered_home, "SELECT hashes FROM tiles WHERE id=?", tile_id(level, index))
    tamper(
        tampered_home,
        "UPDATE tiles SET hashes=? WHERE id=?",
        flip(blob, offset),
        tile_id(level, index),
    )
    message = verify_fails(medledger_cli, tampered_home)
    assert f"tile {level}/{index} " in message, message


@pytest.mark.parametrize(
    ("index", "width"),
    [(3, TILE_WIDTH), (SIZE // TILE_WIDTH, SIZE % TILE_WIDTH)],
    ids=["full-tile", "partial-tile"],
)
def test_flipped_tile_width_is_caught(
    tampered_home: Path, medledger_cli: MedledgerCli, index: int, width: int
) -> None:
    # The hashes are intact; the width the store splits them by is not (proofs and reopening
    # the log for writing would fail on it).
    tamper(tampered_home, "UPDATE tiles SET width=? WHERE id=?", width ^ 0x01, tile_id(0, index))
    message = verify_fails(medledger_cli, tampered_home)
    assert f"tile 0/{index} " in message, message


def test_deleted_tile_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    tamper(tampered_home, "DELETE FROM tiles WHERE id=?", tile_id(0, 5))
    message = verify_fails(medledger_cli, tampered_home)
    assert "tile 0/5 is missing" in message, message


@pytest.mark.parametrize("part", ["body", "signature"])
def test_flipped_checkpoint_note_byte_is_caught(
    built_log: BuiltLog, tampered_home: Path, medledger_cli: MedledgerCli, part: str
) -> None:
    size = built_log.checkpoint_sizes[1]
    note = read_one(tampered_home, "SELECT note FROM checkpoints WHERE size=?", size)
    body_end = note.rindex(b"\n\n")
    at = body_end // 2 if part == "body" else len(note) - 10
    tamper(tampered_home, "UPDATE checkpoints SET note=? WHERE size=?", flip(note, at), size)
    message = verify_fails(medledger_cli, tampered_home)
    assert f"checkpoint at size {size} does not verify" in message, message


def test_rewritten_checkpoint_root_is_caught(
    built_log: BuiltLog, tampered_home: Path, medledger_cli: MedledgerCli
) -> None:
    size = built_log.checkpoint_sizes[-1]
    root = read_one(tampered_home, "SELECT root FROM checkpoints WHERE size=?", size)
    tamper(tampered_home, "UPDATE checkpoints SET root=? WHERE size=?", flip(root, 0), size)
    message = verify_fails(medledger_cli, tampered_home)
    assert f"checkpoint at size {size} " in message, message


def test_forged_checkpoint_is_caught(
    built_log: BuiltLog, tampered_home: Path, medledger_cli: MedledgerCli
) -> None:
    # The right origin, size and root: only the key is wrong (the attacker's, named like ours).
    impostor = Signer(ORIGIN, random.Random(1).randbytes(32))
    note = sign_checkpoint(Checkpoint(ORIGIN, FORGED_SIZE, built_log.root_at_forged_size), impostor)
    tamper(
        tampered_home,
        "INSERT INTO checkpoints (size, root, note) VALUES (?, ?, ?)",
        FORGED_SIZE,
        built_log.root_at_forged_size,
        note,
    )
    message = verify_fails(medledger_cli, tampered_home)
    assert f"checkpoint at size {FORGED_SIZE} does not verify" in message, message


def test_flipped_stored_size_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    tamper(tampered_home, "UPDATE meta SET value=? WHERE key='size'", SIZE ^ 0x01)
    message = verify_fails(medledger_cli, tampered_home)
    assert re.search(r"stored (size|compact range)", message), message


def test_flipped_compact_range_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    blob = read_one(tampered_home, "SELECT value FROM meta WHERE key='range'")
    tamper(tampered_home, "UPDATE meta SET value=? WHERE key='range'", flip(blob, HASH + 7))
    message = verify_fails(medledger_cli, tampered_home)
    assert "compact range" in message, message


def test_deleted_entry_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    tamper(tampered_home, "DELETE FROM entries WHERE idx=?", 1234)
    message = verify_fails(medledger_cli, tampered_home)
    assert "entry 1234 is missing" in message, message


def test_truncated_tail_entry_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    tamper(tampered_home, "DELETE FROM entries WHERE idx=?", SIZE - 1)
    message = verify_fails(medledger_cli, tampered_home)
    assert names_entry(message, SIZE - 1) or "stored size" in message, message


def test_smuggled_extra_entry_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    tamper(tampered_home, "INSERT INTO entries (idx, data) VALUES (?, ?)", SIZE, record(SIZE))
    message = verify_fails(medledger_cli, tampered_home)
    assert names_entry(message, SIZE) or f"stored size {SIZE} but" in message, message


@pytest.mark.parametrize(
    ("table", "column", "key", "value", "named"),
    [
        ("entries", "data", "idx=1650", "record 1650 ", "wrong type"),  # text, not a blob
        ("entries", "data", "idx=1650", 2**62, "wrong type"),  # bytes(2**62): out of memory
        ("tiles", "hashes", "id=3", "x", "tile 0/3 "),
        ("checkpoints", "note", f"size={BATCHES[0]}", "x", "wrong type"),
        ("meta", "value", "key='size'", str(SIZE), "wrong type"),  # int('3300') would pass
    ],
    ids=["entry-as-text", "entry-as-huge-integer", "tile-as-text", "note-as-text", "size-as-text"],
)
def test_value_of_the_wrong_type_is_caught(
    tampered_home: Path,
    medledger_cli: MedledgerCli,
    table: str,
    column: str,
    key: str,
    value: object,
    named: str,
) -> None:
    # A flipped bit in a record header changes a column's storage class, not just its bytes.
    tamper(tampered_home, f"UPDATE {table} SET {column}=? WHERE {key}", value)
    message = verify_fails(medledger_cli, tampered_home)
    assert named in message, message


@pytest.mark.parametrize("key", ["size", "range"])
def test_deleted_meta_row_is_caught(
    tampered_home: Path, medledger_cli: MedledgerCli, key: str
) -> None:
    tamper(tampered_home, "DELETE FROM meta WHERE key=?", key)
    message = verify_fails(medledger_cli, tampered_home)
    assert f"meta {key!r} is missing" in message, message


# --- a failing disk: a flipped bit anywhere in the file's entry pages -------------------------
def entry_region(raw: bytes) -> tuple[int, int]:
    """The byte range of the database file from the first to the last entry found in it (the
    tile pages, written in the same transactions, are interleaved with the entry pages)."""
    offsets = [raw.find(record(i)) for i in range(0, SIZE, 97)]
    assert all(at >= 0 for at in offsets), "entries not found in the checkpointed file"
    return min(offsets), max(offsets) + len(record(SIZE - 1))


def test_corrupt_entry_page_is_caught(tampered_home: Path, medledger_cli: MedledgerCli) -> None:
    db = tampered_home / LOG_DB_FILE
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    raw = db.read_bytes()
    page = raw.find(record(SIZE // 2)) // page_size
    assert page > 0
    # The b-tree page type byte: 0xff is no page type, so SQLite reports a malformed image.
    db.write_bytes(flip(raw, page * page_size, raw[page * page_size] ^ 0xFF))
    message = verify_fails(medledger_cli, tampered_home)
    assert "cannot read the log database" in message, message


# Seeds 3 and 177 once gave a traceback (a malformed page; a data column turned NULL).
@pytest.mark.parametrize("seed", [*range(16), 177])
def test_flipped_database_file_byte_never_crashes_the_verifier(
    tampered_home: Path, medledger_cli: MedledgerCli, seed: int
) -> None:
    db = tampered_home / LOG_DB_FILE
    raw = db.read_bytes()
    start, end = entry_region(raw)
    rng = random.Random(seed)
    db.write_bytes(flip(raw, rng.randrange(start, end), 1 << rng.randrange(8)))
    result = medledger_cli("log", "verify", "--home", str(tampered_home))
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode in (0, 1), output  # not killed by a signal, not a usage error
    if result.returncode == 0:
        # The bit was in unused space (a freeblock or page slack): nothing stored changed.
        assert f"OK {SIZE} entries" in result.stdout, output
    else:
        assert "error:" in result.stderr, output
