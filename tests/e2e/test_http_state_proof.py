"""``GET /ledger/state-proof`` and ``GET /ledger/genesis`` over real HTTP (ADR 0024).

Checked as the browser checks them, with the Python core: the proof verifies
(``smt.verify_proof``) against the state root of the block header served beside it, the
header's signature verifies under its proposer's did:key, and the proposer is an authority of
the genesis the node serves (whose hash is block 0's ``prev``). A record's head is proven at
its latest version and, after a tombstone, tombstoned; a key that was never written has a
verified proof of absence; a proof and its header agree while blocks are being committed;
keys outside the public prefixes, too long or malformed are refused with 400.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any

import pytest

from medledger.core.identity.keys import ParticipantKey, verify_signature
from medledger.core.ledger.block import BlockHeader
from medledger.core.ledger.genesis import genesis_hash, parse_genesis
from medledger.core.state.smt import Leaf, StateProof, hash_key, hash_value, verify_proof
from medledger.errors import ProofError

from .conftest import DemoLedgerNode
from .test_http_ledger_api import (
    anchor_payload,
    assert_error,
    commit,
    get,
    register_patient,
    register_practitioner,
)


@pytest.fixture(scope="module")
def practitioner(demo_ledger_node: DemoLedgerNode) -> ParticipantKey:
    return register_practitioner(demo_ledger_node)


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def verified(node: DemoLedgerNode, key: str) -> tuple[bytes | None, BlockHeader]:
    """The proven value of ``key`` (None: proven absent) and the header it is proven under."""
    r = get(node, "/ledger/state-proof", key=key)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["key"] == key
    block = body["block"]
    header = BlockHeader.from_json(block["header"])
    assert header.height == block["height"]
    assert header.hash().hex() == block["hash"]
    genesis = parse_genesis(get(node, "/ledger/genesis").content)
    assert header.proposer in {a.did for a in genesis.authorities}
    verify_signature(header.proposer, header.signing_bytes(), bytes.fromhex(block["signature"]))
    leaf = body["proof"]["leaf"]
    proof = StateProof(
        tuple(_b64(s) for s in body["proof"]["siblings"]),
        None if leaf is None else Leaf(_b64(leaf["key_hash"]), _b64(leaf["value_hash"])),
    )
    value = None if body["value"] is None else _b64(body["value"])
    verify_proof(
        header.state_root, hash_key(key), None if value is None else hash_value(value), proof
    )
    return value, header


def test_genesis_is_served_as_stored_and_is_what_block_zero_builds_on(
    demo_ledger_node: DemoLedgerNode,
) -> None:
    r = get(demo_ledger_node, "/ledger/genesis")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    genesis = parse_genesis(r.content)
    assert genesis.to_json() == r.content  # canonical, byte for byte as the ledger stores it
    block0 = BlockHeader.from_json(get(demo_ledger_node, "/ledger/blocks/0").json()["header"])
    assert block0.prev == genesis_hash(genesis)
    assert genesis.network == demo_ledger_node.network


def test_a_record_head_is_proven_latest_then_tombstoned_against_a_signed_header(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
) -> None:
    node = demo_ledger_node
    patient = register_patient(node)
    record_id = f"obs-{secrets.token_hex(4)}"
    key = f"record/{patient.did}/{record_id}"
    assert verified(node, key)[0] is None  # not yet anchored: proven absent

    assert commit(
        node, practitioner, "record.anchor", anchor_payload(patient.did, record_id, 1, None)
    )["ok"]
    value, header = verified(node, key)
    assert value is not None
    head = json.loads(value)
    assert (head["version"], head["tombstoned"]) == (1, False)
    v2 = anchor_payload(patient.did, record_id, 2, head["hash"])
    assert commit(node, practitioner, "record.anchor", v2)["ok"]
    value, later = verified(node, key)
    assert value is not None and json.loads(value)["version"] == 2
    assert later.height > header.height and later.log_size > header.log_size

    tombstone = {"patient": patient.did, "record_id": record_id, "reason": "erasure"}
    assert commit(node, patient, "record.tombstone", tombstone)["ok"]
    value, _ = verified(node, key)
    assert value is not None
    head = json.loads(value)
    assert (head["version"], head["tombstoned"]) == (2, True)


def test_the_proof_of_an_older_head_or_another_value_does_not_verify(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
) -> None:
    """What a node hiding a newer version would have to serve: the old head's bytes under the
    new header's root, which the proof refuses; and a wrong sibling, refused as well."""
    node = demo_ledger_node
    patient = register_patient(node)
    record_id = f"obs-{secrets.token_hex(4)}"
    key = f"record/{patient.did}/{record_id}"
    assert commit(
        node, practitioner, "record.anchor", anchor_payload(patient.did, record_id, 1, None)
    )["ok"]
    old, _ = verified(node, key)
    assert old is not None
    v2 = anchor_payload(patient.did, record_id, 2, json.loads(old)["hash"])
    assert commit(node, practitioner, "record.anchor", v2)["ok"]
    body = get(node, "/ledger/state-proof", key=key).json()
    root = BlockHeader.from_json(body["block"]["header"]).state_root
    leaf = body["proof"]["leaf"]
    siblings = tuple(_b64(s) for s in body["proof"]["siblings"])
    proof = StateProof(siblings, Leaf(_b64(leaf["key_hash"]), _b64(leaf["value_hash"])))
    with pytest.raises(ProofError):
        verify_proof(root, hash_key(key), hash_value(old), proof)
    with pytest.raises(ProofError):
        verify_proof(root, hash_key(key), None, proof)  # nor absent
    assert siblings  # the demo state has many keys
    flipped = bytes([siblings[0][0] ^ 1]) + siblings[0][1:]
    with pytest.raises(ProofError):
        verify_proof(
            root,
            hash_key(key),
            _b64(leaf["value_hash"]),
            StateProof((flipped, *siblings[1:]), proof.leaf),
        )


