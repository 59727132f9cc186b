"""The node the records benchmark runs against: the demo network's home, on disk, running.

1. ``create_demo_home`` (three authority organizations; this node is the hospital) and
   ``load_demo_keys``; ``open_node`` + ``Node.start``: the block builder on its own thread
   and the node's X25519 encryption key published, exactly as ``medledger serve`` does;
2. before any clock starts, the hospital registers the practitioner ``dr-house`` and the five
   demo patients (one block), then every patient publishes its encryption key (one block),
   so a record put wraps its data key twice: to the node and to the patient;
3. the consents key releases are decided against (``records_consents``): more organizations
   and practitioners registered, then each patient grants 100 consents, ``dr-house``'s
   ``permit_to`` among them.

Not handled here: what is timed (``records_store``, ``records_release``, ``records_put``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from benchmarks.records_consents import REQUESTER_AT, Signed, consent_id, grant_all, register_cast
from medledger.bootstrap import Node, open_node
from medledger.client import new_transaction
from medledger.core.crypto.key_wrap import X25519KeyPair
from medledger.core.identity.keys import ParticipantKey, encryption_keypair
from medledger.entrypoints.cli.demo import PATIENTS, create_demo_home, load_demo_keys

PRACTITIONER = "dr-house"  # of the hospital, the organization this node is
COMMIT_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class BenchNode:
    """The running node and the identities the benchmark acts as."""

    node: Node
    node_encryption: X25519KeyPair
    practitioner: str  # did:key of a practitioner of the record's author organization
    practitioner_consent: str  # the id of each patient's consent granting the practitioner
    patients: tuple[str, ...]  # did:keys, each with a published encryption key
    patient_keys: dict[str, bytes]  # did -> X25519 public key
    session_private: X25519PrivateKey  # a requester's ephemeral session key (key release)

    @property
    def session_public(self) -> bytes:
        return self.session_private.public_key().public_bytes_raw()


def _commit_all(node: Node, signed: list[Signed]) -> None:
    """Submit every transaction, then wait for all: they share a block."""
    now = int(time.time())
    ids = []
    for key, tx_type, payload in signed:
        stx = new_transaction(
            key, network=node.genesis.network, tx_type=tx_type, payload=payload, now_s=now
        )
        ids.append(node.ledger.submit(stx.wire, now).tx_id)
    for tx_id in ids:
        status = node.ledger.wait(tx_id, COMMIT_WAIT_S)
        if status.status != "committed" or not status.ok:
            raise RuntimeError(f"setup transaction failed: {status.reason} {status.message}")


def _register(node: Node, keys: dict[str, ParticipantKey]) -> None:
    hospital = keys["hospital"]
    registrations: list[Signed] = [
        (hospital, "participant.register",
         {"did": keys[PRACTITIONER].did, "kind": "practitioner", "roles": ["physician"],
          "organization": hospital.did}),
    ]  # fmt: skip
    registrations += [
        (hospital, "participant.register", {"did": keys[p].did, "kind": "patient", "roles": []})
        for p in PATIENTS
    ]
    _commit_all(node, registrations)
    _commit_all(
        node,
        [
            (
                keys[p],
                "participant.set_encryption_key",
                {"enc_key": encryption_keypair(keys[p]).public_key.hex()},
            )
            for p in PATIENTS
        ],
    )


@contextlib.contextmanager
def bench_node(home: Path) -> Iterator[BenchNode]:
    """A demo home at ``home``, its node running with the cast registered; closed on exit."""
    create_demo_home(home, port=8000)  # never served: the port is not opened
    keys = load_demo_keys(home)
    node = open_node(home)
    try:
        node.start()
        _register(node, keys)

        def commit(signed: list[Signed]) -> None:
            _commit_all(node, signed)

        register_cast(keys["hospital"], commit)
        grant_all([keys[p] for p in PATIENTS], keys[PRACTITIONER].did,
                  int(time.time() * 1000), commit)  # fmt: skip
        yield BenchNode(
            node=node,
            node_encryption=encryption_keypair(node.key),
            practitioner=keys[PRACTITIONER].did,
            practitioner_consent=consent_id(REQUESTER_AT),
            patients=tuple(keys[p].did for p in PATIENTS),
            patient_keys={keys[p].did: encryption_keypair(keys[p]).public_key for p in PATIENTS},
            session_private=X25519PrivateKey.generate(),
        )
    finally:
        node.close()
