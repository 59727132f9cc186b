"""``python -m benchmarks.fhir_threads``: where a FHIR read's CPU goes, thread by thread.

In one process, no HTTP: a demo node (``fhir_servers.setup``), then ``FhirService.read`` and
``FhirService.search`` called back to back by ``clients`` threads, everything on (scopes, the
consent gate, an access event per decision, its durable wait, decryption and the ledger
checks). Reported per request: the CPU time of each of the node's threads
(``/proc/self/task/<tid>/stat``), so the request path (the calling threads) is told apart from
the per-batch work of the access-event log (sealer, writer, anchor, checkpoint) and the block
builder. With one client every request is a batch of its own, so the background threads'
figures are the cost of one sealed batch; with more clients batches are shared.

Per-thread CPU time is much steadier on a shared machine than the HTTP benchmark's
requests/s (other work inflates wall-clock figures, not the CPU a thread used), so a change
to one thread's work shows in its figure. ``--src`` runs another checkout's code (the
before of a before/after) on a copy of the same node.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import medledger

TICK = os.sysconf("SC_CLK_TCK")
CLIENT = "client"


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of every live thread, by name; clients summed."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = (
            CLIENT
            if thread.name.startswith(CLIENT) or thread is threading.main_thread()
            else (thread.name)
        )
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def measure(home: Path, requests: int, clients: int) -> dict[str, Any]:
    """In this process: per workload, CPU ms per request of each thread."""
    from medledger.bootstrap import open_node
    from medledger.core.auth.principal import Principal
    from medledger.core.auth.scopes import parse_scopes
    from medledger.core.fhir.search import parse_query
    from medledger.entrypoints.cli.demo import load_demo_keys

    ids = json.loads((home / "ids.json").read_text())
    node = open_node(home)
    node.start()
    try:
        who = Principal(load_demo_keys(home)["dr-house"].did, parse_scopes("user/*.rs"))
        observations, patients = ids["observations"], ids["patients"]
        queries = [parse_query("Observation", [("patient", p), ("_count", "20")]) for p in patients]

        def read(i: int) -> object:
            now = int(time.time() * 1000)
            return node.fhir.read(who, "Observation", observations[i % len(observations)], now)

        def search(i: int) -> object:
            return node.fhir.search(who, queries[i % len(queries)], int(time.time() * 1000))

        out: dict[str, Any] = {}
        with ThreadPoolExecutor(clients, thread_name_prefix=CLIENT) as pool:
            for name, call, count in (("read", read, requests), ("search", search, requests // 5)):
                list(pool.map(call, range(max(clients, 20))))  # warm: caches, connections
                time.sleep(0.3)
                before, start = _thread_cpu_s(), time.perf_counter()
                list(pool.map(call, range(count)))
                time.sleep(0.3)  # the last batch's anchor and checkpoint
                after, wall = _thread_cpu_s(), time.perf_counter() - start
                per = {
                    k: round(1000 * (after[k] - before.get(k, 0.0)) / count, 3)
                    for k in sorted(after)
                    if after[k] > before.get(k, 0.0)
                }
                out[name] = {"cpu_ms_per_request": per, "total": round(sum(per.values()), 3),
                             "per_s": round(count / wall, 1)}  # fmt: skip
        return out
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fhir_threads", description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--src", type=Path, action="append", default=[],
                        help="another checkout's src/ to measure too (repeatable)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=2, help="alternating runs per code")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.requests, args.clients)))
        return
    from benchmarks import fhir_servers

    with tempfile.TemporaryDirectory(prefix="fhir-threads-") as tmp:
        home = Path(tmp) / "node"
        patients, resources = fhir_servers.setup(home, 8, 20)
        ids = {"patients": patients, "observations": [r["id"] for r in resources]}
        (home / "ids.json").write_text(json.dumps(ids))
        codes = [Path(medledger.__file__).resolve().parents[1], *args.src]
        for run in range(args.runs):
            for src in codes:
                copy = Path(tmp) / f"run-{run}"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(home, copy)
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *sys.path])}
                result = subprocess.run(
                    [sys.executable, "-m", "benchmarks.fhir_threads", "--measure", str(copy),
                     "--requests", str(args.requests), "--clients", str(args.clients)],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                print(f"{src} (run {run + 1}):")
                for name, figures in json.loads(result.stdout.splitlines()[-1]).items():
                    print(f"  {name}: {figures['total']} ms CPU per request "
                          f"({figures['per_s']}/s) {figures['cpu_ms_per_request']}")  # fmt: skip


if __name__ == "__main__":
    main()
