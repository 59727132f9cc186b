"""Off-chain records in one real node: real SQLite, real files, real crypto, the block builder
on its thread.

A record the node (the hospital, its custodian) writes is read by the patient, and by the
hospital's practitioners under the patient's consent to the hospital, and by nobody else; by a
practitioner only while the ledger says they are active. Every decision is an access event,
in the node's audit store (data/audit.db), never with content. A key released to a session
key opens the ciphertext in the requester's hands. A flipped byte, a swapped blob, a damaged
or swapped wrap each fail as a clear error, never as content; an oversize record or one for
an unregistered patient leaves nothing behind; an erased record is gone, even of a version
put while it was being erased. A put that stops waiting for its anchor keeps the version's
keys until the ledger decides. At the end the chain and the log still verify from the
command line.

One node serves the whole module (tests run in file order; the last one closes it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medledger.bootstrap import KEYS_DB_FILE, Node, open_node
from medledger.client import new_transaction
from medledger.core.access.gate import AccessRequest, Action
from medledger.core.consent.simple import permit_to
from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, x25519_from_seed
from medledger.core.crypto.record_cipher import (
    MAX_RECORD_PLAINTEXT,
    RecordAad,
    open_record,
    verify_commitment,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.cli.demo import DEMO_PASSPHRASE, create_demo_home, load_demo_keys
from medledger.errors import (
    AccessDeniedError,
    ConflictError,
    MedledgerError,
    NotFoundError,
    TamperError,
    TooLargeError,
    VerificationError,
)
from medledger.services.ledger import TxStatus
from medledger.services.records import PutResult

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]  # the conftest fixture
RESOURCE = "Observation"


# --- the node and its people ------------------------------------------------------------------
@dataclass
class Demo:
    home: Path
    node: Node
    keys: dict[str, ParticipantKey]
    closed: bool = False

    def did(self, name: str) -> str:
        return self.keys[name].did

    def submit(self, signer: str, tx_type: str, payload: dict[str, Any]) -> TxStatus:
        now = int(time.time())
        stx = new_transaction(
            self.keys[signer],
            network=self.node.genesis.network,
            tx_type=tx_type,
            payload=payload,
            now_s=now,
        )
        self.node.ledger.submit(stx.wire, now)
        return self.node.ledger.wait(stx.tx_id, 10.0)

    def put(self, patient: str, record_id: str, content: bytes) -> PutResult:
        return self.node.records.put(
            patient=self.did(patient),
            record_id=record_id,
            resource_type=RESOURCE,
            content=content,
            now_s=int(time.time()),
        )

    def request(
        self, requester: str, patient: str, record_id: str, action: Action = "read"
    ) -> AccessRequest:
        did = self.keys[requester].did if requester in self.keys else requester
        return AccessRequest(did, self.did(patient), record_id, action, "TREAT")

    def read(
        self, requester: str, patient: str, record_id: str, version: int | None = None
    ) -> bytes:
        request = self.request(requester, patient, record_id)
        return self.node.records.read(request, version, now_ms()).content

    def state(self, key: str) -> dict[str, Any] | None:
        raw = self.node.ledger.state_get(key)
        return None if raw is None else json.loads(raw)

    def blob_cids(self) -> set[str]:
        return set(self.node.blobs.iter_cids())


def vault_uri(demo: Demo) -> str:
    """The key vault, read-only: what someone with the disk sees."""
    return f"file:{demo.home / KEYS_DB_FILE}?mode=ro"


def stored(demo: Demo, timeout_s: float = 10.0) -> None:
    """Wait until every recorded access event is on disk (denials do not wait for it)."""
    deadline = time.monotonic() + timeout_s
    while demo.node.audit.pending_events() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert demo.node.audit.pending_events() == 0


class _LedgerView:
    """The ledger as the records service sees it, with some methods replaced: the node's other
    services (the access-event log) keep the real ledger."""

    def __init__(self, real: Any, **replaced: Any) -> None:
        self._real = real
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def only_records(demo: Demo, monkeypatch: pytest.MonkeyPatch, **replaced: Any) -> None:
    """Replace ledger methods for the records service only."""
    view = _LedgerView(demo.node.ledger, **replaced)
    monkeypatch.setattr(demo.node.records, "_ledger", view)


def now_ms() -> int:
    return int(time.time() * 1000)


def observation(marker: str, value: float = 72.5) -> bytes:
    """A FHIR Observation's canonical bytes (what the API stores for a JSON body)."""
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": f"heart rate {marker}"},
        "valueQuantity": {"value": value, "unit": "beats/min"},
    }
    return json.dumps(resource, sort_keys=True, separators=(",", ":")).encode()


