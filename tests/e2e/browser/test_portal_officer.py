"""The privacy officer's console and the practitioner's page, in Chromium (issue 8 items 5-6).

Against ``medledger demo`` really served (``portal_node``): its story leaves dr-er's
break-glass read of patient-1's record in the hospital's review queue; patient-2 consents to
the clinic, patient-3 to the hospital only. Every request the pages make is signed in the page
with the user's own key (ADR 0020); the assertions are what the user sees, and the ledger.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from playwright.sync_api import Page, Route, expect

from medledger.core.audit.review_note import note_commitment

from .conftest import OpenBrowser, PortalNode, Screenshot, sign_in

VECTORS = Path(__file__).parents[2] / "vectors"
STORY_JUSTIFICATION = "Demo: unconscious on arrival, allergies unknown"
REVIEW_NOTE = "Called the ER lead: found in the waiting room, unresponsive.\nWarranted. 😀"
DECISIONS = ("permit", "deny", "break-glass")


def become(page: Page, node: PortalNode, name: str) -> None:
    """Sign in as a demo user through the sign-in page's button, once the demo has seeded."""
    seeded(node)
    sign_in(page, node, name)


def seeded(node: PortalNode) -> None:
    """Wait for the demo's seeding: its people registered, a record anchored for each
    patient and each patient's consent granted (the story's reads follow at once)."""
    deadline = time.monotonic() + 60
    people = dids(node)
    patients = [did for name, did in people.items() if name.startswith("patient-")]
    checks = [(f"ledger/participants/{did}", "did") for did in people.values()]
    checks += [(f"ledger/records/{did}", "items") for did in patients]
    checks += [(f"consents/{did}", "consents") for did in patients]
    for path, field in checks:
        while True:
            r = httpx.get(node.url + path)
            if r.status_code == 200 and r.json()[field]:
                break
            assert time.monotonic() < deadline, f"the demo did not seed {path}"
            time.sleep(0.2)
    # the story ends with dr-er's break-glass read of patient-1's record
    while not any(e["decision"] == "break-glass" for e in patient_audit(node, "patient-1")):
        assert time.monotonic() < deadline, "the demo's story did not play"
        time.sleep(0.2)


def dids(node: PortalNode) -> dict[str, str]:
    page_info = httpx.get(node.portal).text
    found = re.search(r'<script type="application/json" id="node-info">(.*?)</script>', page_info)
    assert found
    return {u["name"]: u["did"] for u in json.loads(found.group(1))["demo"]}


