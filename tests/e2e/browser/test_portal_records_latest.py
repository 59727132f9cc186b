"""My records proves the version shown is the record's latest (ADR 0024), in Chromium.

Against ``medledger demo`` really served: the node (the custodian) stores two versions of a
record of patient-3, and the patient opens it in "My records". Honestly served, the page
shows the latest-version check passed against a block signed by a network authority. Then
dishonest nodes, played with ``page.route``, each fail ``latest`` loudly in the page: one
that releases the older version while a newer one exists (the key release re-signed for
version 1 with the patient's own key, so everything about version 1 is genuine); one that
serves the older head's bytes under the current proof; one that serves a genuine but stale
state proof, from a block older than the checkpoint proving the anchor; one whose proof has
a flipped sibling; one whose genesis is not the one the browser pinned; and one that hides an
erasure, replaying a key release from before it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from medledger.adapters.keystore import read_key_file
from medledger.client import new_transaction
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.cli.demo import DEMO_PASSPHRASE

from .conftest import OpenBrowser, PortalNode, Screenshot, sign_in

PATIENT = "patient-3"
RECORD_ID = "latest-check"
NETWORK = "medledger-demo"


@dataclass
class TwoVersions:
    node: PortalNode
    patient: ParticipantKey
    v1_answer: bytes  # the genuine GET /ledger/state-proof answer while version 1 was the head

    @property
    def key(self) -> str:
        return f"record/{self.patient.did}/{RECORD_ID}"


def _put(
    node: PortalNode, patient: str, value: float, record_id: str = RECORD_ID
) -> dict[str, Any]:
    content = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "valueQuantity": {"value": value, "unit": "Cel"},
    }
    body = {
        "patient": patient,
        "record_id": record_id,
        "resource_type": "Observation",
        "content": content,
    }
    r = httpx.post(f"{node.url}records", json=body, timeout=30)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.fixture(scope="module")
def two_versions(portal_node: PortalNode) -> TwoVersions:
    """Waits (polling) for the demo to register patient-3, then puts versions 1 and 2."""
    patient = read_key_file(portal_node.home / "demo-keys" / f"{PATIENT}.key", DEMO_PASSPHRASE)
    deadline = time.monotonic() + 90
    while httpx.get(f"{portal_node.url}ledger/participants/{patient.did}").status_code != 200:
        assert time.monotonic() < deadline, "the demo did not register the patient within 90 s"
        time.sleep(0.25)
    assert _put(portal_node, patient.did, 38.2)["version"] == 1
    key = f"record/{patient.did}/{RECORD_ID}"
    v1_answer = httpx.get(f"{portal_node.url}ledger/state-proof", params={"key": key}).content
    assert _put(portal_node, patient.did, 36.6)["version"] == 2
    return TwoVersions(portal_node, patient, v1_answer)


def _open(page: Page, served: TwoVersions, record_id: str = RECORD_ID) -> None:
    sign_in(page, served.node, PATIENT)
    page.goto(served.node.portal + "/records")
    expect(page.locator("#records")).to_have_attribute("data-loaded", "true")
    page.locator(f'[data-view="{record_id}"]').click()


def _expect_failed(page: Page, *texts: str) -> None:
    flash = page.locator("#flash")
    expect(flash).to_contain_text('check "latest" FAILED')
    for text in texts:
        expect(flash).to_contain_text(text)
    expect(page.locator("#record-view")).to_be_hidden()
    expect(page.locator("#record-view")).to_have_attribute("data-latest", "failed")


def test_the_latest_version_is_proven_in_the_page(
    two_versions: TwoVersions, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    _open(page, two_versions)
    expect(page.locator("#view-h")).to_have_text("Observation, version 2")
    expect(page.locator("#view-meta")).to_contain_text("Latest version: verified, against block")
    expect(page.locator("#record-view")).to_have_attribute("data-latest", "verified")
    expect(page.locator("#view-content")).to_contain_text("36.6")
    screenshot(page, "latest-verified")


def test_a_node_hiding_the_newer_version_shows_failed(
    two_versions: TwoVersions, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """The node releases version 1 for "the latest": its anchor, blob, wrap and commitment are
    all genuine, only the signed state shows that version 2 exists."""
    page = open_browser().new_page()

    def release_version_1(route: Route) -> None:
        asked = json.loads(route.request.post_data or "{}")
        payload = {**asked["payload"], "version": 1}
        older = new_transaction(
            two_versions.patient,
            network=NETWORK,
            tx_type="request.key_release",
            payload=payload,
            now_s=int(time.time()),
            ttl_s=60,
        )
        route.fulfill(response=route.fetch(post_data=older.wire))

    page.route("**/records/key-release", release_version_1)
    _open(page, two_versions)
    _expect_failed(page, "a newer version (2) exists than the version 1 served")
    screenshot(page, "latest-hidden-version-failed")


def test_the_older_head_under_the_current_proof_shows_failed(
    two_versions: TwoVersions, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    old_value = json.loads(two_versions.v1_answer)["value"]

    def older_head(route: Route) -> None:
        response = route.fetch()
        body = json.loads(response.body())
        body["value"] = old_value
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/ledger/state-proof?*", older_head)
    _open(page, two_versions)
    _expect_failed(page, "the proof's leaf holds a different value")
    screenshot(page, "latest-older-head-failed")


def test_a_genuine_but_stale_state_proof_is_older_than_the_anchor_and_fails(
    two_versions: TwoVersions, open_browser: OpenBrowser
) -> None:
    page = open_browser().new_page()
    page.route(
        "**/ledger/state-proof?*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=two_versions.v1_answer
        ),
    )
    _open(page, two_versions)
    _expect_failed(page, "the proven block is older than the checkpoint that proves the anchor")


def test_a_flipped_sibling_shows_failed(
    two_versions: TwoVersions, open_browser: OpenBrowser
) -> None:
    page = open_browser().new_page()

    def flip(route: Route) -> None:
        response = route.fetch()
        body = json.loads(response.body())
        sibling = body["proof"]["siblings"][0]
        body["proof"]["siblings"][0] = ("B" if sibling[0] != "B" else "C") + sibling[1:]
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/ledger/state-proof?*", flip)
    _open(page, two_versions)
    _expect_failed(page, "the state proof does not lead to the state root")


def test_a_node_presenting_another_genesis_than_the_pinned_one_shows_failed(
    two_versions: TwoVersions, open_browser: OpenBrowser
) -> None:
    """The browser met this network with another genesis (another set of authorities) first:
    the node's genesis is refused, whatever its signatures."""
    page = open_browser().new_page()
    sign_in(page, two_versions.node, PATIENT)
    page.evaluate(
        """async () => {
          const keyring = await import("/portal/static/js/lib/keyring.js");
          await keyring.pinGenesis("medledger-demo", "0".repeat(64));
        }"""
    )
    _open(page, two_versions)
    _expect_failed(page, "another genesis for network medledger-demo than the one this browser")


