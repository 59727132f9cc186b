"""Issue 5's scenario, through the CLI and the API alone, against a served node:

a patient grants; a doctor reads (permitted, logged); another doctor is denied (logged); the
patient revokes; the first doctor is now denied; an ER doctor breaks the glass (logged, flagged,
queued for review); the patient lists all of it and verifies every receipt offline; the hospital's
privacy officer reviews the break-glass on the ledger.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from medledger.client import LedgerClient, new_transaction
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.note import parse_verifier_key

from .cli import ok, refused, run
from .conftest import DemoLedgerNode

JUSTIFICATION = "Unconscious on arrival; allergy history needed before anaesthesia"


def register(node: DemoLedgerNode) -> None:
    """Setup, not under test: the demo's staff and patients on the ledger."""
    keys = node.keys
    staff = (
        ("dr-house", "hospital", "physician"),
        ("dr-er", "hospital", "emergency-physician"),
        ("officer-hospital", "hospital", "privacy-officer"),
        ("dr-clinic", "clinic", "physician"),
    )
    with LedgerClient(node.url) as client:
        txs = [
            (org, {"did": keys[n].did, "kind": "practitioner", "roles": [r],
                   "organization": keys[org].did})
            for n, org, r in staff
        ] + [("hospital", {"did": keys[p].did, "kind": "patient", "roles": []})
             for p in ("patient-1", "patient-2")]  # fmt: skip
        for signer, payload in txs:
            stx = new_transaction(
                keys[signer],
                network=node.network,
                tx_type="participant.register",
                payload=payload,
                now_s=int(time.time()),
            )
            result = client.submit(stx)
            assert result["ok"] or result["reason"] == "already_registered", result


@pytest.fixture(scope="module")
def scenario(demo_ledger_node: DemoLedgerNode, tmp_path_factory: pytest.TempPathFactory) -> Any:
    node = demo_ledger_node
    register(node)
    work = tmp_path_factory.mktemp("scenario")
    record = work / "obs.json"
    record.write_text(
        json.dumps(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "effectiveDateTime": "2026-11-01T09:30:00Z",
                "valueQuantity": {"value": 72, "unit": "beats/min"},
            }
        )
    )
    patient = node.keys["patient-1"].did
    ok(run("records", "put", "--node", node.url, "--patient", patient, "--record-id", "obs-hr",
           "--type", "Observation", "--file", str(record)))  # fmt: skip
    return node, work, patient


def key(node: DemoLedgerNode, name: str) -> str:
    return str(node.home / "demo-keys" / f"{name}.key")


def get(node: DemoLedgerNode, who: str, patient: str, *extra: str) -> Any:
    return run("records", "get", "--node", node.url, "--key", key(node, who), "--patient",
               patient, "--record-id", "obs-hr", *extra)  # fmt: skip


