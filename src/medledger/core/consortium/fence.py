"""The submitter's fence: proof of holding the election, checked in every append's compare."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fence:
    """The leader key's create revision under our lease, and the value we wrote there."""

    revision: int
    lease: int
    value: bytes
