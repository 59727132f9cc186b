"""``medledger.client.LedgerClient`` against a served demo network: what an integrator's code
sees, including the node's refusals as the package's own exception tree with ``.reason``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from medledger.adapters.keystore import generate_key
from medledger.client import LedgerClient, new_transaction
from medledger.config import Limits
from medledger.core.checkpoint import open_checkpoint
from medledger.core.identity.keys import ParticipantKey, verify_signature
from medledger.core.ledger.block import BlockHeader
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.envelope import encode_signature
from medledger.core.ledger.tx import SignedTransaction
from medledger.core.note import parse_verifier_key
from medledger.core.receipt import parse_receipt, verify_receipt
from medledger.errors import (
    InvalidInputError,
    MedledgerError,
    NetworkError,
    NotFoundError,
    TooLargeError,
)

from .conftest import DemoLedgerNode, free_port

DEMO_ORIGIN = "demo.medledger.local/log"


@pytest.fixture
def client(demo_ledger_node: DemoLedgerNode) -> Iterator[LedgerClient]:
    with LedgerClient(demo_ledger_node.url, timeout_s=30) as c:
        yield c


def sign(
    node: DemoLedgerNode, key: ParticipantKey, tx_type: str, payload: dict[str, JSON], **kw: Any
) -> SignedTransaction:
    kw.setdefault("network", node.network)
    return new_transaction(key, tx_type=tx_type, payload=payload, now_s=int(time.time()), **kw)


def patient_registration(node: DemoLedgerNode) -> SignedTransaction:
    payload: dict[str, JSON] = {"did": generate_key().did, "kind": "patient", "roles": []}
    return sign(node, node.keys["hospital"], "participant.register", payload)


def test_submit_waits_for_the_commit_and_returns_a_verifiable_receipt(
    demo_ledger_node: DemoLedgerNode, client: LedgerClient
):
    node = demo_ledger_node
    assert client.network() == node.network
    stx = patient_registration(node)
    result = client.submit(stx)
    assert (result["status"], result["ok"], result["tx_id"]) == ("committed", True, stx.tx_id.hex())

    verifier = parse_verifier_key(client.verifier_key())
    receipt = parse_receipt(result["receipt"].encode(), Limits())
    assert receipt.extra is not None
    assert stx.wire in receipt.extra
    verify_receipt(
        receipt, entry=receipt.extra, origin=DEMO_ORIGIN, verifiers=[verifier], limits=Limits()
    )
    # The log serves a receipt for the same index on demand, and it verifies too.
    again = parse_receipt(client.receipt(result["log_index"]), Limits())
    assert again.index == result["log_index"]
    verify_receipt(
        again, entry=receipt.extra, origin=DEMO_ORIGIN, verifiers=[verifier], limits=Limits()
    )
    checkpoint = open_checkpoint(client.checkpoint(), DEMO_ORIGIN, [verifier], Limits())
    assert checkpoint.size > result["log_index"]


def test_transaction_block_participant_and_record_reads(
    demo_ledger_node: DemoLedgerNode, client: LedgerClient
):
    node = demo_ledger_node
    stx = patient_registration(node)
    height = client.submit(stx)["height"]
    patient = str(stx.tx.payload["did"])

    tx = client.transaction(stx.tx_id.hex())
    assert tx["status"] == "committed"
    assert tx["transaction"] == json.loads(stx.wire)

    block = client.block(height)
    assert stx.tx_id.hex() in [t["tx_id"] for t in block["transactions"]]
    header = BlockHeader.from_json(block["header"])
    verify_signature(header.proposer, header.signing_bytes(), bytes.fromhex(block["signature"]))
    assert client.block()["height"] >= height

    assert client.participant(patient)["kind"] == "patient"

    payload: dict[str, JSON] = {
        "patient": patient,
        "record_id": "client-record",
        "resource_type": "Condition",
        "version": 1,
        "commitment": "ab" * 32,
        "cid": "b" + "a" * 58,
        "prev": None,
    }
    assert client.submit(sign(node, node.keys["lab"], "record.anchor", payload))["ok"] is True
    record = client.record(patient, "client-record")
    assert (record["head"]["version"], record["head"]["author"]) == (1, node.keys["lab"].did)
    assert [v["commitment"] for v in record["versions"]] == ["ab" * 32]


def test_submit_without_waiting_returns_the_pending_transaction(
    demo_ledger_node: DemoLedgerNode, client: LedgerClient
):
    stx = patient_registration(demo_ledger_node)
    result = client.submit(stx, wait=False)
    assert result["tx_id"] == stx.tx_id.hex()
    assert result["status"] in ("pending", "committed")
    assert "receipt" not in result or result["status"] == "committed"
    # The node remembers it either way: the same envelope again is a replay.
    with pytest.raises(InvalidInputError) as refused:
        client.submit(stx, wait=False)
    assert refused.value.reason == "replayed_nonce"


def test_a_refused_transaction_raises_with_the_nodes_reason(
    demo_ledger_node: DemoLedgerNode, client: LedgerClient
):
    node = demo_ledger_node
    stx = patient_registration(node)
    sig = encode_signature(stx.signature)
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    forged = stx.wire.replace(sig.encode(), flipped.encode())
    with pytest.raises(InvalidInputError) as refused:
        client.submit(forged)
    assert refused.value.reason == "bad_signature"
    assert refused.value.parameter == "sig"
    assert isinstance(refused.value, MedledgerError)

    other = sign(node, node.keys["hospital"], "participant.register", {}, network="elsewhere")
    with pytest.raises(InvalidInputError) as refused:
        client.submit(other)
    assert refused.value.reason == "wrong_network"

    with pytest.raises(TooLargeError) as too_large:
        client.submit(b"{" + b" " * 70_000 + b"}")
    assert too_large.value.reason == "oversize"

    with pytest.raises(NotFoundError) as missing:
        client.transaction("00" * 32)
    assert missing.value.reason == "not_found"

    with pytest.raises(InvalidInputError) as bad:
        client.participant("did:key:nope")
    assert (bad.value.reason, bad.value.parameter) == ("invalid_input", "did")


def test_a_contract_refusal_is_a_committed_result_not_an_exception(
    demo_ledger_node: DemoLedgerNode, client: LedgerClient
):
    stranger = generate_key()
    payload: dict[str, JSON] = {"did": generate_key().did, "kind": "patient", "roles": []}
    result = client.submit(sign(demo_ledger_node, stranger, "participant.register", payload))
    assert (result["status"], result["ok"]) == ("committed", False)
    assert result["reason"] == "sender_not_registered"


def test_an_unreachable_node_is_a_network_error():
    with LedgerClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as unreachable:
        with pytest.raises(NetworkError):
            unreachable.block()
        with pytest.raises(NetworkError):
            unreachable.submit(b"{}")
