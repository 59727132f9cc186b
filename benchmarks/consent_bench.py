"""``python -m benchmarks.consent_bench [--quick]``: consent decisions on one core (issue 5).

1. a patient with 100 consents, a realistic mix (``patient_consents``): per-practitioner and
   per-organization grants (some with nested denies, labels, periods), role grants, record and
   label denies, expired grants, and revoked / draft consents;
2. a fixed set of requests (``workload``) from practitioners with and without grants, for
   ordinary, labelled and withheld records, checked first: the index and the reference
   evaluator must give the same decision for every one;
3. decisions/s of ``ConsentIndex.evaluate`` and of ``evaluate_consents`` side by side, rounds
   interleaved, the process pinned to one CPU; the index by outcome too;
4. the time to build the index.

Writes ``results/consent.json`` (every figure) and ``results/consent.md`` (the summary).
Target: >= 50,000 indexed decisions/s on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import machine
from medledger.core.consent.decision import ConsentRequest, evaluate_consents
from medledger.core.consent.index import ConsentIndex
from medledger.core.consent.model import ActorRule, Consent, DataRef, Period, Provision
from medledger.core.identity.did_key import did_from_public_key

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_PER_S = 50_000
DAY = 86_400_000
NOW = 1_717_200_000_000  # a fixed "now": the bench is deterministic
ORGS = 8
PRACTITIONERS_PER_ORG = 6
ROLES = ("physician", "nurse", "emergency-physician", "pharmacist", "lab-technician")


@dataclass(frozen=True)
class Config:
    index_decisions: int  # per round
    naive_decisions: int  # per round
    rounds: int
    builds: int
    requests: int


FULL = Config(index_decisions=100_000, naive_decisions=10_000, rounds=5, builds=200, requests=2_000)
QUICK = Config(index_decisions=10_000, naive_decisions=1_000, rounds=3, builds=20, requests=500)


def _did(name: str) -> str:
    return did_from_public_key(hashlib.sha256(name.encode()).digest())


PATIENT = _did("bench:patient")
ORG_DIDS = [_did(f"bench:org:{o}") for o in range(ORGS)]
PRACTITIONERS = [
    (_did(f"bench:pr:{o}:{p}"), ORG_DIDS[o], ROLES[(o + p) % len(ROLES)])
    for o in range(ORGS)
    for p in range(PRACTITIONERS_PER_ORG)
]
RECORDS = [f"Observation/rec-{i}" for i in range(200)]


def _consent(i: int, provision: Provision, status: str = "active") -> Consent:
    return Consent(f"bench-{i:03d}", PATIENT, status, "patient-privacy", provision=provision)


def patient_consents(rng: random.Random) -> list[Consent]:
    """100 consents of one patient; the kinds and counts are listed in ``consent.md``."""
    out: list[Consent] = []
    within = Period(NOW - 30 * DAY, NOW + 60 * DAY)
    for i in range(30):  # one practitioner each; a third time-limited, a few with labels
        did, _org, _role = PRACTITIONERS[i]
        labels = (
            frozenset({"R"}) if i % 7 == 0 else frozenset({"PSY"}) if i % 11 == 0 else frozenset()
        )
        out.append(_consent(len(out), Provision(
            type="permit", actors=(ActorRule("PRCP", did),), actions=frozenset({"access"}),
            purposes=frozenset({"TREAT"}), period=within if i % 3 == 0 else None,
            security_labels=labels,
        )))  # fmt: skip
    for i in range(15):  # an organization each (of 8), a third with a nested deny
        org = ORG_DIDS[i % ORGS]
        nested: tuple[Provision, ...] = ()
        if i % 3 == 0:
            banned = PRACTITIONERS[(i % ORGS) * PRACTITIONERS_PER_ORG + 5][0]
            nested = (
                Provision(type="deny", actors=(ActorRule("PRCP", banned),)),
                Provision(type="deny", security_labels=frozenset({"PSY", "HIV"})),
            )
        out.append(_consent(len(out), Provision(
            type="permit", actors=(ActorRule("PRCP", org),), purposes=frozenset({"TREAT"}),
            provisions=nested,
        )))  # fmt: skip
    for i in range(10):  # a practitioner role, within an organization or anywhere
        role = ROLES[i % len(ROLES)]
        scope_org = ORG_DIDS[i % ORGS] if i % 2 else None
        out.append(_consent(len(out), Provision(
            type="permit", actors=(ActorRule("IRCP", scope_org, role),),
            purposes=frozenset({"ETREAT"}) if role == "emergency-physician" else frozenset(),
            data_period=Period(NOW - 365 * DAY, None),
        )))  # fmt: skip
    for _ in range(10):  # withhold a few records from everyone (notThis)
        refs = tuple(DataRef("instance", r) for r in rng.sample(RECORDS, 3))
        out.append(_consent(len(out), Provision(type="deny", data=refs)))
    for i in range(3):  # withhold what one organization holds (notAuthor)
        out.append(_consent(len(out), Provision(
            type="deny", actors=(ActorRule("CST", ORG_DIDS[ORGS - 1 - i]),),
            purposes=frozenset({"HRESCH"}),
        )))  # fmt: skip
    for label in ("HIV", "SDV"):  # never share these
        out.append(_consent(len(out), Provision(type="deny", security_labels=frozenset({label}))))
    for i in range(15):  # expired grants
        did = PRACTITIONERS[30 + i % 18][0]
        expired = Period(NOW - 90 * DAY, NOW - DAY)
        grant = Provision(type="permit", actors=(ActorRule("PRCP", did),), period=expired)
        out.append(_consent(len(out), grant))
    for i in range(15):  # revoked, drafted or rejected grants
        status = ("inactive", "draft", "rejected")[i % 3]
        did = PRACTITIONERS[i][0]
        out.append(
            _consent(len(out), Provision(type="permit", actors=(ActorRule("PRCP", did),)), status)
        )
    assert len(out) == 100
    return out


def workload(rng: random.Random, count: int) -> list[ConsentRequest]:
    """Reads (mostly) of the patient's records by practitioners of the 8 organizations."""
    purposes = ("TREAT",) * 6 + ("ETREAT", "BTG", "HRESCH", "HOPERAT")
    requests = []
    for _ in range(count):
        did, org, role = rng.choice(PRACTITIONERS)
        roll = rng.random()
        labels = frozenset({"R"}) if roll < 0.1 else frozenset({"PSY"}) if roll < 0.15 else (
            frozenset({"HIV"}) if roll < 0.18 else frozenset()
        )  # fmt: skip
        requests.append(ConsentRequest(
            actor=did, actor_org=org, actor_roles=frozenset({role}), patient=PATIENT,
            action="access" if rng.random() < 0.9 else "use", purpose=rng.choice(purposes),
            resource_type="Observation", security_labels=labels, codes=frozenset(),
            data_time_ms=NOW - rng.randrange(1, 400) * DAY, record_ref=rng.choice(RECORDS),
            record_custodian=rng.choice(ORG_DIDS), record_author=None,
        ))  # fmt: skip
    return requests