def test_the_whole_story_is_logged_and_every_receipt_verifies(scenario: Any) -> None:
    node, work, patient = scenario
    house = node.keys["dr-house"].did
    # 1. the patient grants Dr House, for treatment, Observations only
    out = ok(run("consent", "grant", "--node", node.url, "--key", key(node, "patient-1"),
                 "--to", house, "--purpose", "TREAT", "--class", "Observation",
                 "--id", "c-house"))  # fmt: skip
    assert "granted c-house" in out
    listing = ok(run("consent", "list", "--node", node.url, "--patient", patient))
    assert "c-house" in listing and "active" in listing
    # 2. Dr House reads: permitted, and the content verifies against the ledger
    assert json.loads(ok(get(node, "dr-house", patient)))["valueQuantity"]["value"] == 72
    # 3. a doctor of another organization is denied
    refused(get(node, "dr-clinic", patient), "access denied")
    # 4. the patient revokes; 5. Dr House is now denied
    ok(run("consent", "revoke", "--node", node.url, "--key", key(node, "patient-1"),
           "--id", "c-house"))  # fmt: skip
    refused(get(node, "dr-house", patient), "access denied")
    # 6. break-glass: refused without a justification, then permitted with one (flagged)
    refused(get(node, "dr-er", patient, "--purpose", "ETREAT"), "break-glass-without-justification")
    emergency = get(node, "dr-er", patient, "--purpose", "ETREAT", "--justification", JUSTIFICATION)
    assert json.loads(ok(emergency))["status"] == "final"
    assert "BREAK-GLASS" in emergency.stderr
    # 7. the patient lists everything, with receipts
    receipts = work / "receipts"
    table = ok(run("audit", "list", "--node", node.url, "--key", key(node, "patient-1"),
                   "--receipts", str(receipts)))  # fmt: skip
    assert "BREAK-GLASS" in table and "awaiting review" in table
    assert "denied" in table and "permitted" in table
    with LedgerClient(node.url) as client:
        log_key = client.verifier_key()
    files = sorted(receipts.glob("*.json"))
    verifier = parse_verifier_key(log_key)
    events = [verify_event_receipt(f.read_bytes(), verifier) for f in files]
    outcomes = sorted((e.actor, e.decision) for e in events if e.action == "key-release")
    doctor = {node.keys[n].did: n for n in ("dr-house", "dr-clinic", "dr-er")}
    assert sorted((doctor[a], d) for a, d in outcomes) == sorted(
        [
            ("dr-house", "permit"),
            ("dr-clinic", "deny"),
            ("dr-house", "deny"),
            ("dr-er", "deny"),
            ("dr-er", "break-glass"),
        ]
    )
    # ... and the CLI verifies each receipt offline, trusting only the log key
    for f in files:
        assert "OK" in ok(run("receipt", "verify", str(f), "--key", log_key))
    # 8. the privacy officer sees the break-glass in the review queue and rules on it
    queue = ok(run("audit", "reviews", "--node", node.url, "--key", key(node, "officer-hospital")))
    [glass] = [e for e in events if e.decision == "break-glass"]
    assert glass.event_id in queue and "1 awaiting review" in queue
    batch = json.loads(files[[e.event_id for e in events].index(glass.event_id)].read_text())
    ok(run("audit", "review", "--node", node.url, "--key", key(node, "officer-hospital"),
           "--event-id", glass.event_id, "--batch-id", batch["batch"]["batch_id"],
           "--outcome", "justified"))  # fmt: skip
    queue = ok(run("audit", "reviews", "--node", node.url, "--key", key(node, "officer-hospital")))
    assert "0 awaiting review" in queue
    table = ok(run("audit", "list", "--node", node.url, "--key", key(node, "patient-1"),
                   "--decision", "break-glass"))  # fmt: skip
    assert "(reviewed: justified)" in table


def test_a_tampered_receipt_fails_loudly(scenario: Any, tmp_path: Path) -> None:
    node, work, _ = scenario
    receipts = sorted((work / "receipts").glob("*.json"))
    if not receipts:
        pytest.fail("run after the story test: it writes the receipts")
    body = json.loads(receipts[0].read_text())
    body["event"]["decision"] = "permit" if body["event"]["decision"] != "permit" else "deny"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(body))
    with LedgerClient(node.url) as client:
        log_key = client.verifier_key()
    refused(run("receipt", "verify", str(tampered), "--key", log_key), "does not verify")


def test_a_patient_listing_another_patients_events_is_denied(scenario: Any) -> None:
    node, _, patient = scenario
    refused(run("audit", "list", "--node", node.url, "--key", key(node, "patient-2"),
                "--patient", patient), "not-patient-delegate-or-privacy-officer")  # fmt: skip


def test_a_doctor_cannot_list_a_patients_events(scenario: Any) -> None:
    node, _, patient = scenario
    refused(run("audit", "list", "--node", node.url, "--key", key(node, "dr-house"),
                "--patient", patient), "access denied")  # fmt: skip


def test_break_glass_from_a_role_without_emergency_rights_is_denied(scenario: Any) -> None:
    node, _, patient = scenario
    refused(get(node, "dr-clinic", patient, "--purpose", "BTG", "--justification", JUSTIFICATION),
            "break-glass-role-not-allowed")  # fmt: skip


