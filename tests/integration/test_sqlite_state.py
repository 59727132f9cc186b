"""``SqliteState`` on a real SQLite file: the state tree's properties through the adapter, the
caller's transaction (commit, rollback, reopen), tampered rows, and the cost of a block.

The oracle is ``medledger.testing.reference_smt``: after every block the root must be its root,
and at the end the ``smt_nodes`` rows must be exactly its nodes (nothing stale left behind).
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.adapters.sqlite_state import ScratchState, SqliteState
from medledger.core.state.smt import (
    EMPTY_STATE_ROOT,
    ROOT_KEY,
    Internal,
    Leaf,
    Node,
    hash_key,
    hash_value,
    verify_proof,
)
from medledger.errors import ConflictError, StorageError, TamperError
from medledger.testing import reference_smt

Writes = dict[str, bytes | None]
SLOW = settings(max_examples=15, deadline=None)

keys = st.integers(min_value=0, max_value=150).map(lambda i: f"k/{i}")
values = st.binary(max_size=3)
states = st.dictionaries(keys, values, max_size=120)
blocks = st.dictionaries(keys, st.none() | values, max_size=30)
cache_levels = st.sampled_from([0, 3, 16])


def open_state(path: Path, *, cached_levels: int = 16) -> tuple[sqlite3.Connection, SqliteState]:
    """The ledger's way: autocommit connection, explicit transactions."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    SqliteState.create_schema(conn)
    return conn, SqliteState(conn, cached_levels=cached_levels)


def commit(conn: sqlite3.Connection, state: SqliteState, writes: Writes) -> bytes:
    """Stage, then write and commit in one transaction, as the ledger does with its block."""
    root = state.stage(writes)
    conn.execute("BEGIN IMMEDIATE")
    try:
        state.write_staged()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return root


def apply(model: dict[str, bytes], writes: Writes) -> None:
    for k, v in writes.items():
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


def stored_nodes(conn: sqlite3.Connection) -> dict[bytes, Node]:
    nodes: dict[bytes, Node] = {}
    for key, kind, a, b in conn.execute("SELECT id, kind, a, b FROM smt_nodes"):
        nodes[key] = Leaf(a, b) if kind == 0 else Internal(a, b)
    return nodes


def stored_state(conn: sqlite3.Connection) -> dict[str, bytes]:
    return dict(conn.execute("SELECT key, value FROM state"))


def assert_matches_oracle(conn: sqlite3.Connection, model: Mapping[str, bytes]) -> None:
    assert SqliteState(conn).root() == reference_smt.state_root(model)
    hashed = {hash_key(k): hash_value(v) for k, v in model.items()}
    assert stored_nodes(conn) == reference_smt.layout(hashed)
    assert stored_state(conn) == model


def assert_proofs_verify(state: SqliteState, model: Mapping[str, bytes], asked: list[str]) -> None:
    root = state.root()
    for key in [*model, *asked]:
        value, proof = state.prove(key)
        assert value == model.get(key)
        verify_proof(root, hash_key(key), None if value is None else hash_value(value), proof)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, SqliteState, Path]]:
    path = tmp_path / "state.db"
    conn, state = open_state(path)
    yield conn, state, path
    conn.close()


