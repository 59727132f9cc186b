"""Sign-in to the portal in Chromium (issue 8 item 1): demo users' buttons, a key file with its
passphrase, the wrong passphrase, an unregistered key, the pinned log key (TOFU), ``?next=``,
each kind's home page, and sign-out."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from medledger.adapters.keystore import generate_key, write_key_file

from .conftest import OpenBrowser, PortalNode, Screenshot, sign_in

WRONG = "wrong passphrase or damaged key file"


@pytest.fixture(scope="module")
def ready(portal_node: PortalNode) -> PortalNode:
    """The demo registers its people in the background after it serves (patient-5 last):
    poll until it has."""
    did = json.loads(_key_file(portal_node, "patient-5").read_text())["did"]
    deadline = time.monotonic() + 90
    while httpx.get(f"{portal_node.url}ledger/participants/{did}").status_code != 200:
        assert time.monotonic() < deadline, "the demo never registered its people"
        time.sleep(0.25)
    return portal_node


def _key_file(node: PortalNode, name: str) -> Path:
    return node.home / "demo-keys" / f"{name}.key"


def _sign_in_with_file(page: Page, node: PortalNode, key_file: Path, passphrase: str) -> None:
    page.goto(node.portal)
    page.locator("#key-file").set_input_files(str(key_file))
    page.locator("#passphrase").fill(passphrase)
    page.locator("#keyfile-submit").click()


def test_demo_patient_signs_in_lands_on_timeline_and_signs_out(
    ready: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    page.goto(ready.portal)
    expect(page.locator("#verifier-key")).to_contain_text("demo.medledger.local/log+")
    screenshot(page, "signin")
    sign_in(page, ready, "patient-1")
    assert page.url.endswith("/portal/timeline")
    expect(page.locator("#who")).to_contain_text("patient-1")
    page.locator("#sign-out").click()
    page.wait_for_url(re.compile(r".*/portal$"))
    # Signed out: a patient page sends the browser back to sign-in, remembering where it was.
    page.goto(ready.portal + "/consent")
    page.wait_for_url(re.compile(r".*/portal\?next=%2Fportal%2Fconsent$"))


def test_key_file_with_its_passphrase_signs_in_and_the_wrong_one_is_refused(
    ready: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    page = open_browser().new_page()
    _sign_in_with_file(page, ready, _key_file(ready, "patient-2"), "not-the-passphrase")
    expect(page.locator("#flash")).to_have_text(WRONG)
    screenshot(page, "wrong-passphrase")
    assert page.url == ready.portal  # still signed out, nothing stored
    page.goto(ready.portal + "/timeline")
    page.wait_for_url(re.compile(r".*/portal\?next="))
    _sign_in_with_file(page, ready, _key_file(ready, "patient-2"), "medledger-demo")
    page.wait_for_url(re.compile(r".*/portal/timeline$"))


def test_a_damaged_key_file_is_refused_with_the_same_message(
    ready: PortalNode, open_browser: OpenBrowser, tmp_path: Path
) -> None:
    body = json.loads(_key_file(ready, "patient-2").read_text())
    ciphertext = bytearray(body["ciphertext"], "ascii")
    ciphertext[5] = ord("A") if ciphertext[5] != ord("A") else ord("B")
    body["ciphertext"] = ciphertext.decode()
    damaged = tmp_path / "damaged.key"
    damaged.write_text(json.dumps(body))
    page = open_browser().new_page()
    _sign_in_with_file(page, ready, damaged, "medledger-demo")
    expect(page.locator("#flash")).to_have_text(WRONG)


def test_an_unregistered_key_is_refused(
    ready: PortalNode, open_browser: OpenBrowser, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.key"
    write_key_file(stranger, generate_key(), "a passphrase", n=2**14)
    page = open_browser().new_page()
    _sign_in_with_file(page, ready, stranger, "a passphrase")
    expect(page.locator("#flash")).to_contain_text("not a registered participant")


def test_a_different_log_key_for_the_network_is_refused(
    ready: PortalNode, open_browser: OpenBrowser, screenshot: Screenshot
) -> None:
    """Trust on first use: this browser pinned another key for the network; signing in where
    the node shows a different one must fail loudly and store nothing."""
    page = open_browser().new_page()
    page.goto(ready.portal)
    page.evaluate(
        "localStorage.setItem('medledger.pinned-log-key/medledger-demo', "
        "'demo.medledger.local/log+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')"
    )
    page.locator('[data-demo-user="patient-1"]').click()
    expect(page.locator("#flash")).to_contain_text("different log key")
    screenshot(page, "pinned-key-mismatch")
    page.goto(ready.portal + "/timeline")
    page.wait_for_url(re.compile(r".*/portal\?next="))


def test_next_is_honoured_only_for_portal_pages(
    ready: PortalNode, open_browser: OpenBrowser
) -> None:
    page = open_browser().new_page()
    page.goto(ready.portal + "?next=%2Fportal%2Fconsent")
    page.locator('[data-demo-user="patient-1"]').click()
    page.wait_for_url(re.compile(r".*/portal/consent$"))
    other = open_browser().new_page()
    other.goto(ready.portal + "?next=%2F%2Fevil.example%2Fportal%2Fx")
    other.locator('[data-demo-user="patient-1"]').click()
    other.wait_for_url(re.compile(r".*/portal/timeline$"))
    assert other.url.startswith(ready.url)


def test_each_kind_lands_on_its_home(ready: PortalNode, open_browser: OpenBrowser) -> None:
    for name, home in (("officer-hospital", "/portal/officer"), ("dr-house", "/portal/clinician")):
        page = open_browser().new_page()
        sign_in(page, ready, name)
        assert page.url == ready.url.rstrip("/") + home, name