@contextmanager
def _one_cpu() -> Iterator[int | None]:
    """Pin this process to one CPU (the last it may use) for the measurement."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)


def _rate(
    decide: Callable[[ConsentRequest], object], requests: list[ConsentRequest], n: int
) -> float:
    """Decisions/s (wall clock) over ``n`` decisions cycling through ``requests``."""
    return _rates(decide, requests, n)[0]


def _rates(
    decide: Callable[[ConsentRequest], object], requests: list[ConsentRequest], n: int
) -> tuple[float, float]:
    """Decisions per wall-clock second and per CPU second of this process: on a shared
    machine the second discounts the time another task held the pinned CPU."""
    batch = (requests * (n // len(requests) + 1))[:n]
    began, cpu_began = time.perf_counter(), time.process_time()
    for request in batch:
        decide(request)
    return n / (time.perf_counter() - began), n / (time.process_time() - cpu_began)


def _outcome(decision: object) -> str:
    reasons = decision.reasons  # type: ignore[attr-defined]
    return str(reasons[0])


def run(*, quick: bool, console: Console) -> dict[str, object]:
    config = QUICK if quick else FULL
    described = machine.describe(Path(tempfile.gettempdir()))  # contention before the run
    rng = random.Random(20240601)
    consents = patient_consents(rng)
    requests = workload(rng, config.requests)
    began = time.monotonic()
    console.print(
        f"{len(consents)} consents, {len(requests):,} requests: checking index == reference"
    )
    index = ConsentIndex.build(consents)
    outcomes: Counter[str] = Counter()
    by_outcome: dict[str, list[ConsentRequest]] = {}
    for request in requests:
        expected = evaluate_consents(request, consents, NOW)
        if index.evaluate(request, NOW) != expected:
            raise SystemExit(f"the index disagrees with the reference on {request}")
        outcomes[_outcome(expected)] += 1
        by_outcome.setdefault(_outcome(expected), []).append(request)

    def indexed(r: ConsentRequest) -> object:
        return index.evaluate(r, NOW)

    def naive(r: ConsentRequest) -> object:
        return evaluate_consents(r, consents, NOW)

    indexed_rates, naive_rates, indexed_cpu, naive_cpu, builds = [], [], [], [], []
    outcome_rates: dict[str, list[float]] = {k: [] for k in by_outcome}
    with _one_cpu() as cpu:
        _rate(indexed, requests, config.index_decisions // 5)  # warm-up
        for r in range(config.rounds):
            console.print(f"round {r + 1}/{config.rounds}")
            wall, cpu_s = _rates(indexed, requests, config.index_decisions)
            indexed_rates.append(wall)
            indexed_cpu.append(cpu_s)
            wall, cpu_s = _rates(naive, requests, config.naive_decisions)
            naive_rates.append(wall)
            naive_cpu.append(cpu_s)
            for kind, subset in by_outcome.items():
                outcome_rates[kind].append(_rate(indexed, subset, config.index_decisions // 5))
        for _ in range(config.builds):
            t = time.perf_counter()
            ConsentIndex.build(consents)
            builds.append((time.perf_counter() - t) * 1e6)
    indexed_median = statistics.median(indexed_rates)
    naive_median = statistics.median(naive_rates)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "config": config.__dict__,
        "machine": {**described, "pinned_cpu": cpu, "contention_at_end": machine.contention()},
        "consents": {
            "total": len(consents),
            "active": sum(c.status == "active" for c in consents),
        },
        "requests": len(requests),
        "outcomes": dict(sorted(outcomes.items())),
        "indexed_per_s": {"median": indexed_median, "rounds": indexed_rates},
        "naive_per_s": {"median": naive_median, "rounds": naive_rates},
        "indexed_per_cpu_s": {"median": statistics.median(indexed_cpu), "rounds": indexed_cpu},
        "naive_per_cpu_s": {"median": statistics.median(naive_cpu), "rounds": naive_cpu},
        "ratio": indexed_median / naive_median,
        "indexed_per_s_by_outcome": {
            k: statistics.median(v) for k, v in sorted(outcome_rates.items())
        },
        "build_us": {"median": statistics.median(builds), "max": max(builds)},
        "target_per_s": TARGET_PER_S,
        "target_met": indexed_median >= TARGET_PER_S,
        "wall_seconds": time.monotonic() - began,
    }


def render(result: dict[str, object]) -> str:
    r: dict = result  # type: ignore[type-arg]
    met = "met" if r["target_met"] else "NOT met"
    lines = [
        "# Consent decisions (issue 5)",
        "",
        f"{r['date']}, {r['mode']} run, one CPU (pinned: {r['machine']['pinned_cpu']}),"
        f" {r['machine']['cpu_model']}, Python {r['machine']['python']}.",
        f"Contention: start {r['machine']['contention_at_start']};"
        f" end {r['machine']['contention_at_end']}.",
        "",
        f"One patient, {r['consents']['total']} consents ({r['consents']['active']} active): 30"
        " per-practitioner grants (a third time-limited, some for R / PSY records), 15"
        " per-organization grants (a third with nested denies of a practitioner and of PSY/HIV"
        " records), 10 practitioner-role grants, 10 record denies, 3 custodian denies, 2 label"
        " denies, 15 expired grants, 15 revoked / draft / rejected.",
        f"{r['requests']:,} requests by 48 practitioners of 8 organizations; outcomes: "
        + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        + ".",
        "Every request was checked first: the index and the reference evaluator agree.",
        "",
        "| evaluator | decisions/s (wall clock) | decisions per CPU second |",
        "|---|---:|---:|",
        f"| `ConsentIndex.evaluate` | {r['indexed_per_s']['median']:,.0f}"
        f" | {r['indexed_per_cpu_s']['median']:,.0f} |",
        f"| `evaluate_consents` (reference) | {r['naive_per_s']['median']:,.0f}"
        f" | {r['naive_per_cpu_s']['median']:,.0f} |",
        f"| ratio | {r['ratio']:.1f}x | |",
        "",
        "Medians of the rounds; the CPU-second figure discounts time another task held the"
        " pinned CPU (see the contention line).",
        "",
        "| outcome (index) | decisions/s |",
        "|---|---:|",
        *(f"| {k} | {v:,.0f} |" for k, v in r["indexed_per_s_by_outcome"].items()),
        "",
        f"Index build: {r['build_us']['median']:,.0f} us median ({r['build_us']['max']:,.0f} max)"
        " for the 100 consents.",
        "",
        f"Target: >= {r['target_per_s']:,} indexed decisions/s on one core: **{met}**.",
        "",
    ]
    return "\n".join(lines)


def run_and_write(*, quick: bool, out: Path, console: Console) -> dict[str, object]:
    """Run, write ``out/consent.json`` and ``out/consent.md``, print the figures."""
    result = run(quick=quick, console=console)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "consent.json", out / "consent.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(render(result))
    table = Table("figure", "value", title="Consent decisions (details in consent.md)")
    table.add_row("indexed decisions/s", f"{result['indexed_per_s']['median']:,.0f}")  # type: ignore[index]
    table.add_row("reference decisions/s", f"{result['naive_per_s']['median']:,.0f}")  # type: ignore[index]
    table.add_row("ratio", f"{result['ratio']:.1f}x")
    table.add_row("index build", f"{result['build_us']['median']:,.0f} us")  # type: ignore[index]
    table.add_row("target >= 50,000/s", "[green]met" if result["target_met"] else "[red]not met")
    console.print(table)
    console.print(f"wrote {json_path} and {md_path} ({result['wall_seconds']:.0f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consent_bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer decisions (smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the result files go")
    args = parser.parse_args()
    run_and_write(quick=args.quick, out=args.out, console=Console())


if __name__ == "__main__":
    main()
