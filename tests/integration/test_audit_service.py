"""The access-event log on a real node (medledger.services.audit): real SQLite files, the block
builder on its thread, real signatures and checkpoints.

Every recorded event becomes durable without waiting for a block, its batch is anchored by
one ``access.batch`` transaction, and its receipt -- available within 1 s at the default
settings -- verifies offline against the log's key alone. Batches whose anchor did not
commit before a stop are found on the ledger or anchored again on start.

One node serves the module; tests that need other settings run a second ``AuditService``
over the same ledger with its own store.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.adapters.sqlite_audit import ANCHORED, FAILED, SqliteAuditStore
from medledger.bootstrap import AUDIT_DB_FILE, Node, init_home, open_node
from medledger.core.audit.batch import seal_batch
from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.audit.fhir import to_audit_events
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.access_batch import ACCESS_BATCH
from medledger.core.ledger.envelope import sign_transaction
from medledger.core.ledger.tx import Transaction
from medledger.errors import (
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    StorageError,
    TamperError,
)
from medledger.services.audit import AuditService, AuditSettings

PASSPHRASE = "correct horse battery staple"
RECEIPT_WAIT_S = 10.0


def party(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


PATIENT, OTHER_PATIENT, DOCTOR, NURSE, CLINIC = (
    party(31),
    party(32),
    party(21),
    party(22),
    party(11),
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    home = tmp_path_factory.mktemp("audit") / "home"
    init_home(home, passphrase=PASSPHRASE)
    node = open_node(home, passphrase=PASSPHRASE)
    node.start()
    yield node
    node.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def event(node_did: str, **changes: Any) -> AccessEvent:
    fields: dict[str, Any] = {
        "event_id": new_event_id(secrets.token_bytes(16)),
        "time_ms": now_ms(),
        "node": node_did,
        "actor": DOCTOR,
        "actor_org": node_did,
        "patient": PATIENT,
        "action": "read",
        "resource_type": "Observation",
        "record_id": "obs-1",
        "version": 1,
        "purpose": "TREAT",
        "decision": "permit",
        "reasons": ("author-organization",),
        "consents": (),
    }
    fields.update(changes)
    return AccessEvent(**fields)


def verify(node: Node, receipt: bytes) -> AccessEvent:
    return verify_event_receipt(receipt, node.log.verifier)


def side_service(node: Node, path: Path, *, key: ParticipantKey | None = None,
                 **settings: Any) -> tuple[AuditService, SqliteAuditStore]:  # fmt: skip
    """Another aggregator over the node's ledger and log, with its own store."""
    store = SqliteAuditStore(path)
    service = AuditService(
        store=store,
        ledger=node.ledger,
        log=node.log,
        node_key=key or node.key,
        random_bytes=secrets.token_bytes,
        clock_ms=now_ms,
        settings=AuditSettings(**settings),
    )
    return service, store