# --- the officer's console --------------------------------------------------------------------
def test_the_officer_approves_the_story_break_glass_and_it_is_on_the_ledger(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "officer-hospital")
    page.goto(portal_node.portal + "/officer")
    row = page.locator("#queue-table tbody tr", has_text=STORY_JUSTIFICATION)
    approve = row.locator('button[data-outcome="justified"]')
    deadline = time.monotonic() + 60
    page.locator("#queue table, #queue-empty").first.wait_for()
    while not approve.count():  # the story may still be playing, its batch anchoring: reload
        assert time.monotonic() < deadline, page.locator("#queue").inner_text()
        time.sleep(0.5)
        page.reload()
        page.locator("#queue table, #queue-empty").first.wait_for()
    event_id = row.get_attribute("data-event-id")
    assert event_id and row.locator("td", has_text="ETREAT").count()
    expect(page.locator("#status-checkpoint")).to_have_attribute("data-verified", "true")
    expect(page.locator("#status-lag")).to_have_attribute("data-mode", "solo")
    screenshot(page, "officer-console")

    # the note: a labelled text area in the row; one too long is refused before anything is signed
    note_box = page.get_by_label("Note (optional; kept off the ledger)").and_(
        page.locator(f'textarea[data-note-for="{event_id}"]')
    )
    note_box.fill("x" * 2001)
    approve.click()
    expect(page.locator("#flash")).to_contain_text("at most 2000")
    expect(row).to_be_visible()
    expect(approve).to_be_enabled()
    note_box.fill(REVIEW_NOTE)

    approve.focus()  # from the keyboard
    page.keyboard.press("Enter")
    done = page.locator(f'#reviewed li[data-event-id="{event_id}"]')
    expect(done).to_have_attribute("data-outcome", "justified")
    expect(page.locator(f'#queue tr[data-event-id="{event_id}"]')).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text("Reviewed as justified")
    expect(done).to_have_attribute("data-note", "sent")
    expect(done.locator('.review-note[data-note-verified="true"]')).to_contain_text(REVIEW_NOTE)
    focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
    assert focused in ("reviewed-h", "BUTTON")  # focus stays in the queue, not lost to <body>
    ruling = page.locator(f'#rulings li[data-event-id="{event_id}"]')
    expect(ruling.locator('.review-note[data-note-verified="true"]')).to_contain_text(REVIEW_NOTE)
    screenshot(page, "officer-reviewed")

    tx_id = done.get_attribute("data-tx-id")
    status = httpx.get(f"{portal_node.url}ledger/transactions/{tx_id}").json()
    assert status["status"] == "committed" and status["ok"] is True
    tx = status["transaction"]
    assert tx["type"] == "access.review" and tx["sender"] == dids(portal_node)["officer-hospital"]
    assert tx["payload"]["event_id"] == event_id and tx["payload"]["outcome"] == "justified"
    # the ledger holds a commitment to the note, never its text
    assert set(tx["payload"]) == {"batch_id", "event_id", "outcome", "note_commitment"}
    assert "waiting room" not in json.dumps(status)

    # the patient sees the note with the ruling and checks it against the ledger's commitment
    [mine] = [
        r for r in patient_rows(portal_node, "patient-1") if r["event"]["event_id"] == event_id
    ]
    review = mine["review"]
    assert review["note"] == REVIEW_NOTE and review["note_verified"] is True
    assert review["officer"] == dids(portal_node)["officer-hospital"]
    salt = bytes.fromhex(review["note_salt"])
    assert note_commitment(event_id, review["note"], salt) == tx["payload"]["note_commitment"]
    # ... and so does their timeline, the note checked in the patient's own browser
    mine_page = open_browser().new_page()
    become(mine_page, portal_node, "patient-1")
    mine_page.locator("#f-decision").select_option("break-glass")
    mine_page.get_by_role("button", name="Apply").click()
    reviewed = mine_page.locator(f'#events-body tr[data-event-id="{event_id}"]')
    expect(reviewed.locator('[data-review-outcome="justified"]')).to_contain_text("justified")
    expect(reviewed.locator('.review-note[data-note-verified="true"]')).to_contain_text(REVIEW_NOTE)
    screenshot(mine_page, "patient-sees-the-review-note")

    page.reload()  # the ruling is on the ledger: the row stays gone
    page.locator("#queue table, #queue-empty").first.wait_for()
    expect(page.locator(f'#queue tr[data-event-id="{event_id}"]')).to_have_count(0)


def test_the_page_computes_the_same_note_commitments_as_the_node(
    open_browser: OpenBrowser, portal_node: PortalNode
) -> None:
    vectors = json.loads((VECTORS / "review_note" / "commitments.json").read_text())["vectors"]
    page = open_browser().new_page()
    page.goto(portal_node.portal + "/explorer")  # any portal page: the modules' origin
    got = page.evaluate(
        """async (vectors) => {
            const m = await import("/portal/static/js/lib/review_note.js");
            const out = [];
            for (const v of vectors) {
              out.push(await m.noteCommitment(v.event_id, v.note, v.salt));
              out.push(await m.isNoteCommitted(v.commitment, v.event_id, v.note + "!", v.salt));
            }
            return out;
        }""",
        vectors,
    )
    assert got == [x for v in vectors for x in (v["commitment"], False)]


def table_rows(page: Page, chart: str) -> list[dict[str, Any]]:
    rows = page.locator(f'table[data-chart-table="{chart}"] tbody tr')
    out = []
    for i in range(rows.count()):
        row = rows.nth(i)
        cells = row.locator("td")
        out.append({
            "key": row.get_attribute("data-category"),
            "label": row.locator("th").inner_text(),
            **{cells.nth(j).get_attribute("data-series"): int(cells.nth(j).inner_text())
               for j in range(cells.count())},
        })  # fmt: skip
    return out


