"""The ledger targets of issue 3, judged on one run: reported as met / not met, never asserted.

The limit is the single-core Ed25519 verification rate measured around each phase
(``ledger_limit``): one verification per transaction is the floor of the work.
"""

from __future__ import annotations

from benchmarks.ledger_results import LedgerResult
from benchmarks.targets import Target

RATIO = 0.5


def _ratio_target(goal: str, per_s: float, limit: float) -> Target:
    ratio = per_s / limit
    return Target(goal, f"{ratio:.2f}x ({per_s:,.0f} tx/s vs {limit:,.0f} verifications/s)",
                  ratio >= RATIO)  # fmt: skip


def evaluate(result: LedgerResult) -> list[Target]:
    targets: list[Target] = []
    if (b := result.throughput) is not None:
        targets.append(_ratio_target(
            f"embedded node commits >= {RATIO}x the Ed25519 verify limit", b.per_s, b.limit_per_s
        ))  # fmt: skip
    if (e := result.replay) is not None:
        targets.append(_ratio_target(
            f"`chain verify` replay >= {RATIO}x the Ed25519 verify limit", e.per_s, e.limit_per_s
        ))  # fmt: skip
    phases = [("in-process", result.throughput), ("half load", result.latency),
              ("HTTP", result.http)]  # fmt: skip
    bad = [
        f"{name}: {p.txs - p.ok} of {p.txs}"
        for name, p in phases
        if p is not None and p.ok != p.txs
    ]
    targets.append(Target("(check) every submitted transaction committed with ok",
                          "; ".join(bad) if bad else "all", not bad))  # fmt: skip
    return targets