def to_hospital(demo: Demo, patient: str) -> dict[str, Any]:
    """``patient`` permits the hospital's practitioners to read for treatment."""
    consent = permit_to(f"c-hospital-{patient}", demo.did(patient), demo.did("hospital"))
    return consent.to_json()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo network's home, served in-process: the hospital's node with dr-house and
    nurse-joy (hospital), dr-clinic (clinic) and patients 1-3 registered. patient-5 and
    lab-tech stay unregistered."""
    home = tmp_path_factory.mktemp("records-service") / "home"
    create_demo_home(home, port=8000)
    node = open_node(home, passphrase=DEMO_PASSPHRASE)
    node.start()
    demo = Demo(home, node, load_demo_keys(home))
    people = [
        ("hospital", "dr-house", "physician"),
        ("hospital", "nurse-joy", "nurse"),
        ("clinic", "dr-clinic", "physician"),
    ]
    for org, name, role in people:
        payload = {
            "did": demo.did(name),
            "kind": "practitioner",
            "roles": [role],
            "organization": demo.did(org),
        }
        assert demo.submit(org, "participant.register", payload).ok
    for name in ("patient-1", "patient-2", "patient-3"):
        payload = {"did": demo.did(name), "kind": "patient", "roles": []}
        assert demo.submit("hospital", "participant.register", payload).ok
    for name in ("patient-1", "patient-2"):  # consent to the hospital (and so its staff)
        assert demo.submit(name, "consent.grant", {"consent": to_hospital(demo, name)}).ok
    try:
        yield demo
    finally:
        if not demo.closed:
            node.close()


@pytest.fixture(scope="module")
def obs(demo: Demo) -> tuple[str, bytes]:
    """One record of patient-1, written by the hospital's node."""
    content = observation(secrets.token_hex(8))
    assert demo.put("patient-1", "obs-shared", content).version == 1
    return "obs-shared", content


# --- who may read ---------------------------------------------------------------------------
def test_the_patient_reads_their_own_record(demo: Demo, obs: tuple[str, bytes]):
    record_id, content = obs
    assert demo.read("patient-1", "patient-1", record_id) == content


def test_a_practitioner_of_the_consented_organization_reads_it(demo: Demo, obs: tuple[str, bytes]):
    record_id, content = obs
    assert demo.read("dr-house", "patient-1", record_id) == content
    assert demo.read("nurse-joy", "patient-1", record_id) == content


def test_a_practitioner_of_another_organization_is_denied(demo: Demo, obs: tuple[str, bytes]):
    with pytest.raises(AccessDeniedError, match="no-matching-provision"):
        demo.read("dr-clinic", "patient-1", obs[0])


def test_another_patient_is_denied(demo: Demo, obs: tuple[str, bytes]):
    with pytest.raises(AccessDeniedError, match="no-matching-provision"):
        demo.read("patient-2", "patient-1", obs[0])


def test_without_consent_even_the_custodians_practitioner_is_denied(demo: Demo):
    """patient-3 granted nothing: the hospital's own doctor is denied (ADR 0015)."""
    demo.put("patient-3", "obs-private", observation("private"))
    with pytest.raises(AccessDeniedError, match="no-consent"):
        demo.read("dr-house", "patient-3", "obs-private")


@pytest.mark.parametrize("who", ["lab-tech", "stranger"])
def test_an_unregistered_key_is_denied(demo: Demo, obs: tuple[str, bytes], who: str):
    """lab-tech has a demo key but was never registered; a stranger is a fresh did:key."""
    requester = who if who in demo.keys else ParticipantKey.from_seed(secrets.token_bytes(32)).did
    with pytest.raises(AccessDeniedError, match="requester-not-registered"):
        demo.read(requester, "patient-1", obs[0])


