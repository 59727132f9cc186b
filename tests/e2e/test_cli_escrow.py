"""An organization's emergency key escrow through the real CLI against a served node:
k custodian approvals on the ledger release the key; k-1 do not; misuse is refused."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from medledger.adapters.keystore import read_key_file
from medledger.client import LedgerClient, new_transaction

from .cli import DEMO_PASSPHRASE, ok, refused, run
from .conftest import DemoLedgerNode


@pytest.fixture(scope="module")
def escrow_world(demo_ledger_node: DemoLedgerNode, tmp_path_factory: pytest.TempPathFactory):
    node = demo_ledger_node
    keys = node.keys
    with LedgerClient(node.url) as client:
        for name, role in (
            ("officer-hospital", "privacy-officer"),
            ("dr-house", "physician"),
            ("nurse-joy", "nurse"),
        ):
            payload = {
                "did": keys[name].did,
                "kind": "practitioner",
                "roles": [role],
                "organization": keys["hospital"].did,
            }
            stx = new_transaction(
                keys["hospital"],
                network=node.network,
                tx_type="participant.register",
                payload=payload,
                now_s=int(time.time()),
            )
            result = client.submit(stx)
            assert result["ok"] or result["reason"] == "already_registered", result
    work = tmp_path_factory.mktemp("escrow")
    ok(run("keys", "new", "--out", str(work / "escrowed.key")))
    return node, work


def test_two_of_three_custodian_approvals_release_the_key(escrow_world) -> None:
    node, work = escrow_world
    k = node.home / "demo-keys"

    def escrow(command: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`medledger escrow COMMAND` against the node, signed with a demo user's key."""
        return run(
            "escrow",
            command,
            "--node",
            node.url,
            "--key",
            str(k / f"{key}.key"),
            "--escrow-id",
            "esc-test-0001",
            *args,
        )

    request = ("--request-id", "req-00001")
    custodians = [node.keys[n].did for n in ("officer-hospital", "dr-house", "nurse-joy")]
    ok(
        escrow(
            "create",
            "hospital",
            "--escrowed-key",
            str(work / "escrowed.key"),
            *[f"--custodian={c}" for c in custodians],
            "--threshold",
            "2",
            "--out-dir",
            str(work),
        )
    )
    shares = {
        c: work / f"esc-test-0001-share-{i + 1}.txt" for i, c in enumerate(sorted(custodians))
    }
    assert all(p.exists() and (p.stat().st_mode & 0o077) == 0 for p in shares.values())
    officer = ("--share", str(shares[node.keys["officer-hospital"].did]))
    house = ("--share", str(shares[node.keys["dr-house"].did]))

    # An ordinary practitioner may not ask for the key; an authority (the clinic) may.
    refused(escrow("request", "nurse-joy", "--request-id", "req-nurse-1"), "not_allowed")
    ok(escrow("request", "clinic", *request))
    # A custodian with someone else's share file is stopped before anything is submitted.
    refused(escrow("approve", "dr-house", *request, *officer), "not yours")
    # Someone who is not a custodian cannot approve.
    refused(escrow("approve", "dr-clinic", *request, *officer), "")
    ok(escrow("approve", "officer-hospital", *request, *officer))
    # k - 1 approvals: nothing to recover yet.
    refused(
        escrow("recover", "clinic", *request, "--out", str(work / "early.key")), "1 of 2 approvals"
    )
    assert not (work / "early.key").exists()
    # The same custodian cannot approve twice.
    refused(escrow("approve", "officer-hospital", *request, *officer), "already_approved")
    ok(escrow("approve", "dr-house", *request, *house))
    # Only the requester can open the released shares.
    refused(escrow("recover", "lab", *request, "--out", str(work / "stolen.key")), "someone else")
    out = ok(escrow("recover", "clinic", *request, "--out", str(work / "recovered.key")))
    escrowed = read_key_file(work / "escrowed.key", DEMO_PASSPHRASE)
    recovered = read_key_file(work / "recovered.key", DEMO_PASSPHRASE)
    assert recovered.did == escrowed.did
    assert escrowed.did in out
    data = b"signed with the recovered key"
    assert recovered.sign(data) == escrowed.sign(data)


def test_recover_refuses_to_overwrite_a_key(escrow_world) -> None:
    node, work = escrow_world
    target = Path(work / "exists.key")
    target.write_text("x")
    refused(
        run(
            "escrow",
            "recover",
            "--node",
            node.url,
            "--key",
            str(node.home / "demo-keys" / "clinic.key"),
            "--escrow-id",
            "esc-test-0001",
            "--request-id",
            "req-00001",
            "--out",
            str(target),
        ),
        "refusing to overwrite",
    )
