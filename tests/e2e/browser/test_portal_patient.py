"""The patient's side of the portal in Chromium (issue 8 items 2-4), against ``medledger demo``
really served: every access event verified in the browser, a receipt or checkpoint tampered in
transit shows failed, loudly; a grant and a revocation made in the portal change what a
practitioner can read; the export is a valid FHIR R4 Bundle; erasure leaves a tombstone; the
timeline pages newest first through 10,000 events.

Each test works on its own demo patient so the module's one node serves them all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from playwright.sync_api import Locator, Page, Route, expect

from medledger.adapters.keystore import read_key_file
from medledger.bootstrap import open_node
from medledger.client import new_transaction
from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.cli.demo import DEMO_PASSPHRASE, create_demo_home

from ..conftest import free_port, start, stop
from .conftest import OUTPUT, OpenBrowser, PortalNode, Screenshot, sign_in

ROWS = "#events-body tr[data-event-id]"
ALL_CHECKED = (
    "() => document.querySelectorAll('#events-body tr[data-event-id]').length > 0 && "
    "document.querySelectorAll('#events-body tr[data-verified=pending]').length === 0"
)


def _key(node: PortalNode, name: str) -> ParticipantKey:
    return read_key_file(node.home / "demo-keys" / f"{name}.key", DEMO_PASSPHRASE)


def _wait_all_checked(page: Page) -> None:
    page.wait_for_function(ALL_CHECKED, timeout=30_000)


def _states(page: Page) -> list[str]:
    return [
        str(s) for s in page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.verified)")
    ]


@pytest.fixture(scope="module")
def played(portal_node: PortalNode) -> PortalNode:
    """The demo seeds in the background after it serves: wait (polling) until patient-1 can
    list dr-er's break-glass read, the story's last step."""
    patient = _key(portal_node, "patient-1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        request = new_transaction(
            patient,
            network="medledger-demo",
            tx_type="request.list_audit",
            payload={"patient": patient.did, "purpose": "PATRQT", "decision": "break-glass"},
            now_s=int(time.time()),
            ttl_s=60,
        )
        response = httpx.post(f"{portal_node.url}audit/events", content=request.wire, timeout=30)
        if response.status_code == 200 and response.json()["count"] > 0:
            return portal_node
        time.sleep(0.25)
    raise AssertionError("the demo story did not play within 90 s")


# --- 2. who looked at my data ----------------------------------------------------------------
def test_every_event_of_the_demo_story_shows_verified(
    played: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """Newest first, the story is wherever the demo's later traffic left it: "Older" until
    its lines show, each page verified."""
    page = open_browser().new_page()
    sign_in(page, played, "patient-1")
    _wait_all_checked(page)
    states = _states(page)
    assert len(states) >= 4 and set(states) == {"ok"}, states
    glass = _older_until(page, page.locator(f"{ROWS}.break-glass"))
    expect(glass.first).to_contain_text("BREAK-GLASS")
    expect(glass.first).to_contain_text("unconscious on arrival")
    expect(glass.first).to_contain_text("awaiting the privacy officer's review")
    denied = page.locator(f'{ROWS}[data-decision="deny"]', has_text="dr-clinic")
    denied = _older_until(page, denied)
    expect(denied.first).to_contain_text("Demo Valley Clinic (demo)")
    assert set(_states(page)) == {"ok"}
    expect(page.locator("#verify-alert")).to_be_hidden()
    screenshot(page, "timeline")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "timeline-phone")


def _older_until(page: Page, rows: Locator) -> Locator:
    """Pages "Older" (the timeline is newest first) until ``rows`` match on the page shown."""
    while rows.count() == 0:
        assert page.locator("#older-page").is_enabled(), "not on any page"
        shown = int(page.locator("#events").get_attribute("data-page") or 0)
        page.locator("#older-page").click()
        page.wait_for_function(
            f"() => document.getElementById('events').dataset.page === '{shown + 1}'"
        )
        _wait_all_checked(page)
    return rows


def _fresh_denials(node: PortalNode, count: int = 4) -> None:
    """dr-clinic is denied patient-1's record ``count`` times at once: the newest events, on
    the timeline's first page, include denials, some sharing a batch (a batch proof)."""
    patient = _key(node, "patient-1").did
    record = _first_record(node, patient, "Observation")
    clinic = _key(node, "dr-clinic")
    with ThreadPoolExecutor(count) as pool:
        codes = list(pool.map(lambda _: _read_as(node, clinic, patient, record), range(count)))
    assert codes == [403] * count


