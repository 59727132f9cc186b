"""The patient's portal pages over HTTP (``medledger demo`` really served): each page is a
shell with the strict CSP, no inline script, style or handler, only assets that exist; the
sign-in page offers the demo people; demo key files are served encrypted, only for demo people,
never an organization's authority key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from medledger.entrypoints.cli.demo import ORGANIZATIONS, PATIENTS, PRACTITIONERS

from .conftest import free_port, start, stop

PAGES = ("/portal", "/portal/timeline", "/portal/consent", "/portal/records")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.assets: list[str] = []
        self.inline_handlers: list[str] = []
        self.demo_users: list[str] = []
        self.label_for: set[str] = set()
        self.inputs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.inline_handlers += [n for n in a if n.startswith("on") or n == "style"]
        if tag == "script":
            self.scripts.append(a)
            if a.get("src"):
                self.assets.append(str(a["src"]))
        if tag == "link" and a.get("rel") == "stylesheet":
            self.assets.append(str(a["href"]))
        if "data-demo-user" in a:
            self.demo_users.append(str(a["data-demo-user"]))
        if tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        if tag in ("input", "select") and a.get("id") and a.get("type") != "checkbox":
            self.inputs.add(str(a["id"]))


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("portal-pages") / "demo"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(["demo", "--home", str(home), "--port", str(port)], url + "/", timeout_s=90)
    try:
        yield url, home
    finally:
        stop(process)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_a_strict_shell(demo_url: tuple[str, Path], path: str) -> None:
    url, _ = demo_url
    response = httpx.get(url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    page = _parse(response.text)
    assert page.inline_handlers == []
    for script in page.scripts:  # modules from the portal's static files, or JSON data
        assert script.get("src") or script.get("type") == "application/json", script
    for asset in page.assets:
        assert asset.startswith("/portal/static/"), asset
        assert httpx.get(url + asset).status_code == 200, asset
    # every form control the page renders has a label
    assert page.inputs <= page.label_for, page.inputs - page.label_for


def test_sign_in_page_offers_the_demo_people_not_the_organizations(
    demo_url: tuple[str, Path],
) -> None:
    url, _ = demo_url
    page = _parse(httpx.get(url + "/portal").text)
    people = {name for name, _, _ in PRACTITIONERS} | set(PATIENTS)
    assert set(page.demo_users) == people
    assert not {name for name, _, _ in ORGANIZATIONS} & set(page.demo_users)


def test_demo_key_files_are_served_encrypted_only_for_demo_people(
    demo_url: tuple[str, Path],
) -> None:
    url, home = demo_url
    response = httpx.get(url + "/portal/demo-keys/patient-1")
    assert response.status_code == 200
    body = response.json()
    assert body["format"] == "medledger-key/v1" and "ciphertext" in body
    assert response.content == (home / "demo-keys" / "patient-1.key").read_bytes()
    for name in ("hospital", "clinic", "lab", "nobody", "Patient-1", "..%2Fnode", "a" * 41):
        refused = httpx.get(f"{url}/portal/demo-keys/{name}")
        assert refused.status_code == 404, name
        assert "error" in refused.json(), name
        assert not re.search(r'"(ciphertext|seed)"', refused.text)


def test_node_info_carries_the_log_key_the_browser_pins(demo_url: tuple[str, Path]) -> None:
    url, _ = demo_url
    html = httpx.get(url + "/portal/timeline").text
    match = re.search(r'<script type="application/json" id="node-info">(.*?)</script>', html, re.S)
    assert match is not None
    info = json.loads(match.group(1))
    assert info["verifierKey"] == httpx.get(url + "/log/verifier-key").text.strip()
    assert info["network"] == "medledger-demo"
