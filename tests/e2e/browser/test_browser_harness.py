"""The harness itself: Debian's Chromium starts, renders a page served on loopback, and has the
WebCrypto the portal relies on (SHA-256, Ed25519 in a secure context)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import OpenBrowser, Screenshot


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title><h1>hello</h1>")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_chromium_renders_and_has_webcrypto_ed25519(
    open_browser: OpenBrowser, screenshot: Screenshot, static_site: str
) -> None:
    page = open_browser().new_page()
    page.goto(static_site)
    assert page.locator("h1").inner_text() == "hello"
    signature_length = page.evaluate(
        """async () => {
            const k = await crypto.subtle.generateKey({name: 'Ed25519'}, false, ['sign', 'verify']);
            const sig = await crypto.subtle.sign('Ed25519', k.privateKey, new Uint8Array([1, 2]));
            return sig.byteLength;
        }"""
    )
    assert signature_length == 64
    assert screenshot(page, "hello").stat().st_size > 0