def test_only_a_privacy_officer_sees_the_review_queue(scenario: Any) -> None:
    node, _, _ = scenario
    refused(run("audit", "reviews", "--node", node.url, "--key", key(node, "dr-er")),
            "privacy officer")  # fmt: skip


def test_a_grant_signed_by_someone_else_is_refused_by_the_ledger(scenario: Any) -> None:
    node, _, patient = scenario
    refused(run("consent", "grant", "--node", node.url, "--key", key(node, "dr-house"),
                "--patient", patient, "--to", node.keys["dr-house"].did),
            "not_patient_or_delegate")  # fmt: skip


def test_a_consent_exports_as_fhir(scenario: Any) -> None:
    node, _, patient = scenario
    resource = json.loads(ok(run("consent", "export", "--node", node.url, "--patient", patient,
                                 "--id", "c-house")))  # fmt: skip
    assert resource["resourceType"] == "Consent" and resource["status"] == "inactive"


def test_the_audit_trail_exports_as_balp_audit_events(scenario: Any) -> None:
    from fhir.resources.R4B.auditevent import AuditEvent

    node, _, _ = scenario
    bundle = json.loads(ok(run("audit", "list", "--node", node.url, "--key",
                               key(node, "patient-1"), "--fhir")))  # fmt: skip
    assert bundle["resourceType"] == "Bundle" and bundle["entry"]
    resources = [AuditEvent.model_validate(e["resource"]) for e in bundle["entry"]]
    profiles = {p for r in resources for p in (r.meta.profile if r.meta else [])}
    assert any("AuthZconsent" in p for p in profiles)
    assert any("PatientRead" in p for p in profiles)


# --- newest first (issue 8 item 2) ------------------------------------------------------------
def list_audit(node: DemoLedgerNode, who: str, **payload: Any) -> Any:
    """The patient's signed ``request.list_audit``, as the portal sends it."""
    request = new_transaction(
        node.keys[who], network=node.network, tx_type="request.list_audit",
        payload={"patient": node.keys[who].did, "purpose": "PATRQT", **payload},
        now_s=int(time.time()), ttl_s=60,
    )  # fmt: skip
    return node.http.post("/audit/events", content=request.wire)


def clinic_denials(node: DemoLedgerNode, patient: str, count: int) -> list[str]:
    """``count`` more reads by dr-clinic, denied; returns the ids of all its denials so far,
    oldest first, once every one of them is listed."""
    clinic = node.keys["dr-clinic"].did
    before = list_audit(node, "patient-1", actor=clinic, decision="deny", limit=1000).json()
    for _ in range(count):
        read = new_transaction(
            node.keys["dr-clinic"], network=node.network, tx_type="request.read",
            payload={"patient": patient, "record_id": "obs-hr", "purpose": "TREAT"},
            now_s=int(time.time()), ttl_s=60,
        )  # fmt: skip
        assert node.http.post("/records/read", content=read.wire).status_code == 403
    deadline = time.monotonic() + 20
    while True:  # a denial's event is stored within a batch interval: poll, never sleep blind
        listed = list_audit(node, "patient-1", actor=clinic, decision="deny", limit=1000).json()
        if listed["count"] >= before["count"] + count:
            return [row["event"]["event_id"] for row in listed["events"]]
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)


def test_the_listing_pages_newest_first_without_repeating_or_skipping(scenario: Any) -> None:
    node, _, patient = scenario
    oldest_first = clinic_denials(node, patient, 5)
    clinic = node.keys["dr-clinic"].did
    seen: list[str] = []
    before: str | None = None
    while True:
        cursor = {} if before is None else {"before": before}
        answer = list_audit(node, "patient-1", actor=clinic, decision="deny", limit=2,
                            order="newest", **cursor)  # fmt: skip
        assert answer.status_code == 200, answer.text
        ids = [row["event"]["event_id"] for row in answer.json()["events"]]
        seen.extend(ids)
        if len(ids) < 2:
            break
        before = ids[-1]
    assert seen == oldest_first[::-1]


