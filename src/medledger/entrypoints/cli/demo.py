"""The demo network `make run` starts: three authority organizations, practitioners and
pseudonymous patients, records anchored, consents granted and revoked, and access attempts
(permitted, denied, break-glass) logged as access events with receipts.

Patients 2-5 let the hospital's staff read (consent to the hospital); patient-2 also lets the
clinic. At seeding the demo plays issue 5's story for ``patient-1``: the patient grants
``dr-house``; Dr House reads (permitted); ``dr-clinic`` is denied; the patient revokes; Dr
House is denied; ``dr-er`` breaks the glass with a justification (flagged, queued for the
privacy officer). The patient can then list it all and verify every receipt with the CLI
(``make run`` prints how).

Everything here is synthetic and says so: organization names say "Demo", patients are random
did:keys named "Demo Patient n", and records are FHIR resources tagged ``synthetic`` with
made-up values; they are written through the FHIR layer like real ones (encrypted, off-chain
by CID, anchored by this node, indexed for search, each with its Provenance).
The demo keys are written to ``<home>/demo-keys/`` under the passphrase ``medledger-demo``
so the CLI can sign as any demo user.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool

from medledger.adapters.keystore import generate_key, read_key_file, write_key_file
from medledger.bootstrap import Node, init_home
from medledger.client import new_transaction
from medledger.core.access.gate import AccessRequest
from medledger.core.auth.principal import Principal
from medledger.core.auth.scopes import parse_scopes
from medledger.core.consent.simple import permit_to
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.genesis import Authority, Genesis
from medledger.errors import AccessDeniedError, MedledgerError

log = logging.getLogger("medledger.demo")

DEMO_PASSPHRASE = "medledger-demo"  # noqa: S105 - published: demo keys protect nothing
DEMO_NETWORK = "medledger-demo"
DEMO_KEYS = "demo-keys"
ORGANIZATIONS = (
    ("hospital", "St. Demo General Hospital (demo)", "hospital"),
    ("clinic", "Demo Valley Clinic (demo)", "clinic"),
    ("lab", "Demo Diagnostics Lab (demo)", "lab"),
)
PRACTITIONERS = (
    ("dr-house", "hospital", "physician"),
    ("nurse-joy", "hospital", "nurse"),
    ("dr-er", "hospital", "emergency-physician"),
    ("officer-hospital", "hospital", "privacy-officer"),
    ("dr-clinic", "clinic", "physician"),
    ("lab-tech", "lab", "lab-technician"),
)
PATIENTS = ("patient-1", "patient-2", "patient-3", "patient-4", "patient-5")
RESOURCE_TYPES = ("Observation", "Condition", "MedicationRequest", "DiagnosticReport", "Encounter")


def create_demo_home(home: Path, *, port: int) -> None:
    """A node home for the demo network, plus every demo user's key file."""
    keys = {name: generate_key() for name, _, _ in ORGANIZATIONS}
    genesis = Genesis(
        network=DEMO_NETWORK,
        time_ms=int(time.time() * 1000),
        authorities=tuple(
            Authority(did=keys[name].did, name=label, roles=(role,))
            for name, label, role in ORGANIZATIONS
        ),
    )
    init_home(
        home,
        passphrase=DEMO_PASSPHRASE,
        origin="demo.medledger.local/log",
        port=port,
        genesis=genesis,
        node_key=keys["hospital"],
        store_passphrase=True,
    )
    for name in [*(p[0] for p in PRACTITIONERS), *PATIENTS]:
        keys[name] = generate_key()
    directory = home / DEMO_KEYS
    for name, key in keys.items():
        write_key_file(directory / f"{name}.key", key, DEMO_PASSPHRASE, n=2**14)


def demo_users(home: Path) -> tuple[tuple[str, str], ...]:
    """(name, did) of the demo's people (patients, practitioners, the privacy officer), read
    from their key files' public ``did`` field (no decryption): the portal offers them on its
    sign-in page. The organizations' authority keys are never offered."""
    directory = home / DEMO_KEYS
    people = (*(p[0] for p in PRACTITIONERS), *PATIENTS)
    return tuple(
        (name, str(json.loads((directory / f"{name}.key").read_text())["did"]))
        for name in people
        if (directory / f"{name}.key").exists()
    )


def load_demo_keys(home: Path) -> dict[str, ParticipantKey]:
    directory = home / DEMO_KEYS
    return {
        path.stem: read_key_file(path, DEMO_PASSPHRASE) for path in sorted(directory.glob("*.key"))
    }


