"""Growing trees batch by batch: every system gets the same batches, only ``append`` is timed.

The entries of each batch are generated before the clock starts (they are a function of their
index), then handed to each appender in turn; the time of each ``append`` call is summed per
system over the segment [start, end) -- so two systems' rates over a segment are directly
comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

from benchmarks.entries import audit_batch
from benchmarks.timing import Rate


class Appender(Protocol):
    def append(self, batch: Sequence[bytes]) -> None: ...


@dataclass(frozen=True, slots=True)
class Segment:
    """Appends of entries [start, end): one measured rate per system, and the bytes appended."""

    start: int
    end: int
    rates: dict[str, Rate]
    entry_bytes: int


def grow(
    appenders: Mapping[str, Appender],
    start: int,
    end: int,
    batch_entries: int,
    advance: Callable[[int], object],
) -> Segment:
    """Append entries [start, end) to every appender in batches of ``batch_entries``."""
    seconds = dict.fromkeys(appenders, 0.0)
    entry_bytes = 0
    for at in range(start, end, batch_entries):
        batch = audit_batch(at, min(batch_entries, end - at))
        entry_bytes += sum(map(len, batch))
        for name, appender in appenders.items():
            began = perf_counter()
            appender.append(batch)
            seconds[name] += perf_counter() - began
        advance(len(batch))
    return Segment(start, end, {n: Rate(end - start, s) for n, s in seconds.items()}, entry_bytes)