def test_charts_have_bars_and_their_tables_say_what_the_endpoint_said(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "officer-hospital")
    with page.expect_response(re.compile(r".*/audit/stats$")) as answer:
        page.goto(portal_node.portal + "/officer")
    stats = answer.value.json()
    page.locator("#chart-decisions rect[data-value]").first.wait_for()

    days = table_rows(page, "chart-decisions")
    assert [d["key"] for d in days] == [d["day"] for d in stats["days"]]
    for shown, served in zip(days, stats["days"], strict=True):
        assert all(shown[k] == served[k] for k in DECISIONS), (shown, served)
    assert all(sum(day[k] for day in stats["days"]) > 0 for k in DECISIONS)  # the story's
    busiest = max(stats["days"], key=lambda day: day["deny"])  # today, unless past midnight
    bars = page.locator("#chart-decisions rect[data-category][data-value]")
    drawn = {}
    for i in range(bars.count()):
        bar = bars.nth(i)
        key = (bar.get_attribute("data-category"), bar.get_attribute("data-series"))
        drawn[key] = int(bar.get_attribute("data-value") or 0)
    assert drawn[(busiest["day"], "deny")] == busiest["deny"] > 0
    assert all(v > 0 for v in drawn.values())

    names = {did: name for name, did in dids(portal_node).items()}
    denials = table_rows(page, "chart-denials")
    served = [(names.get(a["actor"]), a["count"]) for a in stats["denials_by_actor"]]
    assert [(d["label"], d["value"]) for d in denials] == served
    assert any(d["label"] == "dr-clinic" for d in denials)  # the story's denial
    assert page.locator("#chart-denials rect[data-value]").count() == len(denials) > 0
    screenshot(page, "officer-charts")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the tables still read
    expect(page.locator('table[data-chart-table="chart-denials"]')).to_be_visible()
    screenshot(page, "officer-charts-phone")


def test_a_practitioner_without_the_role_gets_a_clear_refusal(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "dr-house")
    page.goto(portal_node.portal + "/officer")
    expect(page.locator("#flash")).to_contain_text("for privacy officers")
    expect(page.locator("#queue-table")).to_have_count(0)
    screenshot(page, "officer-refused")


# --- the practitioner's page ------------------------------------------------------------------
def pick_patient(page: Page, name: str) -> None:
    option = page.locator("#patient option", has_text=re.compile(rf"^{name} "))
    page.select_option("#patient", option.get_attribute("value"))


def read_first_record(page: Page, patient: str) -> Any:
    pick_patient(page, patient)
    first = page.locator("#records-table tbody tr").first
    record_id = first.get_attribute("data-record-id")
    first.locator("button[data-read]").click()
    result = page.locator(f'#result .result[data-record-id="{record_id}"]')
    result.wait_for()
    return result


def test_a_practitioner_is_denied_without_consent_then_permitted_with_it(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "dr-clinic")
    page.goto(portal_node.portal + "/clinician")
    expect(page.locator("#patient option", has_text="patient-3")).to_have_count(1)

    denied = read_first_record(page, "patient-3")  # consents to the hospital only
    expect(denied).to_have_attribute("data-outcome", "denied")
    denied_record = denied.get_attribute("data-record-id")
    expect(denied).to_contain_text("Denied by the patient's consent")
    expect(page.locator("#flash")).to_contain_text("the patient sees it")
    assert page.locator("#purpose option[value=ETREAT]").count() == 0  # not an ER physician
    screenshot(page, "clinician-denied")

    permitted = read_first_record(page, "patient-2")  # consents to the clinic
    expect(permitted).to_have_attribute("data-outcome", "permitted")
    content = json.loads(permitted.locator("pre").inner_text())
    assert content["resourceType"] and content["meta"]["tag"][0]["code"]
    screenshot(page, "clinician-permitted")
    assert "did:key" not in page.url and "patient" not in page.url

    # the denial is an access event in patient-3's own audit trail
    events = patient_audit(portal_node, "patient-3")
    assert any(
        e["actor"] == dids(portal_node)["dr-clinic"]
        and e["record_id"] == denied_record
        and e["decision"] == "deny"
        for e in events
    )


