"""The privacy officer's review note over real HTTP (ADR 0022, issue 8 item 5).

A served demo-network node (``demo_ledger_node``: genesis only): the ER physician breaks the
glass on a patient's record with a justification; the hospital's privacy officer commits an
``access.review`` carrying only the note's salted commitment, then sends the note in a signed
``request.review_note`` to the node. The note is refused unless it opens the commitment and
comes from the officer who signed the review; once attached, it is shown with the review to the
officer (``/audit/reviews``) and to the patient (``/audit/events``), who can check it against
the commitment on the ledger (``/ledger/reviews/{event_id}``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from medledger.client import new_transaction
from medledger.core.audit.review_note import note_commitment

from .conftest import DemoLedgerNode

OFFICER, OTHER_OFFICER = "officer-hospital", "nurse-joy"  # nurse-joy: a second officer here
STAFF = (
    ("dr-er", "hospital", "emergency-physician"),
    (OFFICER, "hospital", "privacy-officer"),
    (OTHER_OFFICER, "hospital", "privacy-officer"),
)
RECORD = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "valueQuantity": {"value": 64, "unit": "beats/min"},
}
NOTE = "Checked with the ER lead: found unresponsive, history needed.\nApproved."


def signed(node: DemoLedgerNode, who: str, tx_type: str, payload: dict[str, Any]) -> bytes:
    return new_transaction(
        node.keys[who], network=node.network, tx_type=tx_type, payload=payload,
        now_s=int(time.time()), ttl_s=120,
    ).wire  # fmt: skip


def commit(node: DemoLedgerNode, who: str, tx_type: str, payload: dict[str, Any]) -> Any:
    r = node.http.post(
        "/ledger/transactions?wait=commit", content=signed(node, who, tx_type, payload)
    )
    assert r.status_code in (200, 202), r.text
    return r.json()


def seed(n: DemoLedgerNode) -> DemoLedgerNode:
    """Setup, not under test: the staff and patient-1 registered, one record stored."""
    keys = n.keys
    for name, org, role in STAFF:
        body = {"did": keys[name].did, "kind": "practitioner", "roles": [role],
                "organization": keys[org].did}  # fmt: skip
        assert commit(n, org, "participant.register", body)["ok"]
    patient = {"did": keys["patient-1"].did, "kind": "patient", "roles": []}
    assert commit(n, "hospital", "participant.register", patient)["ok"]
    put = {"patient": keys["patient-1"].did, "record_id": "obs-note",
           "resource_type": "Observation", "content": RECORD}  # fmt: skip
    r = n.http.post("/records", json=put)
    assert r.status_code == 200, r.text
    return n


@pytest.fixture(scope="module")
def node(demo_ledger_node: DemoLedgerNode) -> DemoLedgerNode:
    return seed(demo_ledger_node)


def break_glass(node: DemoLedgerNode) -> tuple[str, str]:
    """dr-er reads with a justification; (event_id, batch_id) once its batch is anchored."""
    why = f"E2E {secrets.token_hex(4)}: collapsed in the waiting room"
    read = {"patient": node.keys["patient-1"].did, "record_id": "obs-note",
            "purpose": "ETREAT", "justification": why}  # fmt: skip
    r = node.http.post("/records/read", content=signed(node, "dr-er", "request.read", read))
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while True:  # anchored within a block interval or two: poll, bounded
        queue = reviews(node, OFFICER).json()["events"]
        mine = [q for q in queue if q["event"]["justification"] == why and q["batch_id"]]
        if mine:
            return mine[0]["event"]["event_id"], mine[0]["batch_id"]
        assert time.monotonic() < deadline, queue
        time.sleep(0.1)


def reviews(node: DemoLedgerNode, who: str, **payload: Any) -> httpx.Response:
    body = signed(node, who, "request.review_queue", {"purpose": "HOPERAT", **payload})
    return node.http.post("/audit/reviews", content=body)


def review(
    node: DemoLedgerNode, event_id: str, batch_id: str, note: str | None, salt: bytes
) -> Any:
    payload: dict[str, Any] = {"batch_id": batch_id, "event_id": event_id, "outcome": "justified"}
    if note is not None:
        payload["note_commitment"] = note_commitment(event_id, note, salt)
    done = commit(node, OFFICER, "access.review", payload)
    assert done["ok"], done
    return done


def attach(node: DemoLedgerNode, who: str, payload: dict[str, Any]) -> httpx.Response:
    return node.http.post(
        "/audit/review-notes", content=signed(node, who, "request.review_note", payload)
    )


def patient_rows(node: DemoLedgerNode) -> dict[str, Any]:
    ask = {"patient": node.keys["patient-1"].did, "purpose": "PATRQT", "limit": 1000}
    r = node.http.post(
        "/audit/events", content=signed(node, "patient-1", "request.list_audit", ask)
    )
    assert r.status_code == 200, r.text
    return {row["event"]["event_id"]: row for row in r.json()["events"]}


def test_the_officer_attaches_a_note_the_patient_reads_and_checks_it(node: DemoLedgerNode) -> None:
    event_id, batch_id = break_glass(node)
    salt = secrets.token_bytes(32)
    review(node, event_id, batch_id, NOTE, salt)
    on_ledger = node.http.get(f"/ledger/reviews/{event_id}").json()
    assert NOTE not in str(on_ledger) and on_ledger["outcome"] == "justified"

    r = attach(node, OFFICER, {"event_id": event_id, "note": NOTE, "salt": salt.hex()})
    assert r.status_code == 200, r.text
    shown = r.json()["review"]
    assert shown["note"] == NOTE and shown["note_verified"] is True
    assert shown["officer"] == node.keys[OFFICER].did

    # the officer's reviewed list
    reviewed = reviews(node, OFFICER, reviewed=True).json()["events"]
    [item] = [i for i in reviewed if i["event"]["event_id"] == event_id]
    assert item["review"]["note"] == NOTE and item["review"]["outcome"] == "justified"
    assert event_id not in {q["event"]["event_id"] for q in reviews(node, OFFICER).json()["events"]}

    # the patient's row, checked against the ledger, not the node's word
    row = patient_rows(node)[event_id]
    got = row["review"]
    assert row["reviewed"] is True and got["note"] == NOTE and got["note_verified"] is True
    recomputed = note_commitment(event_id, got["note"], bytes.fromhex(got["note_salt"]))
    assert recomputed == on_ledger["note_commitment"] == got["note_commitment"]


def test_a_replayed_note_request_is_refused_and_a_fresh_one_is_answered_as_stored(
    node: DemoLedgerNode,
) -> None:
    event_id, batch_id = break_glass(node)
    salt = secrets.token_bytes(32)
    review(node, event_id, batch_id, NOTE, salt)
    payload = {"event_id": event_id, "note": NOTE, "salt": salt.hex()}
    wire = signed(node, OFFICER, "request.review_note", payload)
    assert node.http.post("/audit/review-notes", content=wire).status_code == 200
    replay = node.http.post("/audit/review-notes", content=wire)
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "replayed_nonce"
    again = attach(node, OFFICER, payload)
    assert again.status_code == 200 and again.json()["review"]["note"] == NOTE


def test_a_note_that_does_not_open_the_commitment_is_refused_and_nothing_is_stored(
    node: DemoLedgerNode,
) -> None:
    event_id, batch_id = break_glass(node)
    salt = secrets.token_bytes(32)
    review(node, event_id, batch_id, NOTE, salt)
    for forged in (
        {"note": NOTE.replace("Approved", "Flagged"), "salt": salt.hex()},  # another text
        {"note": NOTE, "salt": secrets.token_hex(32)},  # the right text, another salt
    ):
        r = attach(node, OFFICER, {"event_id": event_id, **forged})
        assert r.status_code == 400, r.text
        assert "note_commitment" in r.json()["error"]["message"]
    assert patient_rows(node)[event_id]["review"]["note"] is None
    # the right one still attaches afterwards
    ok = attach(node, OFFICER, {"event_id": event_id, "note": NOTE, "salt": salt.hex()})
    assert ok.status_code == 200, ok.text


def test_another_officer_cannot_attach_a_note_to_a_review_they_did_not_sign(
    node: DemoLedgerNode,
) -> None:
    event_id, batch_id = break_glass(node)
    salt = secrets.token_bytes(32)
    review(node, event_id, batch_id, NOTE, salt)
    payload = {"event_id": event_id, "note": NOTE, "salt": salt.hex()}
    for who in (OTHER_OFFICER, "dr-er", "patient-1"):  # even with the right note and salt
        r = attach(node, who, payload)
        assert r.status_code == 403, (who, r.text)
        assert "officer who signed the review" in r.json()["error"]["message"]
    assert patient_rows(node)[event_id]["review"]["note"] is None


def test_a_note_needs_a_committed_review_that_carries_a_commitment(node: DemoLedgerNode) -> None:
    event_id, batch_id = break_glass(node)
    payload = {"event_id": event_id, "note": NOTE, "salt": secrets.token_hex(32)}
    r = attach(node, OFFICER, payload)  # not reviewed yet
    assert r.status_code == 409 and "no review on the ledger" in r.json()["error"]["message"]
    review(node, event_id, batch_id, None, b"")  # reviewed without a note
    r = attach(node, OFFICER, payload)
    assert r.status_code == 409 and "no note commitment" in r.json()["error"]["message"]
    row = patient_rows(node)[event_id]
    assert row["review"]["note_commitment"] is None and row["review"]["note"] is None


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"note": ""}, "note"),
        ({"note": "x" * 2001}, "note"),
        ({"note": "a\x00b"}, "note"),
        ({"note": 12}, "note"),
        ({"salt": "AB" * 32}, "salt"),
        ({"salt": None}, "salt"),
        ({"event_id": "NOT-AN-EVENT"}, "event_id"),
        ({"extra": "x"}, "payload"),
    ],
)
def test_malformed_note_requests_are_400_naming_the_field(
    node: DemoLedgerNode, change: dict[str, Any], parameter: str
) -> None:
    payload = {"event_id": "a" * 26, "note": NOTE, "salt": "00" * 32, **change}
    r = attach(node, OFFICER, payload)
    assert r.status_code == 400, r.text
    assert r.json()["error"].get("parameter") == parameter


def test_a_note_for_an_event_this_node_does_not_hold_is_404(node: DemoLedgerNode) -> None:
    r = attach(node, OFFICER, {"event_id": "a" * 26, "note": NOTE, "salt": "00" * 32})
    assert r.status_code == 404, r.text


def test_a_review_note_request_is_not_taken_at_another_endpoint(node: DemoLedgerNode) -> None:
    body = signed(node, OFFICER, "request.review_note", {"event_id": "a" * 26})
    assert node.http.post("/audit/reviews", content=body).status_code == 400


def erase(node: DemoLedgerNode, who: str, event_id: str) -> httpx.Response:
    body = signed(node, who, "request.erase_review_note", {"event_id": event_id})
    return node.http.post("/audit/review-notes/erase", content=body)


@pytest.mark.parametrize("eraser", [OFFICER, "patient-1"])
def test_the_officer_or_the_patient_erases_a_note_and_it_never_comes_back(
    node: DemoLedgerNode, eraser: str
) -> None:
    event_id, batch_id = break_glass(node)
    salt = secrets.token_bytes(32)
    review(node, event_id, batch_id, NOTE, salt)
    payload = {"event_id": event_id, "note": NOTE, "salt": salt.hex()}
    assert attach(node, OFFICER, payload).status_code == 200
    for who in (OTHER_OFFICER, "dr-er"):
        r = erase(node, who, event_id)
        assert r.status_code == 403, (who, r.text)
    assert patient_rows(node)[event_id]["review"]["note"] == NOTE  # still there

    r = erase(node, eraser, event_id)
    assert r.status_code == 200 and r.json() == {"event_id": event_id, "erased": True}
    shown = patient_rows(node)[event_id]["review"]
    assert shown["note"] is None and shown["note_salt"] is None
    assert shown["note_commitment"] is not None  # the ruling and commitment stay on the ledger
    again = attach(node, OFFICER, payload)
    assert again.status_code == 409 and "erased" in again.json()["error"]["message"]
    assert erase(node, eraser, event_id).status_code == 404  # nothing left to erase