def test_every_decision_is_an_access_event_with_reasons_and_no_content(demo: Demo):
    marker = secrets.token_hex(12)
    content = observation(marker)
    demo.put("patient-2", "obs-events", content)
    demo.read("patient-2", "patient-2", "obs-events")
    demo.read("dr-house", "patient-2", "obs-events", version=1)
    for who in ("dr-clinic", "lab-tech"):
        with pytest.raises(AccessDeniedError):
            demo.read(who, "patient-2", "obs-events")
    with pytest.raises(AccessDeniedError):
        demo.node.records.erase(demo.request("dr-clinic", "patient-2", "obs-events", "erase"), 1)

    stored(demo)
    events = [
        e
        for e in demo.node.audit.list_events(demo.did("patient-2"), limit=1000)
        if e.record_id == "obs-events"
    ]
    seen = {(e.actor, e.action, e.decision, e.reasons, e.version) for e in events}
    assert seen == {
        (demo.did("patient-2"), "read", "permit", ("patient-own-record",), 1),
        (demo.did("dr-house"), "read", "permit", ("consent-permit",), 1),
        (demo.did("dr-clinic"), "read", "deny", ("no-matching-provision",), 1),
        (demo.did("lab-tech"), "read", "deny", ("requester-not-registered",), 1),
        (demo.did("dr-clinic"), "erase", "deny", ("erasure-by-patient-or-custodian-only",), None),
    }
    assert all(e.purpose == "TREAT" and e.patient == demo.did("patient-2") for e in events)
    assert {e.consents for e in events if e.actor == demo.did("dr-house")} == {
        ("c-hospital-patient-2",)
    }
    # Codes and pseudonyms only: the audit store never holds the record's content.
    for path in (demo.home / "data").glob("audit.db*"):
        assert marker.encode() not in path.read_bytes()


# --- versions ---------------------------------------------------------------------------------
def test_versions_chain_and_an_old_version_stays_readable(demo: Demo):
    first, second = observation("first"), observation("second", 80.0)
    assert demo.put("patient-1", "obs-chain", first).version == 1
    head_v1 = demo.state(f"record/{demo.did('patient-1')}/obs-chain")
    assert head_v1 is not None
    result = demo.put("patient-1", "obs-chain", second)
    assert result.version == 2

    prefix = f"record/{demo.did('patient-1')}/obs-chain"
    v1_raw = demo.node.ledger.state_get(f"{prefix}/1")
    v2 = demo.state(f"{prefix}/2")
    head = demo.state(prefix)
    assert v1_raw is not None
    assert v2 is not None
    assert head is not None
    assert head["version"] == 2
    assert v2["prev"] == head_v1["hash"] == hashlib.sha256(v1_raw).hexdigest()
    assert v2["cid"] == result.cid
    assert demo.read("patient-1", "patient-1", "obs-chain") == second
    assert demo.read("patient-1", "patient-1", "obs-chain", version=1) == first
    assert demo.read("dr-house", "patient-1", "obs-chain", version=2) == second
    with pytest.raises(NotFoundError):
        demo.read("patient-1", "patient-1", "obs-chain", version=3)


# --- key release ------------------------------------------------------------------------------
@pytest.mark.parametrize(("who", "grant"), [("patient-1", "patient"), ("dr-house", "consent")])
def test_a_released_key_opens_the_blob_in_the_requesters_hands(
    demo: Demo, obs: tuple[str, bytes], who: str, grant: str
):
    record_id, content = obs
    session = x25519_from_seed(secrets.token_bytes(32))
    request = demo.request(who, "patient-1", record_id, "key-release")
    release = demo.node.records.release_key(request, None, session.public_key, now_ms())
    assert release.grant == grant

    info = WrapInfo(record_id, release.version, demo.did(who), release.grant)
    data_key = unwrap_key(release.wrap, session.private_key, info)
    blob = demo.node.blobs.get(release.cid)
    aad = RecordAad(record_id, release.version, release.resource_type, demo.did("patient-1"))
    assert open_record(blob, data_key, aad) == content
    anchored = demo.state(f"record/{demo.did('patient-1')}/{record_id}/{release.version}")
    assert anchored is not None
    verify_commitment(release.salt, content, bytes.fromhex(anchored["commitment"]))

    # The wrap is bound to its requester: nobody else opens it, not even with the session key.
    other = WrapInfo(record_id, release.version, demo.did("dr-clinic"), release.grant)
    with pytest.raises(VerificationError, match=r"^decryption failed$"):
        unwrap_key(release.wrap, session.private_key, other)
    with pytest.raises(VerificationError, match=r"^decryption failed$"):
        unwrap_key(release.wrap, x25519_from_seed(secrets.token_bytes(32)).private_key, info)