def patient_audit(node: PortalNode, name: str) -> list[dict[str, Any]]:
    """The patient's access events, listed with their own key (signed request.list_audit)."""
    return [row["event"] for row in patient_rows(node, name)]


def patient_rows(node: PortalNode, name: str) -> list[dict[str, Any]]:
    """The patient's audit rows: each event with its receipt and, for break-glass, review."""
    from medledger.client import new_transaction
    from medledger.entrypoints.cli.demo import load_demo_keys

    key = load_demo_keys(node.home)[name]
    network = httpx.get(f"{node.url}healthz").json()["network"]
    request = new_transaction(
        key, network=network, tx_type="request.list_audit", now_s=int(time.time()), ttl_s=60,
        payload={"patient": key.did, "purpose": "PATRQT", "limit": 1000},
    )  # fmt: skip
    response = httpx.post(f"{node.url}audit/events", content=request.wire, timeout=30)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["events"]
    return rows


def test_an_emergency_physician_breaks_the_glass_with_a_justification(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "dr-er")
    page.goto(portal_node.portal + "/clinician")
    page.select_option("#purpose", "ETREAT")
    expect(page.locator("#break-glass")).to_be_visible()
    pick_patient(page, "patient-1")
    page.locator("#records-table tbody tr button[data-read]").first.click()
    expect(page.locator("#flash")).to_contain_text("needs a justification")  # none given yet
    why = f"Browser test {time.time_ns()}: collapsed in the waiting room, history needed"
    page.fill("#justification", why)
    page.locator("#records-table tbody tr button[data-read]").first.click()
    result = page.locator("#result .result")
    expect(result).to_have_attribute("data-outcome", "permitted")
    expect(result).to_contain_text("BREAK-GLASS")
    # patient-1 revoked every consent: it was a break-glass, with the justification, in their trail
    assert any(
        e["decision"] == "break-glass" and e["justification"] == why
        for e in patient_audit(portal_node, "patient-1")
    )
    screenshot(page, "clinician-break-glass")


def test_the_practitioner_page_works_from_the_keyboard_alone(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "nurse-joy")  # the hospital's nurse: patient-4 consents to it
    page.goto(portal_node.portal + "/clinician")
    expect(page.locator("#patient option", has_text="patient-4")).to_have_count(1)
    page.locator("#patient").focus()
    target = page.locator("#patient option", has_text=re.compile(r"^patient-4 "))
    index = page.locator("#patient option").all_inner_texts().index(target.inner_text())
    for _ in range(index):
        page.keyboard.press("ArrowDown")
    page.locator("#records-table").wait_for()
    read = page.locator("#records-table button[data-read]").first
    for _ in range(10):  # Tab through purpose and "List records" to the first Read button
        page.keyboard.press("Tab")
        if read.evaluate("b => b === document.activeElement"):
            break
    assert read.evaluate("b => b === document.activeElement")
    page.keyboard.press("Enter")
    expect(page.locator("#result .result")).to_have_attribute("data-outcome", "permitted")
    screenshot(page, "clinician-keyboard")


def test_a_practitioner_reaches_the_page_from_the_navigation(
    open_browser: OpenBrowser, portal_node: PortalNode
) -> None:
    page = open_browser().new_page()
    become(page, portal_node, "dr-house")
    page.goto(portal_node.portal + "/explorer")
    page.get_by_role("navigation").get_by_role("link", name="Patient records").click()
    page.wait_for_url(re.compile(r".*/portal/clinician$"))
    expect(page.locator('nav a[data-nav="clinician"]')).to_have_attribute("aria-current", "page")


def signed_wire(node: PortalNode, name: str, tx_type: str, payload: dict[str, Any]) -> bytes:
    from medledger.client import new_transaction
    from medledger.entrypoints.cli.demo import load_demo_keys

    key = load_demo_keys(node.home)[name]
    network = httpx.get(f"{node.url}healthz").json()["network"]
    return new_transaction(
        key, network=network, tx_type=tx_type, payload=payload, now_s=int(time.time()), ttl_s=120
    ).wire