@pytest.mark.parametrize(
    ("payload", "parameter"),
    [
        ({"order": "sideways"}, "order"),
        ({"order": 1}, "order"),
        ({"order": "newest", "after": "a" * 26}, "after"),
        ({"before": "a" * 26}, "before"),
        ({"order": "oldest", "before": "a" * 26}, "before"),
        ({"order": "newest", "before": "not-an-event-id"}, "before"),
        ({"others_only": "yes"}, "others_only"),
        ({"others_only": 1}, "others_only"),
    ],
)
def test_a_bad_order_or_cursor_is_a_400_naming_it(
    scenario: Any, payload: dict[str, Any], parameter: str
) -> None:
    node, _, _ = scenario
    answer = list_audit(node, "patient-1", **payload)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["parameter"] == parameter


def test_others_only_leaves_out_what_the_patient_did_themselves(scenario: Any) -> None:
    node, _, patient = scenario
    clinic_denials(node, patient, 1)  # someone else's attempt
    list_audit(node, "patient-1")  # listing is itself an event of the patient's own
    everything = list_audit(node, "patient-1", limit=1000).json()["events"]
    others = list_audit(node, "patient-1", limit=1000, others_only=True).json()["events"]
    me = node.keys["patient-1"].did
    assert any(row["event"]["actor"] == me for row in everything)
    ids = [row["event"]["event_id"] for row in others]
    assert ids == [r["event"]["event_id"] for r in everything if r["event"]["actor"] != me]
    assert ids and all(row["event"]["actor"] != me for row in others)


def test_a_cursor_of_another_patient_is_refused(scenario: Any) -> None:
    node, _, patient = scenario
    mine = clinic_denials(node, patient, 1)[-1]
    answer = list_audit(node, "patient-2", order="newest", before=mine)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["parameter"] == "before_event_id"


def test_the_cli_lists_newest_first(scenario: Any) -> None:
    node, _, patient = scenario
    ids = clinic_denials(node, patient, 3)
    clinic = node.keys["dr-clinic"].did
    args = ("audit", "list", "--node", node.url, "--key", key(node, "patient-1"),
            "--actor", clinic, "--decision", "deny", "--fhir")  # fmt: skip

    def listed(*extra: str) -> list[str]:
        bundle = json.loads(ok(run(*args, *extra)))
        return [e["resource"]["id"].removesuffix("-authz") for e in bundle["entry"]]

    assert listed("--newest-first") == ids[::-1]
    assert listed() == ids
    assert listed("--newest-first", "--limit", "1") == [ids[-1]]


def test_the_cli_leaves_out_the_patients_own_actions_on_request(scenario: Any) -> None:
    node, _, _ = scenario
    me = node.keys["patient-1"].did
    args = ("audit", "list", "--node", node.url, "--key", key(node, "patient-1"), "--fhir",
            "--limit", "1000")  # fmt: skip

    def actors(*extra: str) -> set[str]:
        bundle = json.loads(ok(run(*args, *extra)))
        return {
            agent["who"]["identifier"]["value"]
            for e in bundle["entry"]
            for agent in e["resource"].get("agent", [])
            if "identifier" in agent.get("who", {})
        }

    assert me in actors()
    assert me not in actors("--others-only")


def test_the_fhir_listing_is_exactly_the_balp_audit_events_of_the_json_listing(
    scenario: Any,
) -> None:
    """The FHIR Bundle is rendered resource by resource (fast at 1,000 events a page): it
    must still be the AuditEvents of the very events the JSON listing gives."""
    from medledger.core.audit.event import parse_event
    from medledger.core.audit.fhir import to_audit_events

    node, _, patient = scenario
    clinic_denials(node, patient, 2)
    filters = {"actor": node.keys["dr-clinic"].did, "limit": 1000}
    listed = list_audit(node, "patient-1", **filters)
    bundle = list_audit(node, "patient-1", format="fhir", **filters)
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/json"
    hospital = bundle.json()["entry"][0]["resource"]["source"]["site"]  # the node's name
    entries = [
        {"resource": resource}
        for row in listed.json()["events"]
        for resource in to_audit_events(
            parse_event(row["event"]), node_name=hospital, include_justification=True
        )
    ]
    expected = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                "entry": entries}  # fmt: skip
    assert bundle.json() == expected