def synthetic_cid(data: bytes) -> str:
    """CIDv1, raw codec, sha2-256, base32 (lowercase, no padding): what the blob store uses."""
    digest = hashlib.sha256(data).digest()
    raw = b"\x01\x55\x12\x20" + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


@dataclass
class DemoRecord:
    patient: str
    record_id: str
    resource_type: str
    version: int = 0


#: Marks every demo resource, so nothing synthetic passes for real data.
SYNTHETIC = {"system": "https://medledger.example/demo", "code": "synthetic"}


def synthetic_resource(resource_type: str, patient_id: str, rng: random.Random) -> dict[str, Any]:
    """A minimal valid FHIR R4 resource of ``resource_type`` about Patient/``patient_id``,
    tagged synthetic, with made-up values."""
    subject = {"reference": f"Patient/{patient_id}"}
    day = f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}"
    loinc = "http://loinc.org"
    bodies: dict[str, dict[str, Any]] = {
        "Observation": {
            "status": "final",
            "code": {"coding": [{"system": loinc, "code": "8867-4", "display": "Heart rate"}]},
            "subject": subject,
            "effectiveDateTime": day,
            "valueQuantity": {"value": rng.randint(55, 95), "unit": "beats/minute"},
        },
        "Condition": {
            "subject": subject,
            "code": {"text": "Synthetic demo condition"},
            "recordedDate": day,
        },
        "MedicationRequest": {
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Synthetic demo medication"},
            "subject": subject,
            "authoredOn": day,
        },
        "DiagnosticReport": {
            "status": "final",
            "code": {"coding": [{"system": loinc, "code": "58410-2", "display": "CBC panel"}]},
            "subject": subject,
            "effectiveDateTime": day,
        },
        "Encounter": {
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": subject,
            "period": {"start": day},
        },
    }
    return {"resourceType": resource_type, "meta": {"tag": [SYNTHETIC]}, **bodies[resource_type]}