# --- the request path -----------------------------------------------------------------------
def test_receipts_come_within_one_second_and_verify_offline(node: Node) -> None:
    """50 events recorded over ~1 s, as requests would: the slowest receipt is available
    under 1 s after its ``record``, and every receipt verifies with the log key alone."""
    latencies: dict[str, float] = {}
    receipts: dict[str, bytes] = {}
    events = [event(node.key.did, patient=party(100 + i % 7)) for i in range(50)]

    def request(e: AccessEvent) -> None:
        began = time.monotonic()
        ticket = node.audit.record(e)
        ticket.wait_durable(RECEIPT_WAIT_S)
        receipts[e.event_id] = node.audit.wait_receipt(e.event_id, RECEIPT_WAIT_S)
        latencies[e.event_id] = time.monotonic() - began

    threads = [threading.Thread(target=request, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # pacing the load like arriving requests, not waiting for a result
    for thread in threads:
        thread.join(30)
    assert len(latencies) == 50
    worst = max(latencies.values())
    assert worst < 1.0, f"slowest receipt took {worst:.3f} s"
    for e in events:
        assert verify(node, receipts[e.event_id]) == e


def test_record_returns_before_the_event_is_stored(node: Node) -> None:
    e = event(node.key.did)
    ticket = node.audit.record(e)
    assert ticket.event_id == e.event_id
    ticket.wait_durable(RECEIPT_WAIT_S)
    assert ticket.durable
    assert ticket.batch_id is not None
    assert node.audit.event(e.event_id) == e
    fresh = SqliteAuditStore(node.home / AUDIT_DB_FILE)  # another connection sees it
    try:
        stored = fresh.event(e.event_id)
        assert stored is not None
        assert stored.batch_id == ticket.batch_id
    finally:
        fresh.close()


def test_one_transaction_anchors_a_whole_batch(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db", batch_interval_ms=60_000)
    service.start()
    try:
        events = [event(node.key.did, patient=party(60 + i)) for i in range(40)]
        tickets = [service.record(e) for e in events]
        service.close()  # seals the open batch at once
        assert {t.batch_id for t in tickets} == {tickets[0].batch_id}
        assert tickets[-1].wait_anchored(RECEIPT_WAIT_S)
        batch = store.batch(str(tickets[0].batch_id))
        assert batch is not None
        assert (batch.count, batch.state) == (40, ANCHORED)
        block_txs = node.ledger.block_txs(node.ledger.status(batch.tx_id or b"").height or 0)
        anchors = [t for t in block_txs if batch.batch_id.encode() in t.wire]
        assert len(anchors) == 1
        assert b'"count":40' in anchors[0].wire
    finally:
        service.close()
        store.close()


def test_an_event_decided_by_another_node_is_refused(node: Node) -> None:
    with pytest.raises(InvalidInputError) as e:
        node.audit.record(event(CLINIC))
    assert e.value.parameter == "node"


def test_a_full_queue_is_overloaded(node: Node, tmp_path: Path) -> None:
    service, store = side_service(
        node, tmp_path / "a.db", max_batch_events=2, max_queued_events=3
    )  # not started: nothing drains the queue
    try:
        for _ in range(3):
            service.record(event(node.key.did))
        with pytest.raises(OverloadedError):
            service.record(event(node.key.did))
        assert service.pending_events() == 3
    finally:
        service.close()
        store.close()


def test_wait_durable_times_out_as_overloaded(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db")  # not started
    try:
        ticket = service.record(event(node.key.did))
        with pytest.raises(OverloadedError):
            ticket.wait_durable(0.01)
    finally:
        service.close()
        store.close()


def test_a_batch_that_cannot_be_stored_fails_its_tickets(node: Node, tmp_path: Path) -> None:
    """No access without durable evidence: the caller learns the event was not stored."""
    service, store = side_service(node, tmp_path / "a.db")
    store.close()  # every write now fails
    ticket = service.record(event(node.key.did))
    service.close()
    with pytest.raises(StorageError):
        ticket.wait_durable(1)
    assert not ticket.durable


def test_a_closed_log_refuses_events(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db")
    service.start()
    service.close()
    store.close()
    with pytest.raises(StorageError):
        service.record(event(node.key.did))


# --- receipts -------------------------------------------------------------------------------
def test_no_receipt_before_the_batch_is_anchored(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db", batch_interval_ms=60_000)
    try:
        e = event(node.key.did)
        service.record(e)
        with pytest.raises(NotFoundError):
            service.receipt(e.event_id)  # not even stored
        with pytest.raises(NotFoundError):
            service.wait_receipt(e.event_id, 0.05)
        service.close()  # stored, anchor submitted (nobody tracks it: not started)
        with pytest.raises(NotFoundError, match="not anchored"):
            service.receipt(e.event_id)
    finally:
        service.close()
        store.close()


def test_receipt_of_an_unknown_or_malformed_id(node: Node) -> None:
    with pytest.raises(NotFoundError):
        node.audit.receipt(new_event_id(bytes(16)))
    with pytest.raises(InvalidInputError):
        node.audit.receipt("../../etc/passwd")


def test_a_stored_batch_altered_after_anchoring_is_tamper(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db")
    service.start()
    try:
        e = event(node.key.did)
        service.record(e)
        verify(node, service.wait_receipt(e.event_id, RECEIPT_WAIT_S))
        service.close()
        conn = sqlite3.connect(tmp_path / "a.db")
        with conn:
            conn.execute("UPDATE batches SET root = ?", (b"\x00" * 32,))
        conn.close()
        with pytest.raises(TamperError):
            service.receipt(e.event_id)
    finally:
        service.close()
        store.close()


# --- queries --------------------------------------------------------------------------------
def test_a_patients_events_with_filters_and_pages(node: Node) -> None:
    patient = party(200)
    events = [
        event(node.key.did, patient=patient, actor=DOCTOR if i % 2 else NURSE,
              decision="deny" if i % 3 == 0 else "permit",
              reasons=("no-consent",) if i % 3 == 0 else ("consent-permit",))
        for i in range(12)
    ]  # fmt: skip
    for e in events:
        node.audit.record(e)
    for e in events:
        node.audit.wait_receipt(e.event_id, RECEIPT_WAIT_S)
    assert node.audit.list_events(patient) == events
    assert node.audit.list_events(patient, actor=NURSE) == events[0::2]
    assert node.audit.list_events(patient, decision="deny") == events[0::3]
    assert node.audit.list_events(patient, purpose="ETREAT") == []
    first = node.audit.list_events(patient, limit=5)
    rest = node.audit.list_events(patient, after_event_id=first[-1].event_id)
    assert first + rest == events
    with pytest.raises(InvalidInputError):
        node.audit.list_events(patient, after_event_id=events[0].event_id, limit=1001)
    with pytest.raises(InvalidInputError):  # a cursor from another patient's list
        node.audit.list_events(OTHER_PATIENT, after_event_id=events[0].event_id)


def test_break_glass_events_for_review(node: Node) -> None:
    justification = "Unconscious patient, no consent on file"
    glass = [
        event(node.key.did, purpose="ETREAT", decision="break-glass",
              reasons=("break-glass", "no-consent"), justification=justification)
        for _ in range(3)
    ]  # fmt: skip
    for e in [*glass, event(node.key.did)]:
        node.audit.record(e)
    node.audit.wait_receipt(glass[-1].event_id, RECEIPT_WAIT_S)
    listed = node.audit.break_glass_events(node.key.did)
    assert listed[-3:] == glass
    assert all(e.decision == "break-glass" for e in listed)
    reviewed = {glass[0].event_id}
    unreviewed = node.audit.break_glass_events(
        node.key.did, unreviewed_only=True, is_reviewed=reviewed.__contains__
    )
    assert glass[0] not in unreviewed
    assert unreviewed[-2:] == glass[1:]
    with pytest.raises(InvalidInputError):
        node.audit.break_glass_events(node.key.did, unreviewed_only=True)
    assert verify(node, node.audit.receipt(glass[1].event_id)).justification == justification


def test_stored_events_export_as_fhir(node: Node) -> None:
    e = event(node.key.did, action="search", record_id=None, version=None)
    node.audit.record(e).wait_durable(RECEIPT_WAIT_S)
    resources = to_audit_events(node.audit.event(e.event_id), node_name="Local Hospital")
    assert [r["id"] for r in resources] == [f"{e.event_id}-authz", f"{e.event_id}-query"]


# --- recovery -------------------------------------------------------------------------------
def anchor_of(node: Node, batch_payload: dict[str, Any]) -> bytes:
    tx = Transaction(
        network=node.ledger.network,
        type=ACCESS_BATCH,
        payload=batch_payload,
        sender=node.key.did,
        nonce=secrets.token_hex(12),
        expires=int(time.time()) + 120,
    )
    stx = sign_transaction(tx, node.key.sign)
    node.ledger.submit(stx.wire, int(time.time()))
    status = node.ledger.wait(stx.tx_id, RECEIPT_WAIT_S)
    assert status.ok
    return stx.tx_id


def test_a_batch_stored_but_never_submitted_is_anchored_on_start(
    node: Node, tmp_path: Path
) -> None:
    """A crash between storing a batch and submitting its anchor."""
    service, store = side_service(node, tmp_path / "a.db")
    events = [event(node.key.did) for _ in range(3)]
    store.save_batch(seal_batch(new_event_id(secrets.token_bytes(16)), events), b"\x00" * 32)
    service.start()
    try:
        for e in events:
            assert verify(node, service.wait_receipt(e.event_id, RECEIPT_WAIT_S)) == e
    finally:
        service.close()
        store.close()


def test_a_batch_anchored_before_a_crash_is_adopted_not_anchored_twice(
    node: Node, tmp_path: Path
) -> None:
    """A crash after the anchor committed but before the store learned its log index."""
    service, store = side_service(node, tmp_path / "a.db")
    events = [event(node.key.did) for _ in range(2)]
    batch = seal_batch(new_event_id(secrets.token_bytes(16)), events)
    tx_id = anchor_of(node, batch.anchor_payload())
    store.save_batch(batch, b"\x00" * 32)
    service.start()
    try:
        stored = store.batch(batch.batch_id)
        assert stored is not None
        assert (stored.state, stored.tx_id) == (ANCHORED, tx_id)
        assert stored.log_index == node.ledger.status(tx_id).log_index
        assert verify(node, service.receipt(events[1].event_id)) == events[1]
    finally:
        service.close()
        store.close()


def test_a_batch_anchored_with_another_root_is_tamper(node: Node, tmp_path: Path) -> None:
    service, store = side_service(node, tmp_path / "a.db")
    batch = seal_batch(new_event_id(secrets.token_bytes(16)), [event(node.key.did)])
    anchor_of(node, {**batch.anchor_payload(), "root": "ab" * 32})
    store.save_batch(batch, b"\x00" * 32)
    try:
        with pytest.raises(TamperError):
            service.start()
    finally:
        service.close()
        store.close()


def test_an_anchor_the_ledger_refuses_leaves_the_batch_failed(node: Node, tmp_path: Path) -> None:
    """A node key that is not a registered organization: its anchors fail; the events stay
    stored, without receipts, and the batch is retried on the next start."""
    stranger = ParticipantKey.from_seed(secrets.token_bytes(32))
    service, store = side_service(node, tmp_path / "a.db", key=stranger)
    service.start()
    try:
        e = event(stranger.did)
        ticket = service.record(e)
        ticket.wait_durable(RECEIPT_WAIT_S)
        service.close()  # waits for the anchor to be decided
        stored = store.batch(str(ticket.batch_id))
        assert stored is not None
        assert (stored.state, stored.reason) == (FAILED, "sender_not_registered")
        assert [b.batch_id for b in store.unanchored()] == [ticket.batch_id]
        with pytest.raises(NotFoundError):
            service.receipt(e.event_id)
    finally:
        service.close()
        store.close()


def test_events_survive_a_node_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, passphrase=PASSPHRASE)
    first = open_node(home, passphrase=PASSPHRASE)
    first.start()
    events = [event(first.key.did, patient=PATIENT) for _ in range(5)]
    for e in events:
        first.audit.record(e)
    first.close()  # flushes: every event stored, anchors committed
    again = open_node(home, passphrase=PASSPHRASE)
    again.start()
    try:
        assert again.audit.list_events(PATIENT) == events
        for e in events:
            assert verify(again, again.audit.wait_receipt(e.event_id, RECEIPT_WAIT_S)) == e
        receipt = json.loads(again.audit.receipt(events[0].event_id))
        assert receipt["event"] == events[0].to_json()
    finally:
        again.close()
