"""The targets of issue 4, judged on one run: reported as met / not met, never asserted.

- encrypt+store and fetch+verify+decrypt of each record size >= 0.5x the bare floor (AES-GCM
  plus a plain file write with fsync / a file read) measured interleaved in the same run;
- key release >= 5,000/s on one core: judged on the full ``RecordService.release_key``; the
  pure part (decision + unwrap + wrap, no I/O) is reported against the same bar. Each is judged
  on its median chunk of calls (``records_release.Chunks``), robust to a burst of other work.
"""

from __future__ import annotations

from benchmarks.records_results import RecordsResult
from benchmarks.records_store import SizeRun
from benchmarks.targets import Target

RATIO = 0.5
RELEASES_PER_S = 5_000


def size_label(size: int) -> str:
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def _ratio(goal: str, which: int, run: SizeRun) -> Target:
    """``which``: 0 for the store ratio, 1 for the fetch ratio."""
    bare_s, ours_s = (run.bare_store, run.ours_store) if which == 0 else (run.bare_fetch,
                                                                        run.ours_fetch)  # fmt: skip
    ratio, (low, high) = bare_s / ours_s, run.spread(which)
    measured = (
        f"{ratio:.2f}x ({run.rate(ours_s).per_s:,.0f}/s vs bare {run.rate(bare_s).per_s:,.0f}/s;"
        f" rounds {low:.2f}-{high:.2f})"
    )
    return Target(goal, measured, ratio >= RATIO)


def evaluate(result: RecordsResult) -> list[Target]:
    targets: list[Target] = []
    for run in result.sizes:
        label = size_label(run.size)
        targets.append(_ratio(f"encrypt+store {label} >= {RATIO}x AES-GCM + file write (fsync)",
                              0, run))  # fmt: skip
        targets.append(_ratio(f"fetch+verify+decrypt {label} >= {RATIO}x file read + AES-GCM",
                              1, run))  # fmt: skip
    if (r := result.release) is not None:
        median, total = r.pure.median_per_s, r.pure.total.per_s
        targets.append(Target(
            f"key release >= {RELEASES_PER_S:,}/s on one core (pure: access gate with the"
            f" patient's {r.consents_per_patient} consents indexed + unwrap + wrap, no I/O)",
            f"{median:,.0f}/s median chunk ({1e6 / median:,.0f} us each); {total:,.0f}/s over"
            f" all calls; {r.pure.median_per_cpu_s:,.0f} per CPU second",
            median >= RELEASES_PER_S,
        ))  # fmt: skip
        for served in (r.best_concurrent, r.sequential):
            callers = (f"best of {len(r.concurrent)} concurrency levels: {served.threads} callers"
                       if served.threads > 1 else "one caller")  # fmt: skip
            targets.append(Target(
                f"key release >= {RELEASES_PER_S:,}/s on one core (RecordService.release_key"
                f" served, access event durable first; {callers})",
                f"{served.rate.per_s:,.0f}/s ({served.rate.count:,} releases; median latency"
                f" {served.latency(0.5):,.1f} ms)", served.rate.per_s >= RELEASES_PER_S,
            ))  # fmt: skip
    return targets