def test_a_ruling_someone_else_made_first_is_refused_by_the_ledger_and_said_so(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    seeded(portal_node)
    why = f"Race test {time.time_ns()}: found unresponsive, medication list needed"
    patient = dids(portal_node)["patient-1"]
    record = httpx.get(f"{portal_node.url}ledger/records/{patient}").json()["items"][0]
    read = {"patient": patient, "record_id": record["record_id"], "purpose": "ETREAT",
            "justification": why}  # fmt: skip
    r = httpx.post(f"{portal_node.url}records/read",
                   content=signed_wire(portal_node, "dr-er", "request.read", read))  # fmt: skip
    assert r.status_code == 200, r.text

    page = open_browser().new_page()
    become(page, portal_node, "officer-hospital")
    page.goto(portal_node.portal + "/officer")
    row = page.locator("#queue-table tbody tr", has_text=why)
    flag = row.locator('button[data-outcome="unjustified"]')
    deadline = time.monotonic() + 30
    page.locator("#queue table, #queue-empty").first.wait_for()
    while not flag.count():  # until the event's batch is anchored
        assert time.monotonic() < deadline
        time.sleep(0.3)
        page.reload()
        page.locator("#queue table, #queue-empty").first.wait_for()
    event_id = row.get_attribute("data-event-id")
    ask = signed_wire(
        portal_node, "officer-hospital", "request.review_queue", {"purpose": "HOPERAT"}
    )
    queue = httpx.post(f"{portal_node.url}audit/reviews", content=ask).json()["events"]
    batch = next(e["batch_id"] for e in queue if e["event"]["event_id"] == event_id)
    review = {"batch_id": batch, "event_id": event_id, "outcome": "referred"}
    done = httpx.post(f"{portal_node.url}ledger/transactions?wait=commit", content=signed_wire(
        portal_node, "officer-hospital", "access.review", review)).json()  # fmt: skip
    assert done["ok"], done

    flag.click()  # the page still shows it: the ledger refuses a second ruling
    expect(page.locator("#flash")).to_contain_text("reviewed this access already")
    expect(page.locator(f'#queue tr[data-event-id="{event_id}"]')).to_have_count(0)
    expect(page.locator(f'#reviewed li[data-event-id="{event_id}"]')).to_have_count(0)
    screenshot(page, "officer-already-reviewed")


def test_a_slow_answer_for_the_previous_patient_never_shows_under_the_next(
    open_browser: OpenBrowser, portal_node: PortalNode
) -> None:
    people = dids(portal_node)
    slow, quick = people["patient-4"], people["patient-5"]
    page = open_browser().new_page()
    become(page, portal_node, "dr-house")
    held: list[Route] = []

    def for_slow(url: str) -> bool:  # the page encodes the did's colons
        return f"/ledger/records/{slow}?" in unquote(url)

    def hold(route: Route) -> None:  # patient-4's listing is held back...
        held.append(route)

    page.route(for_slow, hold)
    page.goto(portal_node.portal + "/clinician")
    expect(page.locator("#patient option", has_text="patient-5")).to_have_count(1)
    page.select_option("#patient", slow)
    page.select_option("#patient", quick)
    page.locator("#records-table").wait_for()  # ...patient-5's is shown...
    assert len(held) == 1
    with page.expect_response(lambda r: for_slow(r.url)) as late:
        held[0].fulfill(response=held[0].fetch())  # ...then patient-4's arrives
    late.value.finished()
    page.evaluate("() => new Promise((done) => setTimeout(done, 100))")  # the page handles it

    def records(did: str) -> set[str]:
        items = httpx.get(f"{portal_node.url}ledger/records/{did}").json()["items"]
        return {h["record_id"] for h in items}

    rows = page.locator("#records-table tbody tr")
    shown = {rows.nth(i).get_attribute("data-record-id") for i in range(rows.count())}
    assert shown and shown <= records(quick) and not shown & records(slow)
