"""What one ledger run produced: a figure set per phase, the limit samples, the profile.

Each phase keeps the Ed25519 limit it is judged against (the mean of the samples taken just
before and just after it) and its ratio to that limit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.ledger_config import LedgerConfig
from benchmarks.ledger_http import HttpRun, Outcomes
from benchmarks.ledger_limit import LimitSample
from benchmarks.ledger_node import Run
from benchmarks.ledger_profile import ProfileRun
from benchmarks.ledger_replay import ReplayRun


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 < q <= 1)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1)]


def _r(x: float, digits: int = 1) -> float:
    return round(x, digits)


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, sorted_ms: Sequence[float]) -> Latency:
        return cls(percentile(sorted_ms, 0.5), percentile(sorted_ms, 0.99), max(sorted_ms))

    def text(self) -> str:
        return f"{self.p50_ms:,.0f} / {self.p99_ms:,.0f} / {self.max_ms:,.0f}"


@dataclass(frozen=True, slots=True)
class NodePhase:
    """(b) or (c): the in-process node."""

    txs: int
    ok: int
    failed: dict[str, int]
    missing: int
    seconds: float  # first submission to last commit
    intake_seconds: float
    blocks: int
    max_block_txs: int
    latency: Latency
    limit_per_s: float
    offered_per_s: float | None = None  # (c): the planned submission rate
    behind_schedule_ms: float = 0.0

    @classmethod
    def of(cls, run: Run, limit_per_s: float, offered_per_s: float | None = None) -> NodePhase:
        c = run.commits
        return cls(
            txs=run.txs,
            ok=c.ok,
            failed=c.failed(),
            missing=c.missing,
            seconds=run.seconds,
            intake_seconds=run.intake_seconds,
            blocks=len(c.blocks),
            max_block_txs=max(b.txs for b in c.blocks),
            latency=Latency.of(c.latencies_ms()),
            limit_per_s=limit_per_s,
            offered_per_s=offered_per_s,
            behind_schedule_ms=run.behind_schedule_ms,
        )

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds

    @property
    def ratio(self) -> float:
        return self.per_s / self.limit_per_s

    @property
    def submitted_per_s(self) -> float:
        return self.txs / self.intake_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "txs": self.txs,
            "committed_ok": self.ok,
            "failed": self.failed,
            "missing": self.missing,
            "seconds": _r(self.seconds, 3),
            "tx_per_s": _r(self.per_s),
            "limit_per_s": _r(self.limit_per_s),
            "ratio_to_limit": _r(self.ratio, 3),
            "offered_per_s": None if self.offered_per_s is None else _r(self.offered_per_s),
            "submitted_per_s": _r(self.submitted_per_s),
            "behind_schedule_max_ms": _r(self.behind_schedule_ms, 2),
            "blocks": self.blocks,
            "blocks_per_s": _r(self.blocks / self.seconds, 2),
            "txs_per_block": {"mean": _r(self.txs / self.blocks), "max": self.max_block_txs},
            "submit_to_commit_ms": {k: _r(v, 2) for k, v in asdict(self.latency).items()},
        }


@dataclass(frozen=True, slots=True)
class HttpPhase:
    """(d): the served node."""

    txs: int
    clients: int
    ok: int
    failed: dict[str, int]
    errors: dict[str, int]
    seconds: float
    submit_seconds: float
    blocks: int
    request: Latency
    limit_per_s: float

    @classmethod
    def of(cls, run: HttpRun, outcomes: Outcomes, limit_per_s: float) -> HttpPhase:
        return cls(
            txs=run.txs,
            clients=run.clients,
            ok=outcomes.ok,
            failed=outcomes.failed,
            errors=run.errors,
            seconds=run.seconds,
            submit_seconds=run.submit_seconds,
            blocks=outcomes.blocks,
            request=Latency.of(run.request_ms),
            limit_per_s=limit_per_s,
        )

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds

    @property
    def ratio(self) -> float:
        return self.per_s / self.limit_per_s

    def as_json(self) -> dict[str, Any]:
        return {
            "txs": self.txs,
            "clients": self.clients,
            "committed_ok": self.ok,
            "failed": self.failed,
            "http_errors": self.errors,
            "seconds": _r(self.seconds, 3),
            "tx_per_s": _r(self.per_s),
            "limit_per_s": _r(self.limit_per_s),
            "ratio_to_limit": _r(self.ratio, 3),
            "submitted_per_s": _r(self.txs / self.submit_seconds),
            "blocks": self.blocks,
            "blocks_per_s": _r(self.blocks / self.seconds, 2),
            "txs_per_block": _r(self.txs / self.blocks),
            "request_ms": {k: _r(v, 2) for k, v in asdict(self.request).items()},
        }


@dataclass(frozen=True, slots=True)
class ReplayPhase:
    """(e): ``chain verify`` over the chain of (b)."""

    run: ReplayRun
    limit_per_s: float

    @property
    def per_s(self) -> float:
        return self.run.txs / self.run.replay_seconds

    @property
    def ratio(self) -> float:
        return self.per_s / self.limit_per_s

    def as_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "blocks": r.blocks,
            "txs": r.txs,
            "replay_seconds": _r(r.replay_seconds, 3),
            "tx_per_s": _r(self.per_s),
            "limit_per_s": _r(self.limit_per_s),
            "ratio_to_limit": _r(self.ratio, 3),
            "blocks_per_s": _r(r.blocks / r.replay_seconds, 2),
            "live_state_seconds": _r(r.live_state_seconds, 3),
            "tx_per_s_with_live_state": _r(r.txs / (r.replay_seconds + r.live_state_seconds)),
            "cli_wall_seconds": _r(r.cli_seconds, 2),
        }


@dataclass(slots=True)
class LedgerResult:
    date: str
    mode: str
    config: LedgerConfig
    machine: dict[str, Any]
    workload: dict[str, Any] = field(default_factory=dict)
    samples: list[LimitSample] = field(default_factory=list)
    throughput: NodePhase | None = None
    latency: NodePhase | None = None
    http: HttpPhase | None = None
    replay: ReplayPhase | None = None
    profile: ProfileRun | None = None
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def limit_median(self) -> float:
        return statistics.median(s.rate.per_s for s in self.samples) if self.samples else math.nan