class DemoNetwork:
    """Seeds the demo network and keeps transactions flowing, through the node's own intake."""

    def __init__(
        self, node: Node, keys: dict[str, ParticipantKey], seed: int | None = None
    ) -> None:
        self.node = node
        self.keys = keys
        self.rng = random.Random(seed)  # noqa: S311 - demo traffic, not cryptography
        self.records: list[DemoRecord] = []
        self.patient_ids: dict[str, str] = {}  # patient did -> its FHIR Patient id

    def submit(self, signer: str, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        stx = new_transaction(
            self.keys[signer],
            network=self.node.genesis.network,
            tx_type=tx_type,
            payload=payload,
            now_s=int(time.time()),
        )
        self.node.ledger.submit(stx.wire, int(time.time()))
        status = self.node.ledger.wait(stx.tx_id, 10.0)
        return {"ok": status.ok, "reason": status.reason}

    def is_registered(self, name: str) -> bool:
        return self.node.ledger_store.state_get(f"participant/{self.keys[name].did}") is not None

    def seed(self) -> None:
        """Register practitioners and patients and anchor a first record each (idempotent)."""
        for name, org, role in PRACTITIONERS:
            if not self.is_registered(name):
                payload = {
                    "did": self.keys[name].did,
                    "kind": "practitioner",
                    "roles": [role],
                    "organization": self.keys[org].did,
                }
                self.submit(org, "participant.register", payload)
        for name in PATIENTS:
            if not self.is_registered(name):
                payload = {"did": self.keys[name].did, "kind": "patient", "roles": []}
                self.submit("hospital", "participant.register", payload)
        for number, name in enumerate(PATIENTS, 1):
            self.patient_ids[self.keys[name].did] = self.patient_resource(name, number)
        for name in PATIENTS:
            self.new_record(self.keys[name].did, "Observation", "dr-house")
        self.story()

    def author(self, name: str) -> Principal:
        """A demo practitioner acting through the FHIR layer (what its token would allow)."""
        return Principal(did=self.keys[name].did, scopes=parse_scopes("user/*.cruds"))

    def patient_resource(self, name: str, number: int) -> str:
        """The demo patient's FHIR Patient (its did:key as identifier); its id."""
        did = self.keys[name].did
        existing = self.node.fhir_index.patient_resource(did)
        if existing is not None:
            return existing.record_id
        resource = {
            "resourceType": "Patient",
            "meta": {"tag": [SYNTHETIC]},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": did}],
            "name": [{"family": "Demo", "given": [f"Patient {number}"]}],
            "gender": self.rng.choice(["female", "male", "other"]),
            "birthDate": f"19{self.rng.randint(40, 99)}-0{self.rng.randint(1, 9)}-1{number}",
        }
        written = self.node.fhir.create(self.author("dr-house"), "Patient", resource, _now_ms())
        return str(written.resource["id"])

    def new_record(self, patient: str, resource_type: str, author: str) -> None:
        """A new synthetic FHIR resource, created through the FHIR layer: encrypted, kept
        off-chain by CID, anchored on the ledger, indexed for search, with its Provenance."""
        body = synthetic_resource(resource_type, self.patient_ids[patient], self.rng)
        written = self.node.fhir.create(self.author(author), resource_type, body, _now_ms())
        record = DemoRecord(patient, str(written.resource["id"]), resource_type, written.version)
        self.records.append(record)

    def grant(self, patient: str, consent_id: str, to: str) -> None:
        """``patient`` grants ``to`` (a practitioner or organization) access for treatment."""
        consent = permit_to(consent_id, self.keys[patient].did, self.keys[to].did)
        self.submit(patient, "consent.grant", {"consent": consent.to_json()})

    def read(
        self, who: str, record: DemoRecord, purpose: str = "TREAT", why: str | None = None
    ) -> bool:
        """A read attempt through the access gate: permitted or denied, logged either way."""
        request = AccessRequest(
            self.keys[who].did, record.patient, record.record_id, "read", purpose, why
        )
        try:
            self.node.records.read(request, None, int(time.time() * 1000))
        except AccessDeniedError:
            return False
        return True

    def story(self) -> None:
        """Issue 5's scenario for patient-1 (module docstring); run once per demo home."""
        record = self.records[0]
        suffix = secrets.token_hex(3)
        self.grant("patient-1", f"demo-house-{suffix}", "dr-house")
        self.grant("patient-2", f"demo-clinic-{suffix}", "clinic")
        for name in PATIENTS[1:]:  # the others let the hospital's staff read, for treatment
            self.grant(name, f"demo-hospital-{suffix}", "hospital")
        self.read("dr-house", record)
        self.read("dr-clinic", record)
        self.submit(
            "patient-1",
            "consent.revoke",
            {"patient": record.patient, "consent_id": f"demo-house-{suffix}"},
        )
        self.read("dr-house", record)
        self.read("dr-er", record, "ETREAT", "Demo: unconscious on arrival, allergies unknown")

    def new_version(self, record: DemoRecord, author: str) -> None:
        """A new version of a demo resource (FHIR update, If-Match its current version)."""
        body = synthetic_resource(record.resource_type, self.patient_ids[record.patient], self.rng)
        body["id"] = record.record_id
        written = self.node.fhir.update(
            self.author(author),
            record.resource_type,
            record.record_id,
            body,
            if_match=record.version,
            now_ms=_now_ms(),
        )
        record.version = written.version

    def step(self) -> None:
        """One tick of demo traffic: a new record, a new version, or a read attempt."""
        choice = self.rng.random()
        author = self.rng.choice(["dr-house", "nurse-joy", "dr-er"])
        if choice < 0.4 or not self.records:
            patient = self.keys[self.rng.choice(PATIENTS)].did
            self.new_record(patient, self.rng.choice(RESOURCE_TYPES), author)
        elif choice < 0.8:
            self.new_version(self.rng.choice(self.records), author)
        else:
            who = self.rng.choice(["dr-house", "nurse-joy", "dr-clinic", "lab-tech"])
            self.read(who, self.rng.choice(self.records))


def demo_feed(node: Node, *, every_s: float = 1.0) -> Callable[[], Coroutine[Any, Any, None]]:
    """A background task: seed the demo network, then keep transactions flowing."""

    async def run() -> None:
        network = DemoNetwork(node, await run_in_threadpool(load_demo_keys, node.home))
        try:
            await run_in_threadpool(network.seed)
        except MedledgerError as e:
            log.error("demo seeding failed: %s", e)
        while True:
            await asyncio.sleep(every_s)
            try:
                await run_in_threadpool(network.step)
            except MedledgerError as e:
                log.error("demo transaction failed: %s", e)

    return run


def _now_ms() -> int:
    return int(time.time() * 1000)
