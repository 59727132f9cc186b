"""The ledger explorer, in Chromium (issue 8 item 6): blocks, transactions, checkpoints, and a
consistency check between two checkpoints run in the page -- which passes on what the node
serves, and fails loudly when the proof or a checkpoint is altered in transit (``page.route``).

Against ``medledger demo`` really served (``portal_node``), by a visitor who is not signed in:
the page verifies with the log key it was served with, and says so.
"""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
from playwright.sync_api import Page, Route, expect

from .conftest import OpenBrowser, PortalNode, Screenshot


def wait_for_checkpoints(node: PortalNode, count: int) -> None:
    """The demo signs a checkpoint as its log grows (about every second): wait for a few."""
    deadline = time.monotonic() + 60
    while len(httpx.get(f"{node.url}log/checkpoints?limit=20").json()["items"]) < count:
        assert time.monotonic() < deadline, "the demo signs no checkpoints"
        time.sleep(0.2)


def open_explorer(page: Page, node: PortalNode) -> None:
    page.goto(node.portal + "/explorer")
    page.locator("#blocks-table tbody tr").first.wait_for()
    page.locator("#checkpoints-table tbody tr").first.wait_for()


def check(page: Page) -> str:
    page.locator("#consistency-result").evaluate("e => e.replaceChildren()")
    page.get_by_role("button", name="Check consistency").click()
    result = page.locator("#consistency-result [data-result]")
    result.wait_for()
    return str(result.get_attribute("data-result"))


def test_blocks_page_back_and_a_block_shows_its_transactions(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    wait_for_checkpoints(portal_node, 3)
    page = open_browser().new_page()
    open_explorer(page, portal_node)
    expect(page.locator("#key-source")).to_contain_text("sign in to pin it")
    rows = page.locator("#blocks-table tbody tr")
    heights = [int(rows.nth(i).get_attribute("data-height") or -1) for i in range(rows.count())]
    assert heights == list(range(heights[0], heights[0] - len(heights), -1))
    assert len(heights) == 10 or heights[-1] == 0

    # block 1 holds the demo's first registrations: participant.register by an organization
    while page.locator('#blocks-table tr[data-height="1"]').count() == 0:
        top = rows.first.get_attribute("data-height")
        page.get_by_role("button", name="Older").click()
        expect(rows.first).not_to_have_attribute("data-height", str(top))
    page.get_by_role("button", name="Show block 1", exact=True).click()
    txs = page.locator("#txs-table tbody tr")
    txs.first.wait_for()
    types = {txs.nth(i).get_attribute("data-type") for i in range(txs.count())}
    assert "participant.register" in types
    first = txs.first
    tx_id = first.get_attribute("data-tx-id")
    served = httpx.get(f"{portal_node.url}ledger/transactions/{tx_id}").json()["transaction"]
    first.locator("summary").click()
    assert json.loads(first.locator("pre").inner_text()) == served["payload"]
    expect(first).to_contain_text("General Hospital")  # the sender by name, not a did:key
    expect(first.locator(".badge")).to_have_text("ok")
    screenshot(page, "explorer-block")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: tables become cards
    expect(page.locator("#txs-table thead")).to_be_hidden()
    expect(first.locator('td[data-label="Sender"]')).to_be_visible()
    screenshot(page, "explorer-block-phone")


def test_consistency_between_two_checkpoints_passes_and_fails_when_tampered(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    wait_for_checkpoints(portal_node, 3)
    page = open_browser().new_page()
    open_explorer(page, portal_node)
    rows = page.locator("#checkpoints-table tbody tr[data-verified=true]")
    sizes = [int(rows.nth(i).get_attribute("data-size") or 0) for i in range(rows.count())]
    sizes = [n for n in sizes if n > 0]  # from the empty tree, a proof is empty: nothing to alter
    assert len(sizes) >= 2
    newest, oldest = max(sizes), min(sizes)
    page.select_option("#cp-from", str(oldest))
    page.select_option("#cp-to", str(newest))
    assert check(page) == "ok"
    expect(page.locator("#consistency-result")).to_contain_text(f"size {newest} extends")
    screenshot(page, "explorer-consistent")

    def flip_a_hash(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        assert body["hashes"], "a proof between different non-empty sizes is never empty"
        first = bytearray(base64.b64decode(body["hashes"][0]))
        first[0] ^= 1
        body["hashes"][0] = base64.b64encode(bytes(first)).decode()
        route.fulfill(response=response, json=body)

    page.route(re.compile(r".*/log/proof/consistency\?.*"), flip_a_hash)
    assert check(page) == "failed"
    expect(page.locator("#consistency-result .verify-failed")).to_contain_text("FAILED")
    expect(page.locator("#flash")).to_contain_text("Consistency check FAILED")
    screenshot(page, "explorer-tampered-proof")

    page.unroute(re.compile(r".*/log/proof/consistency\?.*"))  # a truncated proof fails too
    page.route(
        re.compile(r".*/log/proof/consistency\?.*"),
        lambda route: route.fulfill(
            response=(r := route.fetch()), json={**r.json(), "hashes": r.json()["hashes"][:-1]}
        ),
    )
    assert check(page) == "failed"


def test_a_checkpoint_altered_in_transit_shows_failed(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    wait_for_checkpoints(portal_node, 2)
    page = open_browser().new_page()

    def alter_the_newest_root(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        origin, size, root, *rest = body["items"][0]["note"].split("\n")
        forged = bytearray(base64.b64decode(root))
        forged[0] ^= 1
        note = "\n".join([origin, size, base64.b64encode(bytes(forged)).decode(), *rest])
        body["items"][0]["note"] = note
        route.fulfill(response=response, json=body)

    page.route(re.compile(r".*/log/checkpoints(\?.*)?$"), alter_the_newest_root)
    open_explorer(page, portal_node)
    forged = page.locator("#checkpoints-table tbody tr[data-verified=false]")
    expect(forged).to_have_count(1)
    expect(forged).to_contain_text("FAILED")
    expect(page.locator("#flash")).to_contain_text("FAILED verification")
    # a forged checkpoint is never offered for a consistency check
    size = forged.get_attribute("data-size")
    expect(page.locator(f'#cp-to option[value="{size}"]')).to_have_count(0)
    screenshot(page, "explorer-forged-checkpoint")


def test_checkpoints_this_browser_saw_are_kept_and_still_checkable(
    open_browser: OpenBrowser, portal_node: PortalNode, screenshot: Screenshot
) -> None:
    wait_for_checkpoints(portal_node, 3)
    browser = open_browser()
    page = browser.new_page()
    open_explorer(page, portal_node)
    seen = page.locator("#checkpoints-table tbody tr[data-verified=true]")
    sizes = [int(seen.nth(i).get_attribute("data-size") or 0) for i in range(seen.count())]
    oldest = min(n for n in sizes if n > 0)  # from the empty tree there is nothing to prove
    page.close()

    # later, the node lists only its newest checkpoint: the old ones come from IndexedDB
    def newest_only(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        route.fulfill(response=response, json={"items": body["items"][:1], "next": None})

    later = browser.new_page()
    later.route(re.compile(r".*/log/checkpoints(\?.*)?$"), newest_only)
    open_explorer(later, portal_node)
    expect(later.locator(f'#cp-from option[value="{oldest}"]')).to_have_count(1)
    newest = later.locator("#checkpoints-table tbody tr").first.get_attribute("data-size")
    assert int(newest or 0) >= max(sizes)
    later.select_option("#cp-from", str(oldest))
    later.select_option("#cp-to", str(newest))
    assert check(later) == "ok"
    screenshot(later, "explorer-kept-checkpoints")
