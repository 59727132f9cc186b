"""A real node, really served: `medledger serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.bootstrap import init_home, open_node
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.cli.demo import create_demo_home, load_demo_keys

MEDLEDGER = [sys.executable, "-m", "medledger.entrypoints.cli"]
PASSPHRASE = "e2e-test-passphrase"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServedNode:
    home: Path
    url: str
    process: subprocess.Popen[bytes]
    entries: list[bytes]


def start(args: list[str], url: str, *, timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
    """Start a node process and poll /healthz until it answers (no blind sleeps)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MEDLEDGER_PASSPHRASE": PASSPHRASE}
    process = subprocess.Popen(
        [*MEDLEDGER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"node exited early:\n{stop(process)}")
        try:
            if httpx.get(url + "healthz", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(process)
    raise AssertionError("node did not come up")


def stop(process: subprocess.Popen[bytes]) -> str:
    """Stop by PID (SIGINT, then SIGKILL after 10 s) and return what it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out.decode(errors="replace")


@pytest.fixture(scope="module")
def served_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    """A node whose log holds 1,000 known entries (full and partial tiles), then served.

    The entries are appended to the log directly, before the ledger's genesis: this fixture
    exercises the log's API, not the ledger's.
    """
    home = tmp_path_factory.mktemp("node")
    init_home(home, origin="e2e.medledger.test/log", passphrase=PASSPHRASE)
    node = open_node(home, passphrase=PASSPHRASE)
    entries = [f"entry {i} ".encode() + bytes([i % 251]) * (i % 40) for i in range(1000)]
    for start_at in range(0, 1000, 300):
        node.log.append(entries[start_at : start_at + 300])
        node.log.sign_current()
    node.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    process = start(["serve", "--home", str(home), "--port", str(port)], url)
    yield ServedNode(home, url, process, entries)
    stop(process)


@dataclass
class DemoLedgerNode:
    """A served demo network with no background traffic, and every demo user's key."""

    home: Path
    url: str
    process: subprocess.Popen[bytes]
    keys: dict[str, ParticipantKey]
    network: str
    http: httpx.Client  # keep-alive connections to ``url``, closed with the node


@pytest.fixture(scope="module")
def demo_ledger_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLedgerNode]:
    """The demo network's home (three authority organizations, genesis only), served by
    `medledger serve`, not `medledger demo`: nothing is submitted but what a test submits."""
    home = tmp_path_factory.mktemp("demo-ledger")
    port = free_port()
    create_demo_home(home, port=port)
    url = f"http://127.0.0.1:{port}/"
    process = start(["serve", "--home", str(home), "--port", str(port)], url)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            network = str(http.get("/healthz").json()["network"])
            yield DemoLedgerNode(home, url, process, load_demo_keys(home), network, http)
    finally:
        stop(process)


# --- the FHIR API (issue 6) -----------------------------------------------------------------
@dataclass
class FhirNode:
    """A demo-network node serving the FHIR API over real HTTP (uvicorn, real SQLite) in this
    process; ``as_(name, scopes)`` gives a client acting as a demo user with a real SMART
    bearer token (signed by the node's key, as its token endpoint issues them: ADR 0017)."""

    home: Path
    url: str
    node: Any
    keys: dict[str, ParticipantKey]

    def as_(
        self,
        name: str,
        scopes: str = "user/*.cruds",
        *,
        patient: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
    ) -> httpx.Client:
        from medledger.core.auth.scopes import parse_scopes
        from medledger.core.auth.tokens import issue_access_token

        token, _ = issue_access_token(
            self.node.key,
            subject=self.keys[name].did,
            audience=self.url + "fhir",
            scopes=parse_scopes(scopes),
            now=int(time.time()),
            jti=secrets.token_urlsafe(12),
            patient=patient,
        )
        headers = {"Authorization": f"Bearer {token}"}
        if purpose is not None:
            headers["X-Purpose-Of-Use"] = purpose
        if justification is not None:
            headers["X-Break-Glass-Justification"] = justification
        return httpx.Client(base_url=self.url + "fhir", headers=headers, timeout=60)


def submit_and_wait(node: Any, key: ParticipantKey, tx_type: str, payload: Any) -> None:
    from medledger.client import new_transaction

    stx = new_transaction(
        key, network=node.genesis.network, tx_type=tx_type, payload=payload,
        now_s=int(time.time()),
    )  # fmt: skip
    node.ledger.submit(stx.wire, int(time.time()))
    status = node.ledger.wait(stx.tx_id, 30)
    assert status.ok or status.reason == "already_registered", (tx_type, status.reason)


@pytest.fixture(scope="module")
def fhir_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirNode]:
    import threading

    import uvicorn

    from medledger.entrypoints.cli.demo import PATIENTS, PRACTITIONERS
    from medledger.entrypoints.http.app import create_app

    home = tmp_path_factory.mktemp("fhir-node")
    port = free_port()
    create_demo_home(home, port=port)
    node = open_node(home)
    node.start()
    keys = load_demo_keys(home)
    for name, org, role in PRACTITIONERS:
        submit_and_wait(node, keys[org], "participant.register",
                        {"did": keys[name].did, "kind": "practitioner", "roles": [role],
                         "organization": keys[org].did})  # fmt: skip
    for name in PATIENTS:
        submit_and_wait(node, keys["hospital"], "participant.register",
                        {"did": keys[name].did, "kind": "patient", "roles": []})  # fmt: skip
    app = create_app(node, base_url=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="fhir-e2e-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield FhirNode(home, url, node, keys)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        node.close()