def test_a_wrong_key_aad_or_ciphertext_is_one_opaque_decryption_failure(demo: Demo):
    """What a requester holding released keys sees for a blob that is not the one its key
    opens: another version's key, another version's AAD, a cut or flipped ciphertext."""
    patient = demo.did("patient-1")
    opened: dict[int, tuple[bytes, bytes, RecordAad]] = {}
    for version in (1, 2):
        session = x25519_from_seed(secrets.token_bytes(32))
        request = demo.request("patient-1", "patient-1", "obs-chain", "key-release")
        release = demo.node.records.release_key(request, version, session.public_key, now_ms())
        info = WrapInfo("obs-chain", version, patient, release.grant)
        aad = RecordAad("obs-chain", version, RESOURCE, patient)
        blob = demo.node.blobs.get(release.cid)
        opened[version] = (unwrap_key(release.wrap, session.private_key, info), blob, aad)
    (key1, blob1, aad1), (key2, blob2, aad2) = opened[1], opened[2]
    assert open_record(blob1, key1, aad1) == observation("first")
    flipped = bytearray(blob1)
    flipped[20] ^= 0x01
    for blob, key, aad in (
        (blob1, key2, aad1),  # another version's key
        (blob1, key1, aad2),  # another version's AAD
        (blob2, key1, aad1),  # another version's ciphertext
        (blob1[:-1], key1, aad1),  # truncated
        (blob1[:10], key1, aad1),  # shorter than a nonce and a tag
        (bytes(flipped), key1, aad1),  # one flipped bit
        (b"\x02" + blob1[1:], key1, aad1),  # an unknown format
    ):
        with pytest.raises(VerificationError) as info:
            open_record(blob, key, aad)
        assert (type(info.value), str(info.value)) == (VerificationError, "decryption failed")
        assert info.value.__cause__ is None
        assert info.value.__context__ is None


def test_no_key_is_released_to_a_denied_requester(demo: Demo, obs: tuple[str, bytes]):
    session = x25519_from_seed(secrets.token_bytes(32))
    request = demo.request("dr-clinic", "patient-1", obs[0], "key-release")
    with pytest.raises(AccessDeniedError):
        demo.node.records.release_key(request, None, session.public_key, now_ms())


# --- tampering --------------------------------------------------------------------------------
@pytest.fixture
def victim(demo: Demo) -> tuple[str, bytes, str]:
    """A fresh record of patient-3: (record id, content, cid)."""
    record_id = f"obs-{secrets.token_hex(4)}"
    content = observation(record_id)
    return record_id, content, demo.put("patient-3", record_id, content).cid


