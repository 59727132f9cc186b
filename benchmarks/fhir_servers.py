"""The FHIR benchmark's processes and data (``benchmarks.fhir_bench``): a node with demo-like
data and the same resources as plain SQLite rows; the two servers, each a uvicorn process of its
own on 127.0.0.1 (``python -m benchmarks.fhir_servers KIND PATH PORT``); a real access token
from the node's token endpoint; one measurement by the load generator process
(``benchmarks.fhir_load``) with the server's CPU seconds around it."""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from medledger.adapters.keystore import generate_key
from medledger.bootstrap import Node, open_node
from medledger.client import new_transaction
from medledger.core.auth.principal import Principal
from medledger.core.auth.scopes import parse_scopes
from medledger.core.auth.tokens import CLIENT_ASSERTION_TYPE, build_client_assertion
from medledger.core.consent.simple import permit_to
from medledger.core.identity.keys import ParticipantKey
from medledger.entrypoints.cli.demo import create_demo_home, load_demo_keys, synthetic_resource
from medledger.entrypoints.fhir.routes import fhir_response
from medledger.entrypoints.http.app import create_app

SCOPE = "user/*.rs"


# --- setup: a node with demo-like data, and the same rows in the clear --------------------------
def _submit(node: Node, key: ParticipantKey, tx_type: str, payload: dict[str, Any]) -> None:
    stx = new_transaction(
        key, network=node.genesis.network, tx_type=tx_type, payload=payload, now_s=int(time.time())
    )
    node.ledger.submit(stx.wire, int(time.time()))
    status = node.ledger.wait(stx.tx_id, 60)
    if not status.ok:
        raise RuntimeError(f"{tx_type} refused: {status.reason}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def setup(home: Path, patients: int, per_patient: int) -> tuple[list[str], list[dict[str, Any]]]:
    """A demo node; its physician dr-house; patients who consent to the hospital; their
    synthetic Observations written through the FHIR service. Returns patient ids and the
    resources as served."""
    create_demo_home(home, port=_free_port())
    node = open_node(home)
    node.start()
    try:
        keys = load_demo_keys(home)
        hospital = keys["hospital"]
        _submit(
            node,
            hospital,
            "participant.register",
            {
                "did": keys["dr-house"].did,
                "kind": "practitioner",
                "roles": ["physician"],
                "organization": hospital.did,
            },
        )
        writer = Principal(keys["dr-house"].did, parse_scopes("user/*.cruds"))
        rng = random.Random(6)
        patient_ids: list[str] = []
        for n in range(patients):
            patient = generate_key()
            _submit(
                node,
                hospital,
                "participant.register",
                {"did": patient.did, "kind": "patient", "roles": []},
            )
            consent = permit_to(f"c-{n}", patient.did, hospital.did)
            _submit(node, patient, "consent.grant", {"consent": consent.to_json()})
            body = {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:ietf:rfc:3986", "value": patient.did}],
                "name": [{"family": f"Bench{n}"}],
            }
            patient_ids.append(node.fhir.create(writer, "Patient", body, _now_ms()).resource["id"])
        bodies = [
            synthetic_resource("Observation", p, rng)
            for p in patient_ids
            for _ in range(per_patient)
        ]
        with ThreadPoolExecutor(16) as pool:
            written = list(
                pool.map(lambda b: node.fhir.create(writer, "Observation", b, _now_ms()), bodies)
            )
        return patient_ids, [w.resource for w in written]
    finally:
        node.close()


def write_plain(db: Path, resources: list[dict[str, Any]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE res (id TEXT PRIMARY KEY, patient TEXT, time TEXT, body TEXT)")
    conn.execute("CREATE INDEX res_patient ON res (patient, time)")
    conn.executemany(
        "INSERT INTO res VALUES (?, ?, ?, ?)",
        [
            (r["id"], r["subject"]["reference"], r["effectiveDateTime"], json.dumps(r))
            for r in resources
        ],
    )
    conn.close()


def _plain_app(db: Path) -> FastAPI:
    """The same routes from a plain SQLite table: no token, consent, audit or encryption."""
    conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    lock = threading.Lock()
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def read(record_id: str) -> dict[str, Any] | None:
        with lock:
            row = conn.execute("SELECT body FROM res WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def search(patient: str, count: int) -> dict[str, Any]:
        with lock:
            total = conn.execute("SELECT COUNT(*) FROM res WHERE patient = ?", (patient,))
            n = int(total.fetchone()[0])
            rows = conn.execute(
                "SELECT body FROM res WHERE patient = ? ORDER BY time DESC LIMIT ?",
                (patient, count),
            ).fetchall()
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": n,
            "entry": [{"resource": json.loads(r[0]), "search": {"mode": "match"}} for r in rows],
        }

    @app.get("/fhir/Observation/{record_id}")
    async def get(record_id: str) -> Response:
        found = await run_in_threadpool(read, record_id)
        return fhir_response(found, 200 if found else 404)

    @app.get("/fhir/Observation")
    async def find(request: Request) -> Response:
        patient = "Patient/" + request.query_params["patient"]
        count = int(request.query_params.get("_count", "20"))
        return fhir_response(await run_in_threadpool(search, patient, count))

    return app


# --- processes: two servers, a load generator ------------------------------------------------
def serve(kind: str, path: Path, port: int) -> None:
    """In a server process of its own (clients and server never share one GIL). With
    ``FHIR_BENCH_PROFILE=FILE`` every thread of the server runs under cProfile timed by its
    CPU time (a wait costs nothing), and the merged statistics go to FILE when the server
    stops (``python -m pstats FILE``)."""
    profile = os.environ.get("FHIR_BENCH_PROFILE")
    profilers = _profile_threads() if profile else []
    node = open_node(path) if kind == "medledger" else None
    try:
        if node is not None:
            node.start()
            app = create_app(node, base_url=f"http://127.0.0.1:{port}")
        else:
            app = _plain_app(path)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        if node is not None:
            node.close()
        if profile:
            stats = pstats.Stats(profilers[0])
            for more in profilers[1:]:
                stats.add(more)
            stats.dump_stats(profile)


def _profile_threads() -> list[cProfile.Profile]:
    """cProfile in this thread and in every thread started from now on."""
    profilers = [cProfile.Profile(time.thread_time)]
    lock = threading.Lock()

    def start(*_: object) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(profiler)
        profiler.enable()  # replaces this hook in the new thread

    threading.setprofile(start)
    profilers[0].enable()
    return profilers


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(src: Path | None = None) -> dict[str, str]:
    """This process's import path for a child; ``src`` first, if given (another checkout's
    ``src/``: the medledger code a baseline server runs)."""
    paths = ([str(src)] if src is not None else []) + sys.path
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def server_process(kind: str, path: Path, src: Path | None = None) -> Iterator[Server]:
    """A server process (``kind`` medledger or plain) on a free port until the block exits;
    ``src``: run the medledger code of that ``src/`` directory instead of this one's."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fhir_servers", kind, str(path), str(port)],
        env=_env(src),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        yield Server(url, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mint_token(url: str, key: ParticipantKey) -> str:
    """A real access token: client_credentials with a private_key_jwt assertion."""
    endpoint = f"{url}/auth/token"
    assertion = build_client_assertion(
        key, token_endpoint=endpoint, now=int(time.time()), jti=secrets.token_urlsafe(18)
    )
    response = httpx.post(
        endpoint,
        timeout=30,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": SCOPE,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def load(server: Server, spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement by the load generator process; the server's CPU seconds around it."""
    cpu0 = _cpu_s(server.pid)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fhir_load"],
        input=json.dumps({"base": server.url, **spec}),
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    cpu = _cpu_s(server.pid) - cpu0
    result["server_cpu_s"] = round(cpu, 3)
    result["server_cpu_ms_per_ok"] = round(1000 * cpu / result["ok"], 3) if result["ok"] else None
    return result


def main() -> None:
    kind, path, port = sys.argv[1:4]
    serve(kind, Path(path), int(port))


if __name__ == "__main__":
    main()
