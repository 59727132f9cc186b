"""What one run produced: one row per (system, size), plus the machine and the run's notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.proofs import ProofRates
from benchmarks.timing import Rate


@dataclass(frozen=True, slots=True)
class OursRow:
    """medledger at one size: appends over the last segment, proofs, disk and memory."""

    size: int
    segment_start: int
    bare: Rate
    ours: Rate
    proofs: ProofRates
    disk_bytes: int
    entry_bytes: int  # all entries appended so far
    memory_after_appends: dict[str, float]
    memory: dict[str, float]  # after the proofs too: the tile cache is warm
    bare_root: bytes
    root_matches_bare: bool

    @property
    def ratio_to_bare(self) -> float:
        return self.ours.per_s / self.bare.per_s

    @property
    def disk_per_entry(self) -> float:
        return self.disk_bytes / self.size

    @property
    def overhead_per_entry(self) -> float:
        return (self.disk_bytes - self.entry_bytes) / self.size

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "segment": [self.segment_start, self.size],
            "appends": {"bare_hashlib": self.bare.as_json(), "medledger": self.ours.as_json()},
            "ratio_to_bare": round(self.ratio_to_bare, 3),
            "proofs": self.proofs.as_json(),
            "disk": {
                "bytes": self.disk_bytes,
                "entry_bytes": self.entry_bytes,
                "bytes_per_entry": round(self.disk_per_entry, 1),
                "avg_entry_bytes": round(self.entry_bytes / self.size, 1),
                "overhead_per_entry": round(self.overhead_per_entry, 1),
            },
            "memory_after_appends": self.memory_after_appends,
            "memory_after_proofs": self.memory,
            "bare_root": self.bare_root.hex(),
            "root_matches_bare": self.root_matches_bare,
        }


@dataclass(frozen=True, slots=True)
class PeerRow:
    """A peer system at one size; fields a peer does not have are None."""

    system: str
    size: int
    segment_start: int
    append: Rate
    append_only: Rate | None = None
    inclusion: Rate | None = None
    disk_bytes: int | None = None
    root_matches_bare: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "size": self.size,
            "segment": [self.segment_start, self.size],
            "append": self.append.as_json(),
            "append_only": self.append_only.as_json() if self.append_only else None,
            "inclusion_served": self.inclusion.as_json() if self.inclusion else None,
            "disk_bytes_per_entry": round(self.disk_bytes / self.size, 1)
            if self.disk_bytes is not None
            else None,
            "root_matches_bare": self.root_matches_bare,
        }


@dataclass(frozen=True, slots=True)
class SweepRow:
    """A fresh log filled with ``entries`` entries in batches of ``batch_entries``."""

    batch_entries: int
    bare: Rate
    ours: Rate

    @property
    def ratio_to_bare(self) -> float:
        return self.ours.per_s / self.bare.per_s

    def as_json(self) -> dict[str, Any]:
        return {
            "batch_entries": self.batch_entries,
            "bare_hashlib": self.bare.as_json(),
            "medledger": self.ours.as_json(),
            "ratio_to_bare": round(self.ratio_to_bare, 3),
        }


@dataclass(slots=True)
class SuiteResult:
    date: str
    mode: str
    config: BenchConfig
    machine: dict[str, Any]
    ours: list[OursRow] = field(default_factory=list)
    peers: list[PeerRow] = field(default_factory=list)
    sweep: list[SweepRow] = field(default_factory=list)
    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def peer(self, system: str, size: int) -> PeerRow | None:
        return next((p for p in self.peers if p.system == system and p.size == size), None)
