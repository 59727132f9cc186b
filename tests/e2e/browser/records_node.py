"""A real node, really served, holding encrypted records, for the browser key-release tests.

The demo network's home on disk (SQLite ledger, log, vault and audit store; blobs as files),
opened in this process with its block builder, and served by uvicorn on a loopback port: the
browser talks real HTTP to the node's own routes (``/records/key-release``,
``/blobs/{cid}``, ``/ledger/records/...``), while the test can ask the same node in
Python (``node.records.read``, ``node.audit.list_events``) for the answers to compare.

Set-up, all signed transactions committed on the ledger: the hospital registers Dr House, the
clinic Dr Clinic and Dr ER (an emergency physician), the hospital patient-1; patient-1
consents to the hospital's practitioners for TREAT (``c-hospital``); the node (the hospital's
custodian) puts two versions of an Observation and one of another record (whose anchor a
dishonest node could try to pass off as the first's); and the hospital signs a second anchor
of version 2 with another commitment, which the ledger refuses (``version_conflict``) but logs
as a failed transaction: a signed, logged anchor that anchored nothing. Nothing is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from medledger.bootstrap import Node, open_node
from medledger.client import new_transaction
from medledger.core.cid import cid_for
from medledger.core.consent.simple import permit_to
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import canonical_document
from medledger.core.note import format_verifier_key
from medledger.entrypoints.cli.demo import create_demo_home, load_demo_keys
from medledger.entrypoints.http.app import create_app

from ..conftest import free_port, submit_and_wait

RECORD_ID = "obs-temp"
OTHER_RECORD_ID = "obs-pulse"
CONSENT_ID = "c-hospital"
#: Two versions of a (synthetic) FHIR Observation, decimals and non-ASCII text included.
OBSERVATIONS: tuple[dict[str, Any], ...] = (
    {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "valueQuantity": {"value": 38.2, "unit": "Cel"},
        "note": [{"text": "Fièvre légère — synthetic demo data"}],
    },
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "valueQuantity": {"value": 36.6, "unit": "Cel"},
        "component": [{"valueQuantity": {"value": -3.25e-7}}],
    },
)


@dataclass(frozen=True)
class RecordsNode:
    url: str  # ends with "/"
    node: Node
    keys: dict[str, ParticipantKey]
    network: str
    refused_anchor_index: int  # the log index of the refused second anchor of version 2

    def did(self, name: str) -> str:
        return self.keys[name].did

    @property
    def log_key(self) -> str:
        """The log's verifier key, as the portal pins it at sign-in."""
        return format_verifier_key(self.node.log.verifier)


def _populate(node: Node, keys: dict[str, ParticipantKey]) -> int:
    """Everything above; returns the refused anchor's log index."""
    for name, org, role in (
        ("dr-house", "hospital", "physician"),
        ("dr-er", "clinic", "emergency-physician"),
        ("dr-clinic", "clinic", "physician"),
    ):
        payload = {
            "did": keys[name].did,
            "kind": "practitioner",
            "roles": [role],
            "organization": keys[org].did,
        }
        submit_and_wait(node, keys[org], "participant.register", payload)
    patient = keys["patient-1"].did
    submit_and_wait(node, keys["hospital"], "participant.register",
            {"did": patient, "kind": "patient", "roles": []})  # fmt: skip
    consent = permit_to(CONSENT_ID, patient, keys["hospital"].did)
    submit_and_wait(node, keys["patient-1"], "consent.grant", {"consent": consent.to_json()})
    for content in OBSERVATIONS:
        node.records.put(
            patient=patient,
            record_id=RECORD_ID,
            resource_type="Observation",
            content=canonical_document(content),
            now_s=int(time.time()),
        )
    pulse = {"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 72}}
    node.records.put(
        patient=patient,
        record_id=OTHER_RECORD_ID,
        resource_type="Observation",
        content=canonical_document(pulse),
        now_s=int(time.time()),
    )
    refused = {
        "patient": patient,
        "record_id": RECORD_ID,
        "resource_type": "Observation",
        "version": 2,
        "commitment": "ab" * 32,
        "cid": cid_for(b"not a sealed record"),
        "prev": "cd" * 32,
    }
    stx = new_transaction(
        keys["hospital"], network=node.genesis.network, tx_type="record.anchor",
        payload=refused, now_s=int(time.time()),
    )  # fmt: skip
    node.ledger.submit(stx.wire, int(time.time()))
    status = node.ledger.wait(stx.tx_id, 30)
    assert (status.ok, status.reason) == (False, "version_conflict"), status
    assert status.log_index is not None
    return int(status.log_index)


@contextmanager
def serve_records_node(home: Path) -> Iterator[RecordsNode]:
    """Create, populate and serve the node; stop the server and close the node after."""
    port = free_port()
    create_demo_home(home, port=port)
    node = open_node(home)
    try:
        node.start()
        keys = load_demo_keys(home)
        refused = _populate(node, keys)
        app = create_app(node, base_url=f"http://127.0.0.1:{port}")
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="records-browser-node", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        try:
            url = f"http://127.0.0.1:{port}/"
            yield RecordsNode(url, node, keys, node.genesis.network, refused)
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    finally:
        node.close()
