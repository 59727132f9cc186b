"""What one records run measures (issue 4): record sizes, operation counts, threads."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class RecordsConfig:
    """The knobs of one records run (quick vs full)."""

    sizes: tuple[int, ...]  # record plaintext sizes, bytes
    store_ops: tuple[int, ...]  # per size: interleaved (bare, medledger) store + fetch pairs
    round_ops: tuple[int, ...]  # per size: stored, then fetched, then deleted, per round
    warmup_ops: int  # per size and contender, untimed, before the first round
    release_calls: int  # RecordService.release_key, one caller after another
    release_pure_calls: int  # evaluate_access (ConsentIndex) + unwrap_key + wrap_key, in memory
    release_split_calls: int  # the service call's steps, each timed on its own
    release_threads: tuple[int, ...]  # concurrent release_key callers (a run each), one CPU
    release_per_thread: int
    put_sequential: int  # RecordService.put (anchored) one after the other, per size
    put_threads: int  # concurrent RecordService.put callers, each its own records
    put_per_thread: int
    pin_release_cpu: bool = True  # key release "on one core": pin this thread to one CPU
    release_warmup_s: float = 1.0  # untimed pure releases before the timed loops

    def __post_init__(self) -> None:
        if not len(self.sizes) == len(self.store_ops) == len(self.round_ops):
            raise ValueError("one store_ops and round_ops count per size")
        counts = (*self.store_ops, *self.round_ops, self.release_calls, self.release_pure_calls,
                  *self.release_threads, self.release_per_thread)  # fmt: skip
        if min(counts) <= 0 or min(self.put_sequential, self.put_threads) <= 0:
            raise ValueError("every phase needs operations")


FULL = RecordsConfig(
    sizes=(4 * KIB, MIB),
    store_ops=(2_000, 300),
    round_ops=(250, 50),
    warmup_ops=20,
    release_calls=200,
    release_pure_calls=5_000,
    release_split_calls=200,
    release_threads=(16, 64, 256, 512),
    release_per_thread=20,
    put_sequential=10,
    put_threads=8,
    put_per_thread=3,
)
QUICK = RecordsConfig(
    sizes=(4 * KIB, MIB),
    store_ops=(300, 40),
    round_ops=(150, 20),
    warmup_ops=5,
    release_calls=50,
    release_pure_calls=1_000,
    release_split_calls=50,
    release_threads=(16, 64),
    release_per_thread=10,
    put_sequential=3,
    put_threads=8,
    put_per_thread=1,
    release_warmup_s=0.5,
)