# --- the tree's properties through the adapter ----------------------------------------------
@SLOW
@given(states, st.lists(blocks, max_size=5), cache_levels)
def test_blocks_give_the_oracle_root_and_survive_reopening(
    initial: dict[str, bytes], later: list[Writes], levels: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        conn, state = open_state(path, cached_levels=levels)
        model: dict[str, bytes] = {}
        for writes in [dict[str, bytes | None](initial), *later]:
            root = commit(conn, state, writes)
            apply(model, writes)
            assert root == state.root() == reference_smt.state_root(model)
        assert_matches_oracle(conn, model)
        assert_proofs_verify(state, model, ["absent", "k/0", "k/150"])
        conn.close()

        conn, state = open_state(path, cached_levels=levels)
        assert state.root() == reference_smt.state_root(model)
        assert_proofs_verify(state, model, ["absent"])
        conn.close()


@SLOW
@given(states, st.lists(blocks, max_size=4), st.randoms(use_true_random=False))
def test_the_stored_tree_is_a_function_of_the_final_state(
    final: dict[str, bytes], detours: list[Writes], rnd: random.Random
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn_a, direct = open_state(Path(tmp) / "a.db")
        commit(conn_a, direct, dict[str, bytes | None](final))

        conn_b, winding = open_state(Path(tmp) / "b.db")
        for writes in detours:
            commit(conn_b, winding, writes)
        ops: list[tuple[str, bytes | None]] = list(final.items())
        ops += [(k, None) for k in stored_state(conn_b) if k not in final]
        rnd.shuffle(ops)
        for at in range(0, len(ops), 7):  # blocks of up to 7 writes
            commit(conn_b, winding, dict(ops[at : at + 7]))

        assert winding.root() == direct.root()
        assert stored_nodes(conn_b) == stored_nodes(conn_a)
        conn_a.close()
        conn_b.close()


def test_deleting_every_key_empties_the_tables(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    conn, state, _ = db
    model = {f"k{i}": b"v%d" % i for i in range(300)}
    commit(conn, state, dict[str, bytes | None](model))
    assert commit(conn, state, dict.fromkeys(model)) == EMPTY_STATE_ROOT
    assert conn.execute("SELECT count(*) FROM smt_nodes").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM state").fetchone() == (0,)
    value, proof = state.prove("k1")
    assert value is None
    verify_proof(EMPTY_STATE_ROOT, hash_key("k1"), None, proof)


def test_an_empty_block_keeps_the_root(db: tuple[sqlite3.Connection, SqliteState, Path]) -> None:
    conn, state, _ = db
    root = commit(conn, state, {"a": b"1"})
    assert commit(conn, state, {}) == root


# --- the caller's transaction ---------------------------------------------------------------
def test_a_rolled_back_block_leaves_the_old_root(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    """Stage and write a block, then the caller's transaction rolls back: the old root and
    state stay -- in this connection, after reopening, and for the next block (the node cache
    must not keep the rolled-back nodes)."""
    conn, state, path = db
    model = {f"k{i}": b"v" for i in range(200)}
    old_root = commit(conn, state, dict[str, bytes | None](model))

    doomed: Writes = {f"k{i}": (None if i % 3 else b"new") for i in range(0, 200, 2)}
    assert state.stage(doomed) != old_root
    conn.execute("BEGIN IMMEDIATE")
    state.write_staged()
    assert state.root() != old_root  # visible inside the transaction
    conn.execute("ROLLBACK")

    assert state.root() == old_root
    assert state.get("k2") == b"v"
    assert_matches_oracle(conn, model)
    assert_proofs_verify(state, model, ["k1000"])

    reopened, reopened_state = open_state(path)
    assert reopened_state.root() == old_root
    reopened.close()

    # The next block touches the same paths the rolled-back one did.
    writes: Writes = {f"k{i}": b"other" for i in range(0, 200, 2)}
    assert commit(conn, state, writes) == reference_smt.state_root({**model, **writes})


def test_staged_but_unwritten_changes_are_not_visible(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    conn, state, _ = db
    root = commit(conn, state, {"a": b"1"})
    state.stage({"a": None, "b": b"2"})
    assert state.root() == root
    assert state.get("a") == b"1"
    assert state.get("b") is None


def test_write_staged_needs_the_callers_transaction(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    _, state, _ = db
    state.stage({"a": b"1"})
    with pytest.raises(ConflictError, match="transaction"):
        state.write_staged()  # autocommit connection, no BEGIN
    assert state.root() == EMPTY_STATE_ROOT


def test_write_staged_refuses_a_stale_or_missing_stage(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    conn, state, path = db
    conn.execute("BEGIN")
    with pytest.raises(ConflictError, match="nothing is staged"):
        state.write_staged()
    conn.execute("ROLLBACK")

    state.stage({"a": b"1"})
    other_conn, other = open_state(path)
    commit(other_conn, other, {"b": b"2"})  # the state moves on under the stage
    other_conn.close()
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(ConflictError, match="stage again"):
        state.write_staged()
    conn.execute("ROLLBACK")
    assert commit(conn, state, {"a": b"1"}) == reference_smt.state_root({"a": b"1", "b": b"2"})


def test_works_on_a_connection_in_pythons_default_transaction_mode(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")  # implicit BEGIN before DML
    SqliteState.create_schema(conn)
    conn.commit()
    state = SqliteState(conn)
    root = state.stage({"a": b"1", "b": b"2"})
    state.write_staged()
    conn.commit()
    conn.close()
    conn, state = open_state(tmp_path / "state.db")
    assert state.root() == root == reference_smt.state_root({"a": b"1", "b": b"2"})
    conn.close()


def test_scratch_state_commits_each_block(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "replay.db", isolation_level=None)
    scratch = ScratchState(conn)
    model: dict[str, bytes] = {}
    for writes in ({"a": b"1", "b": b"2"}, {"a": None, "c": b"3"}):
        root = scratch.stage(dict(writes))
        scratch.commit()
        apply(model, dict(writes))
        assert root == reference_smt.state_root(model)
    assert scratch.get("c") == b"3"
    assert scratch.get("a") is None
    conn.close()


# --- tampered rows --------------------------------------------------------------------------
def test_a_rewritten_root_node_is_detected(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    conn, state, path = db
    commit(conn, state, {f"k{i}": b"v" for i in range(50)})
    conn.execute("UPDATE smt_nodes SET a = ? WHERE id = ?", (os.urandom(32), ROOT_KEY))
    fresh_conn, fresh = open_state(path)  # no cached nodes
    with pytest.raises(TamperError):
        fresh.stage({"k1": b"w"})
    with pytest.raises(TamperError):
        fresh.prove("k1")
    fresh_conn.close()


def test_a_malformed_node_row_is_a_storage_error(
    db: tuple[sqlite3.Connection, SqliteState, Path],
) -> None:
    conn, state, path = db
    commit(conn, state, {f"k{i}": b"v" for i in range(50)})
    conn.execute("UPDATE smt_nodes SET b = x'00' WHERE kind = 0")
    fresh_conn, fresh = open_state(path, cached_levels=0)
    with pytest.raises(StorageError, match="corrupt"):
        fresh.stage({f"k{i}": b"w" for i in range(50)})
    fresh_conn.close()


def test_a_deleted_leaf_row_is_detected(db: tuple[sqlite3.Connection, SqliteState, Path]) -> None:
    conn, state, path = db
    commit(conn, state, {f"k{i}": b"v" for i in range(50)})
    conn.execute("DELETE FROM smt_nodes WHERE kind = 0 AND a = ?", (hash_key("k7"),))
    fresh_conn, fresh = open_state(path, cached_levels=0)
    with pytest.raises(TamperError):
        fresh.stage({"k7": b"w"})
    with pytest.raises(TamperError):
        fresh.prove("k7")
    fresh_conn.close()


# --- the cost of a block --------------------------------------------------------------------
BIG = 100_000
BLOCK = 1_000


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state of 100,000 keys, built once for the cost checks."""
    path = tmp_path_factory.mktemp("big") / "state.db"
    conn, state = open_state(path)
    commit(conn, state, {f"key/{i}": b"value %d" % i for i in range(BIG)})
    conn.close()
    return path


def _block(seed: int) -> Writes:
    """1,000 changes: mostly updates, some inserts, some deletes."""
    rnd = random.Random(seed)
    return {
        f"key/{rnd.randrange(BIG + BIG // 10)}": None if rnd.random() < 0.05 else os.urandom(8)
        for _ in range(BLOCK)
    }


def test_block_cost_smoke(big_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Timing of 1,000 changes on 100,000 keys, printed for the record (not asserted). The
    first block reads the top levels into the cache; the later ones find them there."""
    conn, state = open_state(big_db)
    timings = []
    for seed in range(5):
        writes = _block(seed)
        t0 = time.perf_counter()
        root = state.stage(writes)
        t1 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        state.write_staged()
        t2 = time.perf_counter()
        conn.execute("COMMIT")
        timings.append((t1 - t0, t2 - t1))
        key = next(iter(writes))
        assert root == state.root()
    stage = sorted(t for t, _ in timings)
    write = sorted(t for _, t in timings)
    with capsys.disabled():
        print(
            f"\n[state tree] {BLOCK} changes on {BIG} keys: stage (new root) median "
            f"{stage[2] * 1000:.0f} ms (min {stage[0] * 1000:.0f}), write_staged median "
            f"{write[2] * 1000:.0f} ms (min {write[0] * 1000:.0f})"
        )
    value, proof = state.prove(key)
    verify_proof(state.root(), hash_key(key), None if value is None else hash_value(value), proof)
    conn.close()


def test_a_block_reads_o_changes_log_n_nodes(
    big_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Staging and writing 1,000 changes reads and writes O(changes x log n) node rows, in few
    statements (one query per tree level), never anything proportional to the state."""
    conn, state = open_state(big_db, cached_levels=0)
    statements: list[str] = []
    trace: Callable[[str], None] = statements.append
    conn.set_trace_callback(trace)
    state.stage(_block(99))
    reads = [s for s in statements if s.startswith("SELECT") and "smt_nodes" in s]
    node_reads = sum(s.count("x'") for s in reads)
    conn.execute("BEGIN IMMEDIATE")
    state.write_staged()
    conn.execute("ROLLBACK")
    conn.set_trace_callback(None)
    with capsys.disabled():
        print(
            f"\n[state tree] {BLOCK} changes on {BIG} keys: {len(statements)} statements, "
            f"{len(reads)} node queries reading {node_reads} node ids"
        )
    assert node_reads <= BLOCK * 40
    assert len(statements) <= BLOCK * 40
    assert len(reads) <= 500  # batched by level, not one query per node
