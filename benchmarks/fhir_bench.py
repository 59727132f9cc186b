"""``python -m benchmarks.fhir_bench [--quick]``: FHIR reads and searches over HTTP (issue 6).

Two servers on the same stack (FastAPI on uvicorn on 127.0.0.1, each a process of its own, the
same response class and worker-thread hop), driven by a load generator in a third process
(``benchmarks.fhir_load``: asyncio + aiohttp, keep-alive connections):
1. **medledger**: ``GET /fhir/Observation/{id}`` and ``GET /fhir/Observation?patient=..&_count=20``
   with everything on: a real SMART bearer token from the node's token endpoint
   (``private_key_jwt``), checked on every request; the scope check; the consent gate per
   resource; an access event per decision (a permit waits until its event is durable in a
   sealed batch); key unwrap, AES-GCM decryption, CID and salted-commitment checks against the
   ledger;
2. **plain**: the same routes answering from a SQLite table of the same resources in the clear
   (no token, consent, audit or encryption), with the same searchset shape.
The data: demo-like synthetic Observations (``demo.synthetic_resource``) of patients who
consented to the hospital, read by the hospital's physician ``dr-house``.

Per workload, in interleaved rounds (the servers alternate, so load from other work hits both):
- **saturation**: ``connections`` clients back to back; requests/s of (1) over (2). Target >= 0.5;
- **fixed rate** (open loop): requests scheduled at a fixed rate whatever the answers do;
  achieved rate, p50/p99 latency from the scheduled send time, errors;
- each server's CPU time per request (``/proc/<pid>/stat``, all its threads), which other work
  on the machine does not inflate the way it inflates wall-clock figures.

Writes ``results/fhir.json`` and ``results/fhir.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import fhir_report, fhir_servers, machine
from benchmarks.machine import medledger_source
from medledger.entrypoints.cli.demo import load_demo_keys

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.5
SCOPE = "user/*.rs"
WORKLOADS = ("read", "search")
SERVERS = ("medledger", "plain")
#: The optional third server: the same node served by another checkout's code (before/after).
BASELINE = "baseline"


@dataclass(frozen=True)
class Config:
    patients: int
    per_patient: int
    connections: int  # saturation: clients back to back
    rates: dict[str, float]  # fixed-rate (open-loop) requests/s per workload
    max_in_flight: int  # open loop: connections at most
    seconds: float  # per measurement
    rounds: int


QUICK = Config(
    patients=3,
    per_patient=20,
    connections=32,
    rates={"read": 100, "search": 20},
    max_in_flight=256,
    seconds=3.0,
    rounds=1,
)
FULL = Config(
    patients=8,
    per_patient=25,
    connections=64,
    rates={"read": 200, "search": 40},
    max_in_flight=256,
    seconds=8.0,
    rounds=3,
)


# --- the run ---------------------------------------------------------------------------------
def _measure(
    config: Config,
    servers: dict[str, fhir_servers.Server],
    paths: dict[str, list[str]],
    headers: dict[str, dict[str, str]],
    console: Console,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = tuple(servers)
    for workload in WORKLOADS:
        sat: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
        fixed: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
        for r in range(config.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                base = {"paths": paths[workload], "headers": headers[name]}
                fhir_servers.load(
                    servers[name], {**base, "mode": "closed", "connections": 8, "duration_s": 1.0}
                )
                console.print(f"{workload}, round {r + 1}/{config.rounds}, {name}: saturation")
                sat[name].append(
                    fhir_servers.load(
                        servers[name],
                        {
                            **base,
                            "mode": "closed",
                            "connections": config.connections,
                            "duration_s": config.seconds,
                        },
                    )
                )
                console.print(
                    f"{workload}, round {r + 1}/{config.rounds}, {name}: "
                    f"{config.rates[workload]:g}/s fixed rate"
                )
                fixed[name].append(
                    fhir_servers.load(
                        servers[name],
                        {
                            **base,
                            "mode": "open",
                            "rate": config.rates[workload],
                            "max_in_flight": config.max_in_flight,
                            "duration_s": config.seconds,
                        },
                    )
                )
        out[workload] = _summarise(workload, config, sat, fixed)
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _summarise(
    workload: str,
    config: Config,
    sat: dict[str, list[dict[str, Any]]],
    fixed: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    names = tuple(sat)
    per_s = {s: _median(sat[s], "achieved_per_s") or 0.0 for s in names}
    ratios = [
        m["achieved_per_s"] / p["achieved_per_s"]
        for m, p in zip(sat["medledger"], sat["plain"], strict=True)
        if p["achieved_per_s"]
    ]
    summary: dict[str, Any] = {
        "workload": workload,
        "saturation": {
            "connections": config.connections,
            **{f"{s}_per_s": per_s[s] for s in names},
            **{f"{s}_p50_ms": _median(sat[s], "p50_ms") for s in names},
            **{f"{s}_p99_ms": _median(sat[s], "p99_ms") for s in names},
            **{f"{s}_cpu_ms_per_request": _median(sat[s], "server_cpu_ms_per_ok") for s in names},
            "ratio": per_s["medledger"] / per_s["plain"] if per_s["plain"] else 0.0,
            "ratio_rounds": ratios,
            **(
                {"baseline_ratio": per_s[BASELINE] / per_s["plain"] if per_s["plain"] else 0.0}
                if BASELINE in per_s
                else {}
            ),
            "errors": {s: sum(r["errors"] for r in sat[s]) for s in names},
            "rounds": sat,
        },
        "fixed_rate": {
            "rate_per_s": config.rates[workload],
            **{f"{s}_achieved_per_s": _median(fixed[s], "achieved_per_s") for s in names},
            **{f"{s}_p50_ms": _median(fixed[s], "p50_ms") for s in names},
            **{f"{s}_p99_ms": _median(fixed[s], "p99_ms") for s in names},
            **{f"{s}_cpu_ms_per_request": _median(fixed[s], "server_cpu_ms_per_ok") for s in names},
            "errors": {s: sum(r["errors"] for r in fixed[s]) for s in names},
            "rounds": fixed,
        },
    }
    summary["target_met"] = summary["saturation"]["ratio"] >= TARGET
    return summary


def run(*, quick: bool, console: Console, baseline: Path | None = None) -> dict[str, Any]:
    """The benchmark; ``baseline``: another checkout's ``src/`` served as a third server on a
    copy of the same node (the code before a change, measured side by side)."""
    config = QUICK if quick else FULL
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fhir-bench-") as tmp:
        work = Path(tmp)
        info = machine.describe(work)
        console.print("setting up: node, consents, Observations ...")
        patients, resources = fhir_servers.setup(work / "node", config.patients, config.per_patient)
        fhir_servers.write_plain(work / "plain.db", resources)
        ids = [r["id"] for r in resources]
        rng = random.Random(7)
        paths = {
            "read": [f"/fhir/Observation/{rng.choice(ids)}" for _ in range(1000)],
            "search": [
                f"/fhir/Observation?patient={rng.choice(patients)}&_count=20" for _ in range(1000)
            ],
        }
        doctor = load_demo_keys(work / "node")["dr-house"]
        if baseline is not None:
            shutil.copytree(work / "node", work / "node-baseline")
        with contextlib.ExitStack() as stack:
            serve = fhir_servers.server_process
            servers = {
                "medledger": stack.enter_context(serve("medledger", work / "node")),
                "plain": stack.enter_context(serve("plain", work / "plain.db")),
            }
            if baseline is not None:
                servers[BASELINE] = stack.enter_context(
                    serve("medledger", work / "node-baseline", baseline)
                )
            headers = {
                name: {}
                if name == "plain"
                else {"Authorization": f"Bearer {fhir_servers.mint_token(server.url, doctor)}"}
                for name, server in servers.items()
            }
            results = _measure(config, servers, paths, headers, console)
        info["contention_at_end"] = machine.contention()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "code": medledger_source(),
        "baseline_src": None if baseline is None else str(baseline),
        "config": asdict(config),
        "machine": info,
        "results": results,
        "target": TARGET,
        "target_met": all(r["target_met"] for r in results.values()),
        "wall_seconds": time.perf_counter() - began,
    }


def run_and_write(
    *,
    quick: bool,
    out: Path,
    console: Console,
    baseline: Path | None = None,
    baseline_label: str | None = None,
) -> dict[str, Any]:
    """Run, write ``out/fhir.json`` and ``out/fhir.md``, print the figures."""
    result = run(quick=quick, console=console, baseline=baseline)
    if baseline is not None:
        result["baseline_label"] = baseline_label or str(baseline)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "fhir.json", out / "fhir.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(fhir_report.render(result))
    table = Table(
        "workload",
        "medledger req/s",
        "plain req/s",
        "ratio",
        "fixed rate",
        "p50 / p99 ms (medledger)",
        "p50 / p99 ms (plain)",
        title="FHIR over HTTP",
    )
    for r in result["results"].values():
        s, f = r["saturation"], r["fixed_rate"]
        table.add_row(
            r["workload"],
            f"{s['medledger_per_s']:,.0f}",
            f"{s['plain_per_s']:,.0f}",
            f"{s['ratio']:.2f}",
            f"{f['rate_per_s']:g}/s",
            f"{fhir_report.ms(f['medledger_p50_ms'])} / {fhir_report.ms(f['medledger_p99_ms'])}",
            f"{fhir_report.ms(f['plain_p50_ms'])} / {fhir_report.ms(f['plain_p99_ms'])}",
        )
    console.print(table)
    console.print(f"wrote {json_path} and {md_path} ({result['wall_seconds']:.0f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fhir_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer resources, shorter runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's src/ (e.g. from git archive), served as a third server on a "
        "copy of the node: before/after a change, side by side",
    )
    parser.add_argument("--baseline-label", help="what --baseline is, for the report (a commit)")
    args = parser.parse_args()
    run_and_write(
        quick=args.quick,
        out=args.out,
        console=Console(),
        baseline=args.baseline,
        baseline_label=args.baseline_label,
    )


if __name__ == "__main__":
    main()