def test_a_key_never_written_has_a_verified_proof_of_absence(
    demo_ledger_node: DemoLedgerNode,
) -> None:
    patient = register_patient(demo_ledger_node)
    for record_id in ("never-written", "x" * 64):
        value, _ = verified(demo_ledger_node, f"record/{patient.did}/{record_id}")
        assert value is None


def test_proof_and_header_agree_while_blocks_commit(
    demo_ledger_node: DemoLedgerNode, practitioner: ParticipantKey
) -> None:
    """One read snapshot: the header's state root is the proof's root even when a block
    commits between the two reads (the route would otherwise pair a new root with an old
    header now and then)."""
    node = demo_ledger_node
    patient = register_patient(node)
    record_id = f"obs-{secrets.token_hex(4)}"
    key = f"record/{patient.did}/{record_id}"
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            prev = None
            for version in range(1, 13):
                payload = anchor_payload(patient.did, record_id, version, prev)
                assert commit(node, practitioner, "record.anchor", payload)["ok"]
                prev = json.loads(get(node, f"/ledger/records/{patient.did}/{record_id}").content)[
                    "head"
                ]["hash"]
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    heights: set[int] = set()
    versions: list[int] = []
    while not done.is_set():
        value, header = verified(node, key)  # raises if the pair disagrees
        heights.add(header.height)
        if value is not None:
            versions.append(json.loads(value)["version"])
    thread.join()
    assert not failures, failures
    assert len(heights) > 1 and versions == sorted(versions)
    value, _ = verified(node, key)
    assert value is not None and json.loads(value)["version"] == 12


@pytest.mark.parametrize(
    "key",
    [
        "participant/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "nonce/anything",
        "consent/x",
        "records/x",
        "record",
        "",
        "record/" + "a" * 506,  # 513 characters
        "record/with space",
        "record/é",
    ],
)
def test_keys_outside_the_public_prefixes_or_malformed_are_refused(
    demo_ledger_node: DemoLedgerNode, key: str
) -> None:
    assert_error(get(demo_ledger_node, "/ledger/state-proof", key=key), 400, "invalid_input", "key")


def test_a_missing_key_parameter_is_refused(demo_ledger_node: DemoLedgerNode) -> None:
    assert_error(get(demo_ledger_node, "/ledger/state-proof"), 400, "invalid_input", "key")


def test_the_longest_key_allowed_is_served(demo_ledger_node: DemoLedgerNode) -> None:
    key = "record/" + "a" * 505  # 512 characters
    assert verified(demo_ledger_node, key)[0] is None
