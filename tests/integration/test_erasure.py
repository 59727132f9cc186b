"""Erasure leaves nothing recoverable: the scan test.

A record whose FHIR content carries a unique random marker is written in two versions, with
records of other patients around it so the key vault's pages stay in use. The test obtains
what an attacker with the disk would need -- each version's data key (through a key release to
a test session key) and salt -- then the patient erases the record and the node is closed.
Every file under the node's home (SQLite databases and their -wal/-shm files, blobs, key files,
anything) is then scanned for the marker, the data keys and the salts, raw and as hex and
base64: none may be found, right after the erasure (as if the node were killed then) and
after a clean close. The ledger keeps only the tombstone, and still verifies end to end.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medledger.bootstrap import open_node
from medledger.client import new_transaction
from medledger.core.access.gate import AccessRequest
from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, x25519_from_seed
from medledger.core.identity.keys import ParticipantKey, encryption_keypair
from medledger.entrypoints.cli.demo import DEMO_PASSPHRASE, create_demo_home, load_demo_keys
from medledger.errors import NotFoundError

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture


def forms(secret: bytes) -> dict[str, bytes]:
    """The ways a secret could sit in a file: raw, hex, base64 (standard and URL-safe)."""
    b64 = base64.b64encode(secret)
    return {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": b64.rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(secret).rstrip(b"="),
    }


def every_file(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def scan(root: Path, needles: dict[str, bytes]) -> list[str]:
    """Where any needle (name -> secret) occurs in any file under ``root``, in any form."""
    found = []
    files = list(every_file(root))
    assert files
    for path in files:
        data = path.read_bytes()
        for name, secret in needles.items():
            for form, needle in forms(secret).items():
                if needle in data:
                    found.append(f"{name} ({form}) in {path.relative_to(root)}")
    return found


def test_erasure_leaves_no_content_key_or_salt_in_any_file(
    tmp_path: Path, medledger_cli: MedledgerCli
):
    home = tmp_path / "home"
    create_demo_home(home, port=8000)
    keys = load_demo_keys(home)
    node = open_node(home, passphrase=DEMO_PASSPHRASE)
    node.start()

    def submit(signer: ParticipantKey, tx_type: str, payload: dict[str, object]) -> None:
        now = int(time.time())
        stx = new_transaction(
            signer, network=node.genesis.network, tx_type=tx_type, payload=payload, now_s=now
        )
        node.ledger.submit(stx.wire, now)
        status = node.ledger.wait(stx.tx_id, 10.0)
        assert status.ok, status

    patient, neighbour = keys["patient-1"], keys["patient-2"]
    for person in (patient, neighbour):
        submit(keys["hospital"], "participant.register", {"did": person.did, "kind": "patient"})
    # The patient publishes an encryption key, so the vault also holds a wrap to the patient.
    enc_key = encryption_keypair(patient).public_key.hex()
    submit(patient, "participant.set_encryption_key", {"enc_key": enc_key})

    marker = secrets.token_hex(12)
    record_id = f"obs-{secrets.token_hex(4)}"

    def put(owner: ParticipantKey, rid: str, text: str) -> None:
        content = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": text},
            "valueQuantity": {"value": 98.6, "unit": "degF"},
        }
        node.records.put(
            patient=owner.did,
            record_id=rid,
            resource_type="Observation",
            content=json.dumps(content, sort_keys=True).encode(),
            now_s=int(time.time()),
        )

    put(neighbour, "obs-before", "a neighbour's record")
    put(patient, record_id, f"temperature {marker} v1")
    put(patient, record_id, f"temperature {marker} v2")
    put(neighbour, "obs-after", "another neighbour's record")

    # What an attacker would need: each version's data key and salt.
    needles: dict[str, bytes] = {"marker": marker.encode()}
    for version in (1, 2):
        session = x25519_from_seed(secrets.token_bytes(32))
        request = AccessRequest(patient.did, patient.did, record_id, "key-release", "PATRQT")
        release = node.records.release_key(
            request, version, session.public_key, int(time.time() * 1000)
        )
        info = WrapInfo(record_id, version, patient.did, release.grant)
        needles[f"data key v{version}"] = unwrap_key(release.wrap, session.private_key, info)
        needles[f"salt v{version}"] = release.salt
    read = AccessRequest(patient.did, patient.did, record_id, "read", "PATRQT")
    assert marker.encode() in node.records.read(read, None, int(time.time() * 1000)).content

    # The scanner does find key material while it exists (the salts, in the vault).
    before = scan(home, needles)
    assert any(hit.startswith("salt v1 (raw)") for hit in before), before
    assert any(hit.startswith("salt v2 (raw)") for hit in before), before

    erase = AccessRequest(patient.did, patient.did, record_id, "erase", "PATRQT")
    result = node.records.erase(erase, int(time.time() * 1000))
    # As if the node were killed right after the erasure returned: no -wal page image left.
    assert scan(home, needles) == []
    assert result["erased_versions"] == 2
    tombstone = node.ledger.status(bytes.fromhex(result["tombstone"]))
    assert (tombstone.status, tombstone.ok) == ("committed", True)
    head = json.loads(node.ledger.state_get(f"record/{patient.did}/{record_id}") or b"{}")
    assert head["tombstone"]["by"] == node.key.did  # the custodian, at the patient's request
    assert head["tombstone"]["reason"] == "erasure"
    with pytest.raises(NotFoundError):
        node.records.read(read, None, int(time.time() * 1000))
    neighbour_read = AccessRequest(neighbour.did, neighbour.did, "obs-after", "read", "PATRQT")
    assert b"neighbour" in node.records.read(neighbour_read, None, int(time.time() * 1000)).content
    node.close()
    assert scan(home, needles) == []

    for command in ("chain", "log"):
        verified = medledger_cli(command, "verify", "--home", str(home))
        assert verified.returncode == 0, verified.stderr
