"""The privacy officer's aggregates and the log's checkpoint history, over real HTTP.

A served demo-network node (``demo_ledger_node``: genesis only, nothing but what a test
submits): staff and patients registered, a record stored, reads permitted and denied; then
``POST /audit/stats`` (signed ``request.access_stats``) counts them for the hospital's privacy
officer and for nobody else, and ``GET /log/checkpoints`` pages through signed checkpoints
that verify against the log's key and are consistent with each other.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from medledger.client import new_transaction
from medledger.config import Limits
from medledger.core.checkpoint import open_checkpoint
from medledger.core.identity.keys import ParticipantKey
from medledger.core.merkle import verify_consistency
from medledger.core.note import parse_verifier_key

from .conftest import DemoLedgerNode

DAY_MS = 86_400_000
STAFF = (
    ("dr-house", "hospital", "physician"),
    ("officer-hospital", "hospital", "privacy-officer"),
    ("dr-clinic", "clinic", "physician"),
)
RECORD = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "valueQuantity": {"value": 64, "unit": "beats/min"},
}
DENIALS = 3


def signed(node: DemoLedgerNode, who: str, tx_type: str, payload: dict[str, Any]) -> bytes:
    return new_transaction(
        node.keys[who], network=node.network, tx_type=tx_type, payload=payload,
        now_s=int(time.time()), ttl_s=120,
    ).wire  # fmt: skip


def submit(node: DemoLedgerNode, key: ParticipantKey, tx_type: str, payload: Any) -> None:
    stx = new_transaction(
        key, network=node.network, tx_type=tx_type, payload=payload, now_s=int(time.time())
    )
    r = node.http.post("/ledger/transactions?wait=commit", content=stx.wire)
    body = r.json()
    assert body.get("ok") or body.get("reason") == "already_registered", body


def stats(node: DemoLedgerNode, who: str, **payload: Any) -> httpx.Response:
    body = signed(node, who, "request.access_stats", {"purpose": "HOPERAT", **payload})
    return node.http.post("/audit/stats", content=body)


@pytest.fixture(scope="module")
def activity(demo_ledger_node: DemoLedgerNode) -> DemoLedgerNode:
    """Setup, not under test: people registered, one record, one permitted read by its
    patient and ``DENIALS`` denied reads by Dr Clinic (no consent)."""
    node, keys = demo_ledger_node, demo_ledger_node.keys
    for name, org, role in STAFF:
        submit(node, keys[org], "participant.register", {"did": keys[name].did,
               "kind": "practitioner", "roles": [role], "organization": keys[org].did})  # fmt: skip
    submit(node, keys["hospital"], "participant.register",
           {"did": keys["patient-2"].did, "kind": "patient", "roles": []})  # fmt: skip
    patient = keys["patient-2"].did
    put = {"patient": patient, "record_id": "obs-stats", "resource_type": "Observation"}
    r = node.http.post("/records", json={**put, "content": RECORD})
    assert r.status_code == 200, r.text
    read = {"patient": patient, "record_id": "obs-stats", "purpose": "TREAT"}
    mine = signed(node, "patient-2", "request.read", {**read, "purpose": "PATRQT"})
    own = node.http.post("/records/read", content=mine)
    assert own.status_code == 200, own.text
    for _ in range(DENIALS):
        r = node.http.post("/records/read", content=signed(node, "dr-clinic", "request.read", read))
        assert r.status_code == 403, r.text
    return node


def test_the_officer_sees_todays_decisions_and_who_was_denied(activity: DemoLedgerNode) -> None:
    clinic = activity.keys["dr-clinic"].did
    deadline = time.monotonic() + 10
    while True:  # denials are stored with the next batch (within ~100 ms): poll, bounded
        r = stats(activity, "officer-hospital", days=7)
        assert r.status_code == 200, r.text
        body = r.json()
        denied = {a["actor"]: a["count"] for a in body["denials_by_actor"]}
        if denied.get(clinic) == DENIALS or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert denied == {clinic: DENIALS}
    assert body["organization"] == activity.keys["hospital"].did
    assert len(body["days"]) == 7 and body["until_ms"] - body["since_ms"] == 7 * DAY_MS
    today = body["days"][-1]
    assert today["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert today["deny"] == DENIALS and today["permit"] >= 1
    assert body["total"] == sum(d["permit"] + d["deny"] + d["break-glass"] for d in body["days"])
    assert body["truncated"] is False
    # aggregates only: no patient, record or justification in the answer
    assert activity.keys["patient-2"].did not in r.text and "obs-stats" not in r.text


@pytest.mark.parametrize("who", ["dr-house", "dr-clinic", "patient-2", "hospital"])
def test_anyone_but_a_privacy_officer_of_this_organization_is_refused(
    activity: DemoLedgerNode, who: str
) -> None:
    r = stats(activity, who)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert "privacy officer" in r.json()["error"]["message"]


def test_an_unsigned_or_replayed_request_is_refused(activity: DemoLedgerNode) -> None:
    assert activity.http.post("/audit/stats", json={"purpose": "HOPERAT"}).status_code == 400
    body = signed(activity, "officer-hospital", "request.access_stats", {"purpose": "HOPERAT"})
    assert activity.http.post("/audit/stats", content=body).status_code == 200
    replay = activity.http.post("/audit/stats", content=body)
    assert replay.status_code == 400 and "replayed" in replay.text


@pytest.mark.parametrize(
    ("payload", "parameter"),
    [
        ({"days": 32}, "days"),
        ({"days": 0}, "days"),
        ({"since_ms": 0, "until_ms": 40 * DAY_MS}, "until_ms"),
        ({"since_ms": 10 * DAY_MS, "until_ms": DAY_MS}, "until_ms"),
        ({"since_ms": 0}, "until_ms"),
        ({"purpose": "not a code"}, "purpose"),
    ],
)
def test_an_unbounded_or_malformed_window_is_a_400(
    activity: DemoLedgerNode, payload: dict[str, Any], parameter: str
) -> None:
    r = stats(activity, "officer-hospital", **payload)
    assert r.status_code == 400, r.text
    assert parameter in r.json()["error"]["message"]


def test_checkpoint_history_pages_newest_first_and_every_note_verifies(
    activity: DemoLedgerNode,
) -> None:
    http = activity.http
    verifier = parse_verifier_key(http.get("/log/verifier-key").text.strip())
    # The node keeps signing checkpoints while the test runs (events from earlier tests are still
    # being sealed), so "the newest is the latest" is checked between two reads of the latest.
    latest_before = http.get("/log/checkpoint").text
    first = http.get("/log/checkpoints", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next"] == first["items"][-1]["size"]
    rest = http.get("/log/checkpoints", params={"before": first["next"], "limit": 100}).json()
    items = first["items"] + rest["items"]
    sizes = [i["size"] for i in items]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes) >= 3
    latest_after = http.get("/log/checkpoint").text
    limits = Limits()
    checkpoints = [open_checkpoint(i["note"].encode(), verifier.name, [verifier], limits)
                   for i in items]  # fmt: skip
    assert [c.size for c in checkpoints] == sizes
    before, after = (open_checkpoint(n.encode(), verifier.name, [verifier], limits).size
                     for n in (latest_before, latest_after))  # fmt: skip
    assert latest_before in [i["note"] for i in items]  # every checkpoint is in the history
    assert before <= sizes[0] <= after  # and the newest listed is the latest at that moment
    new, old = checkpoints[0], checkpoints[-1]
    proof = http.get("/log/proof/consistency", params={"from": old.size, "to": new.size}).json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    verify_consistency(old.size, new.size, hashes, old.root_hash, new.root_hash)


@pytest.mark.parametrize(
    "params", [{"before": "-1"}, {"before": "01"}, {"limit": "0"}, {"limit": "101"}]
)
def test_a_malformed_checkpoint_page_is_a_400(
    activity: DemoLedgerNode, params: dict[str, str]
) -> None:
    r = activity.http.get("/log/checkpoints", params=params)
    assert r.status_code in (400, 422) and r.status_code < 500, r.text
