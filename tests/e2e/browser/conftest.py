"""A real browser for the portal's tests (issue 8): Debian's Chromium, driven by Playwright.

Never a browser download: Playwright launches ``/usr/bin/chromium`` (installed by ``make test``)
headless with the flags this closed network needs and a fresh ``--user-data-dir`` per browser
(Playwright's persistent context takes the directory as a parameter). Screenshots go under the
test run's output, ``test-output/screenshots/`` (or ``$MEDLEDGER_TEST_OUTPUT/screenshots``).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from ..conftest import free_port, start, stop

CHROMIUM = Path(os.environ.get("MEDLEDGER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OUTPUT = Path(os.environ.get("MEDLEDGER_TEST_OUTPUT", Path(__file__).parents[3] / "test-output"))
#: Playwright's default wait; generous because scrypt and proof checks run in the page.
TIMEOUT_MS = 20_000

OpenBrowser = Callable[[], BrowserContext]
Screenshot = Callable[[Page, str], Path]


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API runs an event loop in this thread while it is open: it must close
    when the browser tests end (package scope), or every later test that runs a loop of its own
    (``asyncio.run``, Starlette's TestClient) fails with "another loop is running"."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def open_browser(playwright: Playwright, tmp_path: Path) -> Iterator[OpenBrowser]:
    """Opens a new headless Chromium with its own fresh user-data-dir (as many as a test needs:
    one per person), all closed when the test ends."""
    opened: list[BrowserContext] = []

    def open_one() -> BrowserContext:
        profile = tmp_path / f"chromium-profile-{len(opened)}"
        profile.mkdir()
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        context.close()


@pytest.fixture(scope="module")
def module_browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """One Chromium (same binary, flags and timeout, a fresh profile) for a module whose tests
    keep nothing in browser storage: a launch costs a second or more on a loaded machine."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
    )
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """Saves a full-page screenshot as ``<test name>-<label>.png`` under the run's output."""
    directory = OUTPUT / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page: Page, label: str) -> Path:
        path = directory / f"{test_name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


# --- a served demo node for the portal's pages ------------------------------------------------
@dataclass
class PortalNode:
    """``medledger demo`` really served (the consent story plays, then background traffic)."""

    home: Path
    url: str  # ends with "/"
    process: subprocess.Popen[bytes]

    @property
    def portal(self) -> str:
        return self.url + "portal"


@pytest.fixture(scope="module")
def portal_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    home = tmp_path_factory.mktemp("portal-demo") / "demo"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    process = start(["demo", "--home", str(home), "--port", str(port)], url, timeout_s=90)
    try:
        yield PortalNode(home, url, process)
    finally:
        stop(process)


def sign_in(page: Page, node: PortalNode, name: str) -> None:
    """Signs in as a demo user the way a newcomer does: the sign-in page's button for that user
    (``[data-demo-user=<name>]``) fetches the encrypted key file, opens it in the page with the
    published demo passphrase and lands on the user's home page."""
    page.goto(node.portal)
    page.locator(f'[data-demo-user="{name}"]').click()
    page.wait_for_url(re.compile(r".*/portal/(?!$)[a-z].*"))
