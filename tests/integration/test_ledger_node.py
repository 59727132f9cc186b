"""The ledger node on real SQLite files: blocks, replay, recovery, and the attacks it stops.

Blocks are cut by calling ``build_block`` directly (no builder thread), so every test is
deterministic; the HTTP path is covered in tests/e2e.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.bootstrap import LEDGER_DB_FILE, LOG_DB_FILE, Node, init_home, open_node
from medledger.client import new_transaction
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.envelope import IntakeError
from medledger.core.ledger.genesis import Authority, Genesis
from medledger.errors import StorageError

PASSPHRASE = "ledger-test-passphrase"
NETWORK = "medledger-test"


def key(n: int) -> ParticipantKey:
    return ParticipantKey.from_seed(bytes([n]) * 32)


HOSPITAL, CLINIC = key(1), key(2)
DOCTOR, NURSE, PATIENT, STRANGER = key(3), key(4), key(5), key(6)


def make_home(home: Path) -> None:
    genesis = Genesis(
        network=NETWORK,
        time_ms=1_700_000_000_000,
        authorities=(
            Authority(did=HOSPITAL.did, name="Test Hospital", roles=("hospital",)),
            Authority(did=CLINIC.did, name="Test Clinic", roles=("clinic",)),
        ),
    )
    init_home(
        home, passphrase=PASSPHRASE, origin="test.medledger/log", genesis=genesis, node_key=HOSPITAL
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    make_home(tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def node(home: Path) -> Iterator[Node]:
    n = open_node(home, passphrase=PASSPHRASE)
    n.ledger.start(int(time.time() * 1000))
    yield n
    n.close()


def tx(
    signer: ParticipantKey,
    tx_type: str,
    payload: dict,
    *,
    network: str = NETWORK,
    ttl: int = 600,
    nonce: str | None = None,
):
    return new_transaction(
        signer,
        network=network,
        tx_type=tx_type,
        payload=payload,
        now_s=int(time.time()),
        ttl_s=ttl,
        nonce=nonce,
    )


def commit(node: Node, *stxs) -> list:
    for stx in stxs:
        node.ledger.submit(stx.wire, int(time.time()))
    batch = node.ordering.next_batch(1000, 0.0)
    node.ledger.build_block(batch, int(time.time() * 1000))
    return [node.ledger.status(s.tx_id) for s in stxs]


def register_people(node: Node) -> None:
    statuses = commit(
        node,
        tx(
            HOSPITAL,
            "participant.register",
            {
                "did": DOCTOR.did,
                "kind": "practitioner",
                "roles": ["physician"],
                "organization": HOSPITAL.did,
            },
        ),
        tx(
            HOSPITAL,
            "participant.register",
            {
                "did": NURSE.did,
                "kind": "practitioner",
                "roles": ["nurse"],
                "organization": HOSPITAL.did,
            },
        ),
        tx(HOSPITAL, "participant.register", {"did": PATIENT.did, "kind": "patient", "roles": []}),
    )
    assert all(s.ok for s in statuses), statuses


def anchor(patient: str, record_id: str, version: int, prev: str | None) -> dict:
    return {
        "patient": patient,
        "record_id": record_id,
        "resource_type": "Observation",
        "version": version,
        "commitment": f"{version:064x}",
        "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "prev": prev,
    }


def chain_verify(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medledger.entrypoints.cli", "chain", "verify", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_genesis_block_registers_the_authorities(node: Node):
    latest = node.ledger.latest_block()
    assert latest.height == 0
    header = json.loads(latest.header)
    assert header["proposer"] == HOSPITAL.did
    assert node.ledger_store.state_get(f"participant/{CLINIC.did}") is not None


def test_transactions_commit_into_signed_blocks_and_log_leaves(node: Node):
    register_people(node)
    block = node.ledger.latest_block()
    header = json.loads(block.header)
    assert header["height"] == 1
    assert header["tx_count"] == 3
    assert header["log_size"] == 3
    assert node.log.size() == 3
    entry = json.loads(node.store.entries(0, 1)[0])
    assert entry["kind"] == "tx"
    assert entry["ok"] is True


def test_records_chain_versions_and_replay_reproduces_every_state_root(node: Node, home: Path):
    register_people(node)
    (first,) = commit(node, tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "obs-1", 1, None)))
    assert first.ok, first
    head = json.loads(node.ledger_store.state_get(f"record/{PATIENT.did}/obs-1"))
    (second,) = commit(
        node, tx(NURSE, "record.anchor", anchor(PATIENT.did, "obs-1", 2, head["hash"]))
    )
    assert second.ok, second
    (tomb,) = commit(
        node,
        tx(
            PATIENT,
            "record.tombstone",
            {"patient": PATIENT.did, "record_id": "obs-1", "reason": "erasure"},
        ),
    )
    assert tomb.ok, tomb
    node.close()
    result = chain_verify(home)
    assert result.returncode == 0, result.stderr
    assert "5 blocks" in result.stdout


def test_replayed_nonce_is_rejected_at_intake(node: Node):
    register_people(node)
    first = tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "x", 1, None), nonce="same-nonce-123")
    assert commit(node, first)[0].ok
    again = tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "y", 1, None), nonce="same-nonce-123")
    with pytest.raises(IntakeError) as info:
        node.ledger.submit(again.wire, int(time.time()))
    assert info.value.reason == "replayed_nonce"
    with pytest.raises(IntakeError) as info:
        node.ledger.submit(first.wire, int(time.time()))
    assert info.value.reason == "replayed_nonce"


def test_wrong_network_id_is_rejected(node: Node):
    stx = tx(HOSPITAL, "access.batch", {}, network="another-network")
    with pytest.raises(IntakeError) as info:
        node.ledger.submit(stx.wire, int(time.time()))
    assert info.value.reason == "wrong_network"


def test_forged_signature_is_rejected(node: Node):
    stx = tx(HOSPITAL, "access.batch", {})
    wire = bytearray(stx.wire)
    at = wire.index(b'"sig":"') + 10
    wire[at] = ord("A") if wire[at] != ord("A") else ord("B")
    with pytest.raises(IntakeError) as info:
        node.ledger.submit(bytes(wire), int(time.time()))
    assert info.value.reason in ("bad_signature", "schema_error")


def test_sender_not_registered_fails_and_changes_no_state(node: Node):
    root_before = node.ledger_store.state_root()
    (status,) = commit(
        node,
        tx(STRANGER, "participant.register", {"did": key(9).did, "kind": "patient", "roles": []}),
    )
    assert (status.ok, status.reason) == (False, "sender_not_registered")
    assert node.ledger_store.state_root() == root_before
    assert node.ledger_store.state_get(f"participant/{key(9).did}") is None


def test_practitioner_registered_by_a_non_authority_fails(node: Node):
    register_people(node)
    (status,) = commit(
        node,
        tx(
            DOCTOR,
            "participant.register",
            {
                "did": key(10).did,
                "kind": "practitioner",
                "roles": ["nurse"],
                "organization": HOSPITAL.did,
            },
        ),
    )
    assert (status.ok, status.reason) == (False, "not_authority")


def test_a_crash_between_block_and_log_commit_is_repaired_on_start(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    node = open_node(home, passphrase=PASSPHRASE)
    node.ledger.start(int(time.time() * 1000))
    register_people(node)

    def crash(entries):  # the process dies after the ledger commit, before the log commit
        raise StorageError("simulated crash")

    monkeypatch.setattr(node.log, "append", crash)
    node.ledger.submit(
        tx(
            HOSPITAL,
            "access.batch",
            {
                "batch_id": "batch-0001",
                "root": "ab" * 32,
                "count": 3,
                "first_time_ms": 1,
                "last_time_ms": 2,
            },
        ).wire,
        int(time.time()),
    )
    with pytest.raises(StorageError):
        node.ledger.build_block(node.ordering.next_batch(10, 0.0), int(time.time() * 1000))
    node.close()
    monkeypatch.undo()
    reopened = open_node(home, passphrase=PASSPHRASE)
    assert reopened.log.size() == 3
    reopened.ledger.start(int(time.time() * 1000))
    assert reopened.log.size() == 4
    reopened.close()
    assert chain_verify(home).returncode == 0


def test_a_failed_block_commit_leaves_no_half_applied_state(
    node: Node, monkeypatch: pytest.MonkeyPatch
):
    register_people(node)
    root, height, size = (
        node.ledger_store.state_root(),
        node.ledger.latest_block().height,
        node.log.size(),
    )
    original = node.ledger_store.commit_block

    def failing(*args, **kwargs):
        raise StorageError("disk full")

    monkeypatch.setattr(node.ledger_store, "commit_block", failing)
    stx = tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "obs-9", 1, None))
    node.ledger.submit(stx.wire, int(time.time()))
    with pytest.raises(StorageError):
        node.ledger.build_block(node.ordering.next_batch(10, 0.0), int(time.time() * 1000))
    assert (node.ledger_store.state_root(), node.ledger.latest_block().height, node.log.size()) == (
        root,
        height,
        size,
    )
    monkeypatch.setattr(node.ledger_store, "commit_block", original)
    (status,) = commit(node, tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "obs-9", 1, None)))
    assert status.ok


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        (
            "UPDATE blocks SET header = CAST(replace(CAST(header AS TEXT), '\"tx_count\":3', "
            "'\"tx_count\":2') AS BLOB) WHERE height = 1",
            "block 1",
        ),
        ("UPDATE blocks SET signature = zeroblob(64) WHERE height = 1", "signature"),
        ("UPDATE txs SET ok = 0, reason = 'not_authority' WHERE height = 1 AND idx = 0", "outcome"),
        (
            "UPDATE txs SET wire = CAST(replace(CAST(wire AS TEXT), 'physician', 'pharmacist')"
            " AS BLOB) WHERE height = 1 AND idx = 0",
            "transaction 0",
        ),
        ("DELETE FROM txs WHERE height = 1 AND idx = 2", "transactions stored"),
        (
            "UPDATE state SET value = CAST('{}' AS BLOB) WHERE key LIKE 'participant/%' "
            "AND rowid = (SELECT min(rowid) FROM state WHERE key LIKE 'participant/%')",
            "state",
        ),
        ("DELETE FROM blocks WHERE height = 1", "block 1"),
    ],
)
def test_tampered_ledger_is_caught_by_chain_verify(node: Node, home: Path, sql: str, words: str):
    """Attack: someone with the disk rewrites a block, a signature, an outcome, a transaction
    or the live state; replaying from genesis names the first mismatch."""
    register_people(node)
    commit(node, tx(DOCTOR, "record.anchor", anchor(PATIENT.did, "obs-1", 1, None)))
    node.close()
    assert chain_verify(home).returncode == 0
    conn = sqlite3.connect(home / LEDGER_DB_FILE)
    conn.execute(sql)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    result = chain_verify(home)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_log_entry_rewritten_under_a_block_is_caught(node: Node, home: Path):
    register_people(node)
    node.close()
    conn = sqlite3.connect(home / LOG_DB_FILE)
    conn.execute(
        "UPDATE entries SET data = CAST(replace(CAST(data AS TEXT), 'true', 'fals') AS BLOB)"
        " WHERE idx = 1"
    )
    conn.commit()
    conn.close()
    result = chain_verify(home)
    assert result.returncode != 0
    assert "log entry 1" in result.stderr


def test_the_node_refuses_a_different_genesis(home: Path, tmp_path: Path):
    node = open_node(home, passphrase=PASSPHRASE)
    node.ledger.start(int(time.time() * 1000))
    node.close()
    other = tmp_path / "other"
    make_home(other)
    (home / "genesis.json").write_bytes(
        (other / "genesis.json").read_bytes().replace(b"Test Clinic", b"Evil Clinic")
    )
    node = open_node(home, passphrase=PASSPHRASE)
    with pytest.raises(StorageError, match="different genesis"):
        node.ledger.start(int(time.time() * 1000))
    node.close()
