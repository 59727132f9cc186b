"""The same node behind its HTTP API: ``medledger serve`` in a subprocess, httpx clients here.

Steps: (1) a fresh home with the run's genesis, on a free loopback port; (2) start
``python -m medledger.entrypoints.cli serve`` with the key's passphrase in
``$MEDLEDGER_PASSPHRASE``, poll ``/healthz`` until it answers; (3) the caller submits (setup,
then the timed workload from a few client threads, each with its own keep-alive connection,
``POST /ledger/transactions?wait=none``); the end of the phase is when ``/healthz`` shows a log
size covering every transaction (one log entry per committed transaction); (4) stop the server
by PID with SIGINT (uvicorn's graceful shutdown), then read the outcomes from its ledger file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import httpx

from benchmarks.ledger_node import PASSPHRASE
from medledger.adapters.sqlite_ledger import SqliteLedger
from medledger.bootstrap import LEDGER_DB_FILE, PASSPHRASE_ENV
from medledger.core.ledger.tx import SignedTransaction

_READY_TIMEOUT_S = 60.0
_COMMIT_TIMEOUT_S = 300.0
_POLL_S = 0.005
_HEADERS = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served_node(home: Path, port: int, output: Path) -> Iterator[str]:
    """Steps 2 and 4: ``medledger serve`` for ``home``; yields its base URL."""
    env = {**os.environ, PASSPHRASE_ENV: PASSPHRASE}
    command = [sys.executable, "-m", "medledger.entrypoints.cli", "serve", "--home", str(home),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with output.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(base, server, output)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(base: str, server: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"medledger serve exited: {output.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("medledger serve did not answer /healthz in time")


def log_size(http: httpx.Client) -> int:
    return int(http.get("/healthz").json()["log_size"])


def wait_for_log_size(http: httpx.Client, size: int) -> float:
    """Poll until the log holds ``size`` entries; the perf_counter() when it did."""
    deadline = time.monotonic() + _COMMIT_TIMEOUT_S
    while time.monotonic() < deadline:
        if log_size(http) >= size:
            return perf_counter()
        time.sleep(_POLL_S)
    raise RuntimeError(f"the served node did not commit up to log size {size} in time")


def submit_in_order(base: str, txs: Sequence[SignedTransaction]) -> None:
    """The setup: one client, one transaction after the other, then wait for the commits."""
    with httpx.Client(base_url=base, timeout=30.0) as http:
        start = log_size(http)
        for stx in txs:
            http.post("/ledger/transactions", content=stx.wire, headers=_HEADERS).raise_for_status()
        wait_for_log_size(http, start + len(txs))


@dataclass(slots=True)
class HttpRun:
    txs: int
    clients: int
    seconds: float = 0.0  # first request to the log covering every transaction
    submit_seconds: float = 0.0  # first request to the last response
    request_ms: list[float] = field(default_factory=list)  # sorted, one per request
    errors: dict[str, int] = field(default_factory=dict)  # HTTP status -> count


def submit_concurrently(base: str, txs: Sequence[SignedTransaction], clients: int) -> HttpRun:
    """Step 3: ``clients`` threads take the next transaction in order and POST it."""
    run = HttpRun(len(txs), clients)
    todo = iter(txs)
    lock = threading.Lock()
    latencies: list[float] = []

    def client() -> None:
        with httpx.Client(base_url=base, timeout=30.0) as http:
            while True:
                with lock:
                    stx = next(todo, None)
                if stx is None:
                    return
                began = perf_counter()
                r = http.post("/ledger/transactions", content=stx.wire, headers=_HEADERS)
                latencies.append(perf_counter() - began)
                if r.status_code != 202:
                    with lock:
                        run.errors[str(r.status_code)] = run.errors.get(str(r.status_code), 0) + 1

    with httpx.Client(base_url=base, timeout=30.0) as http:
        target = log_size(http) + len(txs)
        threads = [threading.Thread(target=client, name=f"http-client-{i}") for i in range(clients)]
        started = perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run.submit_seconds = perf_counter() - started
        run.seconds = wait_for_log_size(http, target) - started
    run.request_ms = sorted(x * 1000 for x in latencies)
    return run


@dataclass(frozen=True, slots=True)
class Outcomes:
    ok: int
    failed: dict[str, int]
    blocks: int  # blocks holding at least one of the transactions


def read_outcomes(home: Path, txs: Sequence[SignedTransaction]) -> Outcomes:
    """Step 4: what the stopped node committed for ``txs``, from its ledger file."""
    wanted = {stx.tx_id for stx in txs}
    ok, blocks = 0, 0
    failed: dict[str, int] = {}
    ledger = SqliteLedger(home / LEDGER_DB_FILE, readonly=True)
    try:
        for block in ledger.iter_blocks():
            mine = [t for t in ledger.block_txs(block.height) if t.tx_id in wanted]
            blocks += bool(mine)
            for t in mine:
                if t.ok:
                    ok += 1
                else:
                    failed[t.reason or "?"] = failed.get(t.reason or "?", 0) + 1
    finally:
        ledger.close()
    return Outcomes(ok, failed, blocks)
