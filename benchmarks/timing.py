"""Timing helpers: only the measured call sits between two ``perf_counter`` reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` operations in ``seconds`` of measured time."""

    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, float]:
        return {
            "count": self.count,
            "seconds": round(self.seconds, 6),
            "per_s": round(self.per_s, 1),
        }


def timed_calls(
    items: Sequence[T],
    call: Callable[[T], object],
    advance: Callable[[int], object],
    chunk: int = 1_000,
) -> Rate:
    """Time ``call(item)`` for every item; report progress between chunks, outside the clock."""
    seconds = 0.0
    for at in range(0, len(items), chunk):
        part = items[at : at + chunk]
        start = perf_counter()
        for item in part:
            call(item)
        seconds += perf_counter() - start
        advance(len(part))
    return Rate(len(items), seconds)
