"""The portal's static directory served over loopback for the browser crypto tests.

A threaded ``http.server`` on 127.0.0.1 with an ephemeral port: the files as they will be
served under ``/portal/static/`` (ES modules need ``text/javascript``), plus a blank page at
``/__test__.html`` that tests open and ``page.evaluate`` modules in with dynamic ``import()``.
No caching headers, no directory listings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parents[3] / "src" / "medledger" / "entrypoints" / "portal" / "static"
TEST_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>portal crypto tests</title></head>
<body><main><h1>portal crypto tests</h1><p id="status">ready</p></main></body></html>
"""


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 - the base class declares it as a plain dict
        ".js": "text/javascript",
        ".html": "text/html; charset=utf-8",
        "": "application/octet-stream",
    }

    def do_GET(self) -> None:
        if self.path == "/__test__.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(TEST_PAGE)))
            self.end_headers()
            self.wfile.write(TEST_PAGE)
            return
        if self.path.endswith("/"):
            self.send_error(404)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: pytest shows failures, not every request


@contextmanager
def serve_static() -> Iterator[str]:
    """Serve ``STATIC`` on an ephemeral loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(STATIC)))
    thread = threading.Thread(target=server.serve_forever, name="portal-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
