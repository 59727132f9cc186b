"""TransparencyLog over a real SQLite store: checkpoint signing never forks, proofs and
receipts verify, parameters are checked."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from medledger.adapters.sqlite_log import SqliteLog
from medledger.config import Limits, LogConfig
from medledger.core.checkpoint import open_checkpoint
from medledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from medledger.core.note import Signer
from medledger.core.receipt import parse_receipt, verify_receipt
from medledger.core.tiles import TileId, decode_entry_bundle
from medledger.errors import ConflictError, InvalidInputError, NotFoundError
from medledger.services.log import TransparencyLog
from medledger.testing import reference_merkle as ref

ORIGIN = "service.medledger.test/log"


@pytest.fixture
def signer() -> Signer:
    return Signer(ORIGIN, secrets.token_bytes(32))


def open_log(path: Path, signer: Signer) -> TransparencyLog:
    return TransparencyLog(SqliteLog(path), signer, LogConfig(origin=ORIGIN))


def entries(n: int, tag: str = "e") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


def test_checkpoints_are_signed_only_when_the_tree_grew(tmp_path: Path, signer: Signer):
    log = open_log(tmp_path / "log.db", signer)
    first = log.latest_checkpoint()  # the empty tree gets a checkpoint too
    assert first.size == 0
    assert log.checkpoint_if_grown() is None
    log.append(entries(5))
    signed = log.checkpoint_if_grown()
    assert signed is not None
    assert signed.size == 5
    assert log.checkpoint_if_grown() is None
    cp = open_checkpoint(signed.note, ORIGIN, [signer.verifier()], Limits())
    assert (cp.size, cp.root_hash) == (5, ref.mth(entries(5)))


def test_signing_the_same_tree_twice_returns_the_same_note(tmp_path: Path, signer: Signer):
    log = open_log(tmp_path / "log.db", signer)
    log.append(entries(3))
    assert log.sign_current().note == log.sign_current().note


def _forge_history(path: Path, other: Path) -> None:
    """Copy the signed checkpoints of ``path`` into the log at ``other`` (a rewritten log)."""
    src = sqlite3.connect(path)
    rows = src.execute("SELECT size, root, note FROM checkpoints").fetchall()
    src.close()
    dst = sqlite3.connect(other)
    dst.executemany("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", rows)
    dst.commit()
    dst.close()


def test_refuses_to_sign_a_rewritten_log(tmp_path: Path, signer: Signer):
    """Attack: history rewritten under the node; the signer must not sign the fork."""
    honest = open_log(tmp_path / "honest.db", signer)
    honest.append(entries(10))
    honest.sign_current()
    rewritten = SqliteLog(tmp_path / "rewritten.db")
    rewritten.append(entries(12, tag="forged"))
    rewritten.close()
    _forge_history(tmp_path / "honest.db", tmp_path / "rewritten.db")
    forked = open_log(tmp_path / "rewritten.db", signer)
    with pytest.raises(ConflictError, match="not consistent"):
        forked.sign_current()
    with pytest.raises(ConflictError):
        forked.checkpoint_if_grown()


def test_refuses_to_sign_a_rolled_back_log(tmp_path: Path, signer: Signer):
    """Attack: the store is restored from an older backup; the signer must not go backwards."""
    honest = open_log(tmp_path / "honest.db", signer)
    honest.append(entries(10))
    honest.sign_current()
    older = SqliteLog(tmp_path / "older.db")
    older.append(entries(7))
    older.close()
    _forge_history(tmp_path / "honest.db", tmp_path / "older.db")
    with pytest.raises(ConflictError, match="refusing to sign size 7"):
        open_log(tmp_path / "older.db", signer).sign_current()


def test_refuses_to_sign_a_different_root_at_the_signed_size(tmp_path: Path, signer: Signer):
    honest = open_log(tmp_path / "honest.db", signer)
    honest.append(entries(10))
    honest.sign_current()
    other = SqliteLog(tmp_path / "other.db")
    other.append(entries(10, tag="x"))
    other.close()
    _forge_history(tmp_path / "honest.db", tmp_path / "other.db")
    with pytest.raises(ConflictError):
        open_log(tmp_path / "other.db", signer).sign_current()


def test_receipt_signs_a_covering_checkpoint_when_needed(tmp_path: Path, signer: Signer):
    log = open_log(tmp_path / "log.db", signer)
    log.append(entries(4))
    log.sign_current()
    log.append(entries(4, tag="late"))
    receipt = parse_receipt(log.receipt(6), Limits())
    cp = verify_receipt(
        receipt, entry=b"late2", origin=ORIGIN, verifiers=[signer.verifier()], limits=Limits()
    )
    assert cp.size == 8


def test_proofs_at_past_sizes_verify(tmp_path: Path, signer: Signer):
    log = open_log(tmp_path / "log.db", signer)
    data = entries(300)
    log.append(data)
    for size in (1, 2, 255, 256, 257, 300):
        root = log.root_at(size)
        assert root == ref.mth(data[:size])
        verify_inclusion(
            leaf_hash(data[size - 1]), size - 1, size, log.inclusion_proof(size - 1, size), root
        )
        verify_consistency(1, size, log.consistency_proof(1, size), log.root_at(1), root)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda log: log.inclusion_proof(10, 10), "index"),
        (lambda log: log.inclusion_proof(-1, 5), "index"),
        (lambda log: log.inclusion_proof(0, 11), "size"),
        (lambda log: log.consistency_proof(6, 5), "from"),
        (lambda log: log.consistency_proof(0, 11), "to"),
        (lambda log: log.root_at(11), "size"),
        (lambda log: log.entry(10), "index"),
        (lambda log: log.receipt(10), "index"),
    ],
)
def test_out_of_range_parameters_are_named(tmp_path: Path, signer: Signer, call, parameter: str):
    log = open_log(tmp_path / "log.db", signer)
    log.append(entries(10))
    with pytest.raises(InvalidInputError) as info:
        call(log)
    assert info.value.parameter == parameter


def test_tiles_that_do_not_exist_yet_are_not_found(tmp_path: Path, signer: Signer):
    log = open_log(tmp_path / "log.db", signer)
    log.append(entries(10))
    assert decode_entry_bundle(log.tile(TileId(0, 0, 10, "entries"))) == entries(10)
    with pytest.raises(NotFoundError):
        log.tile(TileId(0, 0, 11, "entries"))
    with pytest.raises(NotFoundError):
        log.tile(TileId(0, 0))
    with pytest.raises(NotFoundError):
        log.tile(TileId(1, 0, 1))
