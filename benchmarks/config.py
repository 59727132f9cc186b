"""What one run measures: sizes, batch size and sample counts (quick vs full)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """The knobs of one run. ``sizes`` are the tree sizes the log is built to, in order."""

    sizes: tuple[int, ...]
    peer_max_size: int  # pymerkle SqliteTree and PostgreSQL stop after this size
    inmemory_max_size: int  # pymerkle InmemoryTree (memory hungry) stops after this size
    batch_entries: int = 1_000
    inclusion_proofs: int = 20_000
    consistency_proofs: int = 10_000
    peer_proofs: int = 2_000
    sweep_batches: tuple[int, ...] = (100, 1_000, 10_000)
    sweep_entries: int = 200_000
    seed: int = 9162

    def __post_init__(self) -> None:
        if not self.sizes or list(self.sizes) != sorted(set(self.sizes)) or self.sizes[0] <= 0:
            raise ValueError("sizes must be positive and strictly increasing")
        if not 0 < self.batch_entries <= 10_000:
            raise ValueError("batch_entries must be in 1..10000 (Limits.max_batch_entries)")

    def peer_sizes(self, limit: int) -> tuple[int, ...]:
        return tuple(s for s in self.sizes if s <= limit)


FULL = BenchConfig(
    sizes=(10_000, 100_000, 1_000_000), peer_max_size=1_000_000, inmemory_max_size=100_000
)
QUICK = BenchConfig(
    sizes=(10_000,),
    peer_max_size=10_000,
    inmemory_max_size=10_000,
    inclusion_proofs=5_000,
    consistency_proofs=2_000,
    peer_proofs=500,
    sweep_entries=10_000,
)
