"""What one records run produced, and its JSON form (``results/records.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.records_config import RecordsConfig
from benchmarks.records_put import PutRun
from benchmarks.records_release import ReleaseRun
from benchmarks.records_store import SizeRun
from benchmarks.targets import Target


@dataclass(slots=True)
class RecordsResult:
    date: str
    mode: str
    config: RecordsConfig
    machine: dict[str, Any]
    genesis: dict[str, int] = field(default_factory=dict)  # block_max_txs, block_interval_ms
    sizes: list[SizeRun] = field(default_factory=list)
    puts: list[PutRun] = field(default_factory=list)
    release: ReleaseRun | None = None
    micro_reads: dict[int, dict[str, float]] = field(default_factory=dict)  # by record size
    micro_reads_fresh: dict[int, dict[str, float]] = field(default_factory=dict)  # new process
    micro_wrapping: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def to_json(result: RecordsResult, targets: list[Target]) -> dict[str, Any]:
    return {
        "date": result.date,
        "mode": result.mode,
        "wall_seconds": round(result.wall_seconds, 1),
        "machine": result.machine,
        "config": asdict(result.config),
        "genesis": result.genesis,
        "store_fetch": [s.as_json() for s in result.sizes],
        "release": result.release.as_json() if result.release else None,
        "put_with_anchor": [p.as_json() for p in result.puts],
        "diagnostics_us": {
            "blob_reads_in_run_process": {
                str(k): _rounded(v) for k, v in result.micro_reads.items()
            },
            "blob_reads_fresh_process": {
                str(k): _rounded(v) for k, v in result.micro_reads_fresh.items()
            },
            "key_wrapping": _rounded(result.micro_wrapping),
        },
        "targets": [asdict(t) for t in targets],
        "notes": result.notes,
    }


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in d.items()}