def test_filters_narrow_the_timeline(played: PortalNode, open_browser: OpenBrowser) -> None:
    page = open_browser().new_page()
    sign_in(page, played, "patient-1")
    _wait_all_checked(page)
    page.locator("#f-decision").select_option("break-glass")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#events-body tr[data-event-id]')]"
        ".every(r => r.dataset.decision === 'break-glass')"
    )
    _wait_all_checked(page)
    assert page.locator(ROWS).count() >= 1
    assert set(_states(page)) == {"ok"}


def test_my_own_visits_are_one_tick_away(played: PortalNode, open_browser: OpenBrowser) -> None:
    """Each visit to the timeline is an event of the patient's own: left out by default, so the
    first page is what others did; the "Include what I did myself" box brings them back."""
    page = open_browser().new_page()
    sign_in(page, played, "patient-1")
    page.reload()  # one more visit of my own
    _wait_all_checked(page)
    assert page.locator(ROWS, has_text="listed your access events").count() == 0
    page.get_by_label("Include what I did myself").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(ROWS, has_text="listed your access events").first).to_be_visible()


def _tamper_receipts(page: Page, mutate: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Intercepts /audit/events and alters the first receipt ``mutate`` accepts; returns the
    ids of the altered events (the same one on every later poll)."""
    altered: list[str] = []

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for row in body.get("events", []):
            if row.get("receipt") and (not altered or row["event"]["event_id"] == altered[0]):
                receipt = json.loads(row["receipt"])
                if mutate(receipt):
                    row["receipt"] = json.dumps(
                        receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                    )
                    altered[:1] = [row["event"]["event_id"]]
                    break
        route.fulfill(response=response, json=body)

    page.route("**/audit/events", handle)
    return altered


def _flip_batch_proof(receipt: dict[str, Any]) -> bool:
    proof = receipt["batch"]["proof"]
    if not proof:
        return False
    proof[0] = hashlib.sha256(bytes.fromhex(proof[0])).hexdigest()
    return True


def _flip_log_proof(receipt: dict[str, Any]) -> bool:
    lines = receipt["anchor"].split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    if not lines[at]:
        return False
    lines[at] = base64.b64encode(hashlib.sha256(base64.b64decode(lines[at])).digest()).decode()
    receipt["anchor"] = "\n".join(lines)
    return True


def _flip_checkpoint_signature(receipt: dict[str, Any]) -> bool:
    lines = receipt["anchor"].split("\n")
    at = max(i for i, line in enumerate(lines) if line.startswith("\u2014 "))
    dash, name, sig = lines[at].split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 0x01
    lines[at] = f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}"
    receipt["anchor"] = "\n".join(lines)
    return True


@pytest.mark.parametrize(
    ("label", "mutate", "reasons"),
    [
        ("batch-proof-hash", _flip_batch_proof, {"batch-root", "batch-proof"}),
        ("log-proof-hash", _flip_log_proof, {"log-inclusion"}),
        ("checkpoint-signature", _flip_checkpoint_signature, {"checkpoint-signature"}),
    ],
)
def test_a_receipt_tampered_in_transit_shows_failed_loudly(
    played: PortalNode,
    open_browser: OpenBrowser,
    screenshot: Screenshot,
    label: str,
    mutate: Callable[[dict[str, Any]], bool],
    reasons: set[str],
) -> None:
    _fresh_denials(played)
    page = open_browser().new_page()
    altered = _tamper_receipts(page, mutate)
    sign_in(page, played, "patient-1")
    _wait_all_checked(page)
    assert altered, "no receipt had a proof of that kind to alter"
    bad = page.locator(f'{ROWS}[data-event-id="{altered[0]}"]')
    expect(bad).to_have_attribute("data-verified", "failed")
    expect(bad).to_have_class(re.compile(r"\bverify-failed\b"))
    expect(bad).to_contain_text("FAILED")
    assert bad.get_attribute("data-reason") in reasons
    expect(page.locator("#verify-alert")).to_be_visible()
    expect(page.locator("#verify-alert")).to_contain_text("FAILED verification")
    states = _states(page)
    assert states.count("failed") == 1 and states.count("ok") == len(states) - 1, states
    screenshot(page, f"tampered-{label}")


def test_a_listed_event_altered_in_transit_shows_failed(
    played: PortalNode, open_browser: OpenBrowser
) -> None:
    """The receipt is intact but the line shown is not the event it proves (denied -> permitted)."""
    _fresh_denials(played)
    page = open_browser().new_page()
    altered: list[str] = []

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        for row in body.get("events", []):
            if row.get("receipt") and row["event"]["decision"] == "deny":
                row["event"]["decision"] = "permit"
                altered.append(row["event"]["event_id"])
                break
        route.fulfill(response=response, json=body)

    page.route("**/audit/events", handle)
    sign_in(page, played, "patient-1")
    _wait_all_checked(page)
    row = page.locator(f'{ROWS}[data-event-id="{altered[0]}"]')
    expect(row).to_have_attribute("data-verified", "failed")
    assert row.get_attribute("data-reason") == "listed-event"
    expect(page.locator("#verify-alert")).to_be_visible()


def test_an_event_not_yet_anchored_shows_pending_then_verified(
    played: PortalNode, open_browser: OpenBrowser
) -> None:
    """The first answer withholds one receipt (as for a batch not anchored yet): the row is
    pending, and the page asks again until it can verify it."""
    page = open_browser().new_page()
    held: list[str] = []

    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        if not held:
            row = next(r for r in body.get("events", []) if r.get("receipt"))
            row["receipt"] = None
            held.append(row["event"]["event_id"])
        route.fulfill(response=response, json=body)

    page.route("**/audit/events", handle)
    sign_in(page, played, "patient-1")
    page.wait_for_function("() => document.querySelector('#events-body tr[data-event-id]')")
    row = page.locator(f'{ROWS}[data-event-id="{held[0]}"]')
    expect(row).to_have_attribute("data-verified", "pending")
    expect(row).to_contain_text("pending")
    expect(row).to_have_attribute("data-verified", "ok", timeout=15_000)
    expect(page.locator("#verify-alert")).to_be_hidden()


# --- 3. consent ------------------------------------------------------------------------------
def _first_record(node: PortalNode, patient: str, resource_type: str) -> str:
    items = httpx.get(f"{node.url}ledger/records/{patient}", params={"limit": 500}).json()["items"]
    return str(
        next(
            r["record_id"]
            for r in items
            if r["resource_type"] == resource_type and not r["tombstoned"]
        )
    )


def _read_as(node: PortalNode, reader: ParticipantKey, patient: str, record_id: str) -> int:
    request = new_transaction(
        reader,
        network="medledger-demo",
        tx_type="request.read",
        payload={"patient": patient, "record_id": record_id, "purpose": "TREAT"},
        now_s=int(time.time()),
        ttl_s=60,
    )
    return httpx.post(f"{node.url}records/read", content=request.wire, timeout=30).status_code


def test_grant_then_revoke_changes_what_a_practitioner_can_read(
    played: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    patient = _key(played, "patient-3").did
    clinic_doctor = _key(played, "dr-clinic")
    record = _first_record(played, patient, "Observation")
    assert _read_as(played, clinic_doctor, patient, record) == 403  # only the hospital may

    page = open_browser().new_page()
    sign_in(page, played, "patient-3")
    page.goto(played.portal + "/consent")
    expect(page.locator("#who-can-see")).to_have_attribute("data-loaded", "true")
    page.locator("#g-grantee").select_option(clinic_doctor.did)
    page.get_by_label("Observation").check()
    page.locator("#g-from").fill(time.strftime("%Y-%m-%d", time.gmtime()))
    page.locator("#g-until").fill("2030-01-31")
    page.locator("#grant-submit").click()
    granted = page.locator(f'#who-can-see-body tr[data-grantee="{clinic_doctor.did}"]')
    expect(granted).to_contain_text("Observation")
    expect(granted).to_contain_text("TREAT")
    expect(granted).to_contain_text("until 2030-02-01 00:00:00 UTC")  # the end of Jan 31
    expect(page.locator("#flash")).to_contain_text("Granted")
    screenshot(page, "consent-granted")
    assert _read_as(played, clinic_doctor, patient, record) == 200

    consent_id = granted.get_attribute("data-consent-id")
    page.locator(f'[data-revoke="{consent_id}"]').click()
    expect(granted).to_have_count(0)
    expect(page.locator(f'#revoked-body tr[data-consent-id="{consent_id}"]')).to_be_visible()
    screenshot(page, "consent-revoked")
    assert _read_as(played, clinic_doctor, patient, record) == 403


# --- 4. my records ---------------------------------------------------------------------------
def test_view_a_record_and_export_everything_as_a_valid_fhir_bundle(
    played: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot, tmp_path: Path
) -> None:
    patient = _key(played, "patient-4").did
    page = open_browser().new_page()
    sign_in(page, played, "patient-4")
    page.goto(played.portal + "/records")
    expect(page.locator("#records")).to_have_attribute("data-loaded", "true")
    record = _first_record(played, patient, "Observation")
    page.locator(f'[data-view="{record}"]').click()
    expect(page.locator("#view-content")).to_contain_text('"resourceType": "Observation"')
    expect(page.locator("#view-meta")).to_contain_text("Decrypted here, in your browser")
    screenshot(page, "records-view")

    with page.expect_download() as info:
        page.locator("#export").click()
    path = tmp_path / "export.json"
    info.value.save_as(path)
    document = json.loads(path.read_text())
    bundle = Bundle.model_validate(document)  # FHIR R4 (R4B shares Bundle, AuditEvent)
    assert bundle.type == "collection"
    types = [e.resource.get_resource_type() for e in bundle.entry or [] if e.resource]
    assert "Patient" in types and "Observation" in types and "AuditEvent" in types, types
    patients = [
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert any(i.get("value") == patient for p in patients for i in p.get("identifier", []))
    assert len({e["fullUrl"] for e in document["entry"]}) == len(document["entry"])
    expect(page.locator("#export-status")).to_contain_text("Downloaded")
    screenshot(page, "records-exported")


def test_a_ciphertext_altered_in_transit_is_refused(
    played: PortalNode, open_browser: OpenBrowser
) -> None:
    """Key release, then the blob fetched by CID: one flipped byte and the page refuses it."""
    patient = _key(played, "patient-4").did
    record = _first_record(played, patient, "Observation")
    page = open_browser().new_page()

    def flip(route: Route) -> None:
        response = route.fetch()
        body = bytearray(response.body())
        body[-1] ^= 0x01
        route.fulfill(response=response, body=bytes(body))

    page.route("**/blobs/*", flip)
    sign_in(page, played, "patient-4")
    page.goto(played.portal + "/records")
    page.locator(f'[data-view="{record}"]').click()
    expect(page.locator("#flash")).to_contain_text(
        "the ciphertext is not the one the ledger anchors"
    )
    expect(page.locator("#record-view")).to_be_hidden()


def test_erasure_needs_confirmation_and_leaves_a_tombstone(
    played: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    patient = _key(played, "patient-5").did
    record = _first_record(played, patient, "Observation")
    page = open_browser().new_page()
    sign_in(page, played, "patient-5")
    page.goto(played.portal + "/records")
    row = page.locator(f'#records-body tr[data-record-id="{record}"]')
    expect(row).to_have_attribute("data-tombstoned", "false")

    dialog = page.locator("#erase-dialog")
    row.locator(f'[data-erase="{record}"]').click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("cannot be undone")
    screenshot(page, "erase-dialog")
    page.locator("#erase-cancel").click()  # keep it: nothing happens
    expect(dialog).to_be_hidden()
    expect(row).to_have_attribute("data-tombstoned", "false")

    row.locator(f'[data-erase="{record}"]').click()
    page.locator("#erase-confirm").click()  # not yet ticked "I understand": the dialog stays
    expect(dialog).to_be_visible()
    page.locator("#erase-understood").check()
    page.locator("#erase-confirm").click()
    expect(row).to_have_attribute("data-tombstoned", "true")
    expect(row).to_contain_text("erased")
    expect(page.locator("#flash")).to_contain_text("Erased")
    screenshot(page, "records-erased")

    head = httpx.get(f"{played.url}ledger/records/{patient}/{record}").json()["head"]
    assert head["tombstoned"] is True and head["tombstone"]["by"]
    request = new_transaction(
        _key(played, "patient-5"),
        network="medledger-demo",
        tx_type="request.read",
        payload={"patient": patient, "record_id": record, "purpose": "PATRQT"},
        now_s=int(time.time()),
        ttl_s=60,
    )
    assert httpx.post(f"{played.url}records/read", content=request.wire).status_code >= 400


# --- 10,000 events ---------------------------------------------------------------------------
TEN_THOUSAND = 10_000


@dataclass(frozen=True)
class BusyNode:
    """The served demo node with 10,000 events of patient-5, and the last of them recorded."""

    node: PortalNode
    last_seeded: str


@pytest.fixture(scope="module")
def busy_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusyNode]:
    """A demo home whose node recorded 10,000 access events for patient-5 through its own
    audit service (anchored, receipts ready) before ``medledger demo`` serves it."""
    home = tmp_path_factory.mktemp("portal-busy") / "demo"
    port = free_port()
    create_demo_home(home, port=port)
    patient = read_key_file(home / "demo-keys" / "patient-5.key", DEMO_PASSPHRASE).did
    actors = [
        read_key_file(home / "demo-keys" / f"{n}.key", DEMO_PASSPHRASE).did
        for n in ("dr-house", "nurse-joy", "dr-clinic")
    ]
    node = open_node(home)
    node.start()
    try:
        start_ms = int(time.time() * 1000) - TEN_THOUSAND * 1000
        last = ""
        for i in range(TEN_THOUSAND):
            last = new_event_id(os.urandom(16))
            denied = i % 7 == 0
            node.audit.record(
                AccessEvent(
                    last, start_ms + i * 1000, node.key.did, actors[i % 3], node.key.did,
                    patient, "read", "Observation", f"obs-{i % 50}", 1, "TREAT",
                    "deny" if denied else "permit",
                    ("no-consent",) if denied else ("consent-permit",),
                    () if denied else ("consent-1",), None,
                )
            )  # fmt: skip
        assert node.audit.wait_receipt(last, 60) is not None
    finally:
        node.close()
    url = f"http://127.0.0.1:{port}/"
    process = start(["demo", "--home", str(home), "--port", str(port)], url, timeout_s=90)
    try:
        deadline = time.monotonic() + 90  # the demo registers its people in the background
        while not httpx.get(f"{url}ledger/records/{patient}").json().get("items"):
            assert time.monotonic() < deadline, "patient-5 was never registered with a record"
            time.sleep(0.25)
        yield BusyNode(PortalNode(home, url, process), last)
    finally:
        stop(process)


def _page_ids(page: Page) -> list[str]:
    return [
        str(i) for i in page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.eventId)")
    ]


def _page_times(page: Page) -> list[int]:
    return [
        int(t)
        for t in page.locator(ROWS).evaluate_all(
            "rows => rows.map(r => Date.parse(r.querySelector('time').getAttribute('datetime')))"
        )
    ]


def _listed_before(node: PortalNode, name: str, before: str, limit: int) -> list[str]:
    """The node's own newest-first listing before an event, through the signed API."""
    key = _key(node, name)
    request = new_transaction(
        key,
        network="medledger-demo",
        tx_type="request.list_audit",
        payload={
            "patient": key.did,
            "purpose": "PATRQT",
            "order": "newest",
            "before": before,
            "limit": limit,
        },
        now_s=int(time.time()),
        ttl_s=60,
    )
    response = httpx.post(f"{node.url}audit/events", content=request.wire, timeout=60)
    assert response.status_code == 200, response.text
    return [row["event"]["event_id"] for row in response.json()["events"]]


def _timings(page: Page) -> dict[str, int]:
    return {
        "load_ms": int(page.locator("#events").get_attribute("data-load-ms") or -1),
        "verify_ms": int(page.locator("#events").get_attribute("data-verify-ms") or -1),
    }


def test_the_timeline_pages_through_ten_thousand_events_newest_first(
    busy_node: BusyNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """Page one holds the most recent events -- the last of the 10,000 among them (below the
    few the demo and this page's own listings made since); "Older" goes back 50 at a time,
    never repeating or skipping one (the node's own listing before page one's first event is
    exactly what the pages showed); "Newer" returns to the page shown before."""
    node = busy_node.node
    page = open_browser().new_page()
    sign_in(page, node, "patient-5")
    _wait_all_checked(page)
    figures: dict[str, Any] = {"events": TEN_THOUSAND, "order": "newest"}
    first = _page_ids(page)
    assert len(first) == 50 and set(_states(page)) == {"ok"}
    assert busy_node.last_seeded in first
    figures["first_page"] = _timings(page)
    pages, times = [first], [_page_times(page)]
    for n in range(2, 5):
        started = time.perf_counter()
        page.locator("#older-page").click()
        page.wait_for_function(f"() => document.getElementById('events').dataset.page === '{n}'")
        _wait_all_checked(page)
        ids = _page_ids(page)
        figures[f"older_page_{n}"] = {
            "wall_ms": round((time.perf_counter() - started) * 1000),
            **_timings(page),
        }
        assert len(ids) == 50 and not {*ids} & {i for p in pages for i in p}
        assert set(_states(page)) == {"ok"}
        shown = _page_times(page)
        assert shown == sorted(shown, reverse=True) and max(shown) <= min(times[-1])
        pages.append(ids)
        times.append(shown)
    everything = [i for p in pages for i in p]
    assert _listed_before(node, "patient-5", first[0], len(everything) - 1) == everything[1:]
    page.locator("#newer-page").click()
    page.wait_for_function("() => document.getElementById('events').dataset.page === '3'")
    _wait_all_checked(page)
    assert _page_ids(page) == pages[2]
    screenshot(page, "timeline-10k")
    page.locator("#f-decision").select_option("deny")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function(
        "() => document.getElementById('events').dataset.page === '1' && "
        "[...document.querySelectorAll('#events-body tr[data-event-id]')]"
        ".every(r => r.dataset.decision === 'deny')"
    )
    _wait_all_checked(page)
    assert page.locator(ROWS).count() == 50
    denied = _page_times(page)
    assert denied == sorted(denied, reverse=True)
    (OUTPUT / "portal-timeline-10k.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures))