def test_a_flipped_byte_in_the_blob_is_caught_and_no_content_returned(
    demo: Demo, victim: tuple[str, bytes, str]
):
    record_id, content, cid = victim
    path = demo.node.blobs.path_of(cid)
    original = path.read_bytes()
    for at in (0, len(original) // 2, len(original) - 1):
        flipped = bytearray(original)
        flipped[at] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(VerificationError):
            demo.read("patient-3", "patient-3", record_id)
    path.write_bytes(original[:-5])  # truncated
    with pytest.raises(VerificationError):
        demo.read("patient-3", "patient-3", record_id)
    path.write_bytes(original)
    assert demo.read("patient-3", "patient-3", record_id) == content


def test_another_valid_blob_under_the_cid_is_a_cid_mismatch(
    demo: Demo, obs: tuple[str, bytes], victim: tuple[str, bytes, str]
):
    record_id, content, cid = victim
    path = demo.node.blobs.path_of(cid)
    original = path.read_bytes()
    other = demo.state(f"record/{demo.did('patient-1')}/{obs[0]}/1")
    assert other is not None
    path.write_bytes(demo.node.blobs.get(other["cid"]))
    with pytest.raises(TamperError, match="does not match its CID"):
        demo.read("patient-3", "patient-3", record_id)
    path.write_bytes(original)
    assert demo.read("patient-3", "patient-3", record_id) == content


def _set_node_wrap(home: Path, patient: str, record_id: str, version: int, wrap: bytes) -> None:
    with contextlib.closing(sqlite3.connect(home / KEYS_DB_FILE)) as conn, conn:
        conn.execute(
            "UPDATE versions SET node_wrap = ? WHERE patient=? AND record_id=? AND version=?",
            (wrap, patient, record_id, version),
        )


def test_a_damaged_or_swapped_wrap_is_one_opaque_decryption_failure(
    demo: Demo, victim: tuple[str, bytes, str]
):
    record_id, content, _ = victim
    patient = demo.did("patient-3")
    stored = demo.node.vault.version(patient, record_id, 1)
    assert stored is not None
    original = stored.node_wrap
    damaged = bytearray(original)
    damaged[40] ^= 0x80
    other = demo.node.vault.version(demo.did("patient-1"), "obs-chain", 2)
    assert other is not None
    # A flipped bit; a wrap cut short; another version's valid wrap (wrong info); garbage.
    for wrap in (bytes(damaged), original[:-1], other.node_wrap, b"\x00" * 81):
        _set_node_wrap(demo.home, patient, record_id, 1, wrap)
        with pytest.raises(VerificationError) as info:
            demo.read("patient-3", "patient-3", record_id)
        assert str(info.value) == "decryption failed"
        assert info.value.__cause__ is None
        with pytest.raises(VerificationError, match=r"^decryption failed$"):
            demo.node.records.release_key(
                demo.request("patient-3", "patient-3", record_id, "key-release"),
                None,
                x25519_from_seed(secrets.token_bytes(32)).public_key,
                now_ms(),
            )
    _set_node_wrap(demo.home, patient, record_id, 1, original)
    assert demo.read("patient-3", "patient-3", record_id) == content


def test_a_vault_pointing_at_another_ciphertext_is_refused(
    demo: Demo, victim: tuple[str, bytes, str]
):
    """Attack: someone with the disk points a version at another ciphertext (the wrong AAD's
    blob); the ledger's anchored CID no longer matches and nothing is decrypted."""
    record_id, content, cid = victim
    other = demo.node.vault.version(demo.did("patient-1"), "obs-chain", 1)
    assert other is not None
    with contextlib.closing(sqlite3.connect(demo.home / KEYS_DB_FILE)) as conn, conn:
        conn.execute("UPDATE versions SET cid = ? WHERE record_id = ?", (other.cid, record_id))
    with pytest.raises(TamperError, match="not the one anchored"):
        demo.read("patient-3", "patient-3", record_id)
    with contextlib.closing(sqlite3.connect(demo.home / KEYS_DB_FILE)) as conn, conn:
        conn.execute("UPDATE versions SET cid = ? WHERE record_id = ?", (cid, record_id))
    assert demo.read("patient-3", "patient-3", record_id) == content


# --- refused writes leave nothing behind ------------------------------------------------------
def _assert_nothing_stored(demo: Demo, patient: str, record_id: str, blobs: set[str]) -> None:
    assert demo.blob_cids() == blobs
    assert demo.node.vault.version(demo.did(patient), record_id, 1) is None
    assert demo.node.vault.pending() == []
    assert demo.state(f"record/{demo.did(patient)}/{record_id}") is None
    with contextlib.closing(sqlite3.connect(vault_uri(demo), uri=True)) as conn:
        wraps = conn.execute("SELECT count(*) FROM wraps WHERE record_id = ?", (record_id,))
        assert wraps.fetchone()[0] == 0


def test_an_oversize_record_is_refused_and_nothing_is_stored(demo: Demo):
    blobs = demo.blob_cids()
    with pytest.raises(TooLargeError):
        demo.put("patient-1", "obs-huge", b"x" * (MAX_RECORD_PLAINTEXT + 1))
    _assert_nothing_stored(demo, "patient-1", "obs-huge", blobs)


def test_a_record_for_an_unregistered_patient_is_refused_and_nothing_is_left(demo: Demo):
    blobs = demo.blob_cids()
    with pytest.raises(ConflictError, match="patient_not_registered"):
        demo.put("patient-5", "obs-nobody", observation("nobody"))
    _assert_nothing_stored(demo, "patient-5", "obs-nobody", blobs)


def test_an_anchor_still_queued_when_the_wait_gives_up_keeps_its_key_material(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
):
    """Regression: a put that stops waiting for its anchor must not destroy the version's keys
    and ciphertext while the anchor is still queued: it may commit a moment later, and an
    anchored version whose data key is gone is unreadable for good (a mix of new and old)."""
    patient = demo.did("patient-1")
    content = observation("slow")
    real_wait = demo.node.ledger.wait
    submitted: list[bytes] = []

    def gives_up(tx_id: bytes, timeout_s: float) -> TxStatus:
        submitted.append(tx_id)
        return TxStatus(tx_id, "pending")  # as if the block builder were slower than the wait

    only_records(demo, monkeypatch, wait=gives_up)
    with pytest.raises(MedledgerError):
        demo.put("patient-1", "obs-slow", content)
    monkeypatch.undo()
    assert real_wait(submitted[0], 10.0).ok  # the anchor commits after all
    assert demo.state(f"record/{patient}/obs-slow/1") is not None
    assert demo.read("patient-1", "patient-1", "obs-slow") == content
    assert demo.put("patient-1", "obs-slow", observation("slow 2")).version == 2
    assert demo.node.vault.pending() == []


def test_a_lost_anchor_holds_its_version_until_reconcile_settles_it(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
):
    """An anchor that never reaches a block (lost with the ordering queue) leaves a pending
    version: the next put of that version is refused without writing anything, and
    ``reconcile`` (run at every start) drops the pending keys and ciphertext."""
    patient = demo.did("patient-1")
    only_records(
        demo,
        monkeypatch,
        submit=lambda raw, now_s: None,
        wait=lambda tx_id, t: TxStatus(tx_id, "pending"),
    )
    with pytest.raises(ConflictError, match="not committed yet"):
        demo.put("patient-1", "obs-lost", observation("lost"))
    monkeypatch.undo()
    (pending,) = demo.node.vault.pending()
    assert demo.node.blobs.exists(pending.cid)
    blobs = demo.blob_cids()
    with pytest.raises(ConflictError, match="still being anchored"):
        demo.put("patient-1", "obs-lost", observation("again"))
    assert demo.blob_cids() == blobs
    with pytest.raises(NotFoundError):
        demo.read("patient-1", "patient-1", "obs-lost")

    assert demo.node.records.reconcile() == 1
    assert demo.node.vault.pending() == []
    assert not demo.node.blobs.exists(pending.cid)
    assert demo.node.vault.version(patient, "obs-lost", 1) is None
    assert demo.put("patient-1", "obs-lost", observation("again")).version == 1
    assert demo.read("patient-1", "patient-1", "obs-lost") == observation("again")


# --- erasure ----------------------------------------------------------------------------------
def test_only_the_patient_or_the_custodian_organization_erases(demo: Demo):
    demo.put("patient-2", "obs-erase", observation("v1"))
    demo.put("patient-2", "obs-erase", observation("v2"))
    for who in ("dr-clinic", "dr-house", "patient-1"):
        with pytest.raises(AccessDeniedError):
            demo.node.records.erase(demo.request(who, "patient-2", "obs-erase", "erase"), now_ms())
    assert demo.read("patient-2", "patient-2", "obs-erase") == observation("v2")


def test_an_erased_record_is_gone(demo: Demo):
    patient = demo.did("patient-2")
    cids = [demo.node.vault.version(patient, "obs-erase", v) for v in (1, 2)]
    assert all(c is not None for c in cids)
    result = demo.node.records.erase(
        demo.request("patient-2", "patient-2", "obs-erase", "erase"), now_ms()
    )
    assert result["erased_versions"] == 2
    assert result["tombstone"]
    for who in ("patient-2", "dr-house"):
        with pytest.raises(NotFoundError):
            demo.read(who, "patient-2", "obs-erase")
    for stored in cids:
        assert stored is not None
        assert demo.node.vault.version(patient, "obs-erase", stored.version) is None
        assert not demo.node.blobs.exists(stored.cid)
    head = demo.state(f"record/{patient}/obs-erase")
    assert head is not None
    assert head["tombstoned"] is True
    with pytest.raises(ConflictError, match="erased"):
        demo.put("patient-2", "obs-erase", observation("v3"))


def test_a_put_racing_an_erasure_leaves_nothing_behind(demo: Demo, monkeypatch: pytest.MonkeyPatch):
    """Attack on erasure: a new version written while the record is being erased (its keys
    saved after the shred, its anchor committed before the tombstone) must not survive it.
    The hooks force that interleaving if the service allows it, and give up after 1 s."""
    patient = demo.did("patient-3")
    demo.put("patient-3", "obs-race", observation("v1"))
    put_saving, shredded, put_done = threading.Event(), threading.Event(), threading.Event()
    save_pending, shred = demo.node.vault.save_pending, demo.node.vault.shred

    def slow_save(version: Any, wraps: Any) -> None:
        put_saving.set()
        shredded.wait(1.0)
        save_pending(version, wraps)

    def slow_shred(p: str, r: str) -> list[str]:
        cids = shred(p, r)
        shredded.set()
        put_done.wait(1.0)
        return cids

    monkeypatch.setattr(demo.node.vault, "save_pending", slow_save)
    monkeypatch.setattr(demo.node.vault, "shred", slow_shred)
    results: dict[str, Any] = {}

    def put() -> None:
        try:
            results["put"] = demo.put("patient-3", "obs-race", observation("v2"))
        except MedledgerError as e:
            results["put"] = e
        finally:
            put_done.set()

    writer = threading.Thread(target=put)
    writer.start()
    assert put_saving.wait(10.0)
    erase = demo.request("patient-3", "patient-3", "obs-race", "erase")
    results["erase"] = demo.node.records.erase(erase, now_ms())
    writer.join(10.0)
    monkeypatch.undo()

    with contextlib.closing(sqlite3.connect(vault_uri(demo), uri=True)) as conn:
        rows = conn.execute("SELECT version FROM versions WHERE record_id = 'obs-race'")
        assert rows.fetchall() == []
    put_result = results["put"]
    if not isinstance(put_result, MedledgerError):
        assert not demo.node.blobs.exists(put_result.cid)
    assert demo.node.vault.pending() == []
    head = demo.state(f"record/{patient}/obs-race")
    assert head is not None
    assert head["tombstoned"] is True


# --- only while the ledger allows ---------------------------------------------------------------
def test_a_deactivated_practitioner_is_denied_from_then_on(demo: Demo, obs: tuple[str, bytes]):
    record_id, content = obs
    assert demo.read("dr-house", "patient-1", record_id) == content
    status = demo.submit("hospital", "participant.deactivate", {"did": demo.did("dr-house")})
    assert status.ok, status
    with pytest.raises(AccessDeniedError, match="requester-not-registered"):
        demo.read("dr-house", "patient-1", record_id)
    with pytest.raises(AccessDeniedError):
        demo.node.records.release_key(
            demo.request("dr-house", "patient-1", record_id, "key-release"),
            None,
            x25519_from_seed(secrets.token_bytes(32)).public_key,
            now_ms(),
        )
    assert demo.read("nurse-joy", "patient-1", record_id) == content
    assert demo.read("patient-1", "patient-1", record_id) == content


# --- last: the whole history still verifies ---------------------------------------------------
def test_chain_and_log_still_verify(demo: Demo, medledger_cli: MedledgerCli):
    demo.node.close()
    demo.closed = True
    for command in ("chain", "log"):
        result = medledger_cli(command, "verify", "--home", str(demo.home))
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout
