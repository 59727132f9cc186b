"""``SqliteLedger.prove_state`` reads the latest block and the proof in one snapshot (ADR 0024).

Deterministic: a block is committed *between* the route's two reads (the latest header, then
the proof), by wrapping ``SqliteState.prove``. The answer must still pair the proof with the
header whose ``state_root`` it leads to (the block before the commit); the next call sees the
new block and the new value. Without the snapshot the proof would lead to the new root while
the header is the old one. The block is built on another thread, as the node's builder does
(each thread reads on its own connection).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from medledger.adapters.sqlite_state import SqliteState
from medledger.bootstrap import Node
from medledger.core.ledger.block import BlockHeader
from medledger.core.state.smt import StateProof, hash_key, hash_value, verify_proof

from .test_ledger_node import HOSPITAL, NURSE, commit, home, node, tx  # noqa: F401 - fixtures


def _verified(n: Node, key: str) -> tuple[BlockHeader, bytes | None]:
    block, value, proof = n.ledger.prove_state(key)
    header = BlockHeader.from_json(json.loads(block.header))
    value_hash = None if value is None else hash_value(value)
    verify_proof(header.state_root, hash_key(key), value_hash, proof)
    return header, value


def test_a_block_committed_between_the_reads_does_not_split_header_and_proof(
    node: Node,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = f"participant/{NURSE.did}"
    before, value = _verified(node, key)
    assert value is None
    original: Callable[..., tuple[bytes | None, StateProof]] = SqliteState.prove
    committed: list[Any] = []

    def commit_then_prove(self: SqliteState, k: str) -> tuple[bytes | None, StateProof]:
        if not committed:  # the builder commits a block right after the header was read
            payload = {
                "did": NURSE.did,
                "kind": "practitioner",
                "roles": ["nurse"],
                "organization": HOSPITAL.did,
            }
            builder = threading.Thread(
                target=lambda: committed.append(
                    commit(node, tx(HOSPITAL, "participant.register", payload))
                )
            )
            builder.start()
            builder.join()
        return original(self, k)

    monkeypatch.setattr(SqliteState, "prove", commit_then_prove)
    header, value = _verified(node, key)  # raises ProofError if the pair is split
    assert committed and committed[0][0].ok
    assert header.height == before.height and value is None  # the snapshot's view, whole
    after, value = _verified(node, key)
    assert after.height == before.height + 1 and value is not None
    assert json.loads(value)["did"] == NURSE.did