def test_a_node_hiding_an_erasure_shows_failed(
    two_versions: TwoVersions, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """The record is read once, then erased (request.erase by the patient); the node replays
    the key release it answered before the erasure. The ledger's signed head is tombstoned."""
    node, patient, record_id = two_versions.node, two_versions.patient, "erased-check"
    assert _put(node, patient.did, 37.0, record_id)["version"] == 1
    page = open_browser().new_page()
    released: list[bytes] = []
    page.on(
        "response",
        lambda r: released.append(r.body()) if r.url.endswith("/records/key-release") else None,
    )
    _open(page, two_versions, record_id)
    expect(page.locator("#record-view")).to_have_attribute("data-latest", "verified")
    assert len(released) == 1
    erase = new_transaction(
        patient,
        network=NETWORK,
        tx_type="request.erase",
        payload={"patient": patient.did, "record_id": record_id, "purpose": "PATRQT"},
        now_s=int(time.time()),
        ttl_s=60,
    )
    r = httpx.post(f"{node.url}records/erase", content=erase.wire, timeout=30)
    assert r.status_code == 200, r.text

    replaying = open_browser().new_page()
    replaying.route(
        "**/records/key-release",
        lambda route: route.fulfill(status=200, content_type="application/json", body=released[0]),
    )
    sign_in(replaying, node, PATIENT)
    # The page offers no View button for an erased record: the library is asked directly, as a
    # page that trusted a stale listing would.
    replaying.goto(node.portal + "/records")
    expect(replaying.locator("#records")).to_have_attribute("data-loaded", "true")
    got = replaying.evaluate(
        """async ([patient, recordId]) => {
          const keyring = await import("/portal/static/js/lib/keyring.js");
          const records = await import("/portal/static/js/lib/records.js");
          const identity = await keyring.loadIdentity();
          try {
            await records.readRecordInBrowser({ identity, network: "medledger-demo", patient,
              recordId, purpose: "PATRQT" });
            return { failed: null };
          } catch (e) {
            return { failed: e.step, message: e.message };
          }
        }""",
        [patient.did, record_id],
    )
    assert got["failed"] == "latest", got
    assert "the record was erased" in got["message"]
    screenshot(replaying, "erased-record-listed")


def test_a_version_committed_during_the_read_is_read_again_and_shown(
    two_versions: TwoVersions, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """Honest, but racing: the custodian commits version 2 after the page's key release for
    version 1 and before its state proof. The proof then shows a newer head, and the page
    reads once more (every check again) and shows version 2 verified, not a failure."""
    node, patient, record_id = two_versions.node, two_versions.patient, "mid-read"
    assert _put(node, patient.did, 37.5, record_id)["version"] == 1
    proofs: list[int] = []

    def commit_a_version_first(route: Route) -> None:
        if not proofs:  # only the first read's proof: the re-read runs untouched
            assert _put(node, patient.did, 39.1, record_id)["version"] == 2
        proofs.append(1)
        route.continue_()

    page = open_browser().new_page()
    page.route("**/ledger/state-proof?*", commit_a_version_first)
    _open(page, two_versions, record_id)
    expect(page.locator("#view-h")).to_have_text("Observation, version 2")
    expect(page.locator("#record-view")).to_have_attribute("data-latest", "verified")
    expect(page.locator("#view-content")).to_contain_text("39.1")
    assert len(proofs) == 2  # the first read failed 'latest' (newer version), the second passed
    screenshot(page, "latest-read-again")
