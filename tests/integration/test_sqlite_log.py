"""The SQLite log store on a real file: correctness against the RFC oracle, restart,
read-only use, limits, failed writes that lose nothing, and O(log n) reads per proof."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from medledger.adapters.sqlite_log import SqliteLog
from medledger.config import Limits
from medledger.core.merkle import (
    CompactRange,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    root_plan,
    verify_consistency,
    verify_inclusion,
)
from medledger.core.merkle.plan import root_from_hashes
from medledger.errors import InvalidInputError, NotFoundError, StorageError, TooLargeError
from medledger.testing import reference_merkle as ref


def make_entries(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(0, 64)) for _ in range(n)]


def fill(log: SqliteLog, entries: list[bytes], seed: int = 2) -> None:
    rng = random.Random(seed)
    at = 0
    while at < len(entries):
        n = rng.choice([1, 2, 3, 255, 256, 257, 700])
        log.append(entries[at : at + n])
        at += n


def roots_by_size(entries: list[bytes]) -> list[bytes]:
    c, roots = CompactRange(), [CompactRange().root()]
    for e in entries:
        c.append(leaf_hash(e))
        roots.append(c.root())
    return roots


def test_roots_and_proofs_at_every_past_size_match_the_oracle(tmp_path: Path):
    entries = make_entries(600)
    log = SqliteLog(tmp_path / "log.db")
    fill(log, entries)
    roots = roots_by_size(entries)
    assert log.head() == (600, roots[600])
    rng = random.Random(3)
    for size in range(0, 601):
        assert root_from_hashes(log.node_hashes(root_plan(size).nodes)) == roots[size]
        if size:
            i = rng.randrange(size)
            plan = inclusion_plan(i, size)
            proof = plan.assemble(log.node_hashes(plan.nodes))
            verify_inclusion(leaf_hash(entries[i]), i, size, proof, roots[size])
            m = rng.randrange(size + 1)
            cplan = consistency_plan(m, size)
            verify_consistency(
                m, size, cplan.assemble(log.node_hashes(cplan.nodes)), roots[m], roots[size]
            )
    assert ref.mth(entries[:37]) == roots[37]
    log.close()


def test_reopening_resumes_the_same_tree(tmp_path: Path):
    entries = make_entries(1300)
    log = SqliteLog(tmp_path / "log.db")
    fill(log, entries[:777])
    log.close()
    log = SqliteLog(tmp_path / "log.db")
    assert log.size() == 777
    fill(log, entries[777:])
    assert log.head() == (1300, roots_by_size(entries)[1300])
    assert log.entries(770, 790) == entries[770:790]
    log.close()


def test_read_only_opening_reads_but_never_writes(tmp_path: Path):
    entries = make_entries(300)
    writer = SqliteLog(tmp_path / "log.db")
    writer.append(entries)
    reader = SqliteLog(tmp_path / "log.db", readonly=True)
    assert reader.head() == writer.head()
    assert reader.tile_row(0, 0) == b"".join(leaf_hash(e) for e in entries[:256])
    with pytest.raises(StorageError):
        reader.append([b"x"])
    reader.close()
    writer.close()


def test_read_only_opening_of_a_missing_file_is_a_storage_error(tmp_path: Path):
    with pytest.raises(StorageError):
        SqliteLog(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        ([], InvalidInputError),
        ([b"x" * 65_536], TooLargeError),
        ([b"ok", b"x" * 70_000], TooLargeError),
        ([b"e"] * 10_001, TooLargeError),
    ],
)
def test_rejected_batches_write_nothing(tmp_path: Path, batch: list[bytes], error: type[Exception]):
    log = SqliteLog(tmp_path / "log.db", Limits())
    log.append([b"before"])
    head = log.head()
    with pytest.raises(error):
        log.append(batch)
    assert log.head() == head
    assert log.size() == 1
    log.close()


def test_a_failed_commit_rolls_back_and_loses_nothing(tmp_path: Path):
    """An append that fails inside its transaction leaves the old state, in memory and on disk."""
    log = SqliteLog(tmp_path / "log.db")
    log.append([b"a", b"b"])
    head = log.head()
    intruder = sqlite3.connect(tmp_path / "log.db")
    intruder.execute("INSERT INTO entries (idx, data) VALUES (3, x'00')")  # blocks index 3
    intruder.commit()
    with pytest.raises(StorageError):
        log.append([b"c", b"d"])
    assert log.head() == head
    assert log.size() == 2
    intruder.execute("DELETE FROM entries WHERE idx = 3")
    intruder.commit()
    intruder.close()
    log.append([b"c", b"d"])
    assert log.head() == (4, ref.mth([b"a", b"b", b"c", b"d"]))
    log.close()


def test_nodes_beyond_the_tree_are_not_found(tmp_path: Path):
    log = SqliteLog(tmp_path / "log.db")
    log.append(make_entries(10))
    with pytest.raises(NotFoundError):
        log.node_hashes(root_plan(11).nodes)  # needs leaf 10
    with pytest.raises(NotFoundError):
        log.entries(5, 11)
    with pytest.raises(NotFoundError):
        log.tile_row(1, 0)
    log.close()


def test_a_proof_reads_o_log_n_rows(tmp_path: Path):
    """Issue 2: any proof for any index at any past size in O(log n) reads."""
    log = SqliteLog(tmp_path / "log.db")
    entries = [i.to_bytes(4, "big") for i in range(70_000)]
    for at in range(0, len(entries), 10_000):
        log.append(entries[at : at + 10_000])
    log.close()
    log = SqliteLog(tmp_path / "log.db", readonly=True)  # cold cache, everything from disk
    statements: list[str] = []
    conn = log._reader()
    conn.set_trace_callback(statements.append)
    rng = random.Random(5)
    for _ in range(50):
        size = rng.randint(1, 70_000)
        index = rng.randrange(size)
        for plan in (inclusion_plan(index, size), consistency_plan(rng.randint(0, size), size)):
            statements.clear()
            log.node_hashes(plan.nodes)
            # Three tile levels cover 2**24 leaves; each level is read at most twice (the
            # leaf's tile and the right-edge tile).
            assert len(statements) <= 6, statements
    log.close()


def test_disk_use_per_entry_is_within_100_bytes_of_the_entry(tmp_path: Path):
    log = SqliteLog(tmp_path / "log.db")
    entries = [bytes([i % 256]) * 200 for i in range(20_000)]
    for at in range(0, len(entries), 1000):
        log.append(entries[at : at + 1000])
    log.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("log.db")]
    total = sum(p.stat().st_size for p in files)
    overhead = (total - sum(len(e) for e in entries)) / len(entries)
    assert overhead <= 100, f"{overhead:.1f} bytes of overhead per entry"
