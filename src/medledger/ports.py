"""The small ports the services depend on. Adapters implement them; tests may use
``medledger.testing`` in-memory versions for the pure core, never for the running node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.core.merkle import NodeId


class LogWriter(Protocol):
    """Appends entries durably: when ``append`` returns, the entries survive a crash."""

    def append(self, entries: Sequence[bytes]) -> int:
        """Append in order; return the index of the first entry."""
        ...


class LogReader(Protocol):
    """Reads a log whose committed prefix never changes."""

    def size(self) -> int: ...

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries [start, end), which must all exist."""
        ...

    def node_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        """Hashes of complete perfect subtrees, in the order asked."""
        ...

    def tile_row(self, level: int, index: int) -> bytes:
        """The stored hashes (concatenated) of tlog-tiles hash tile (level, index)."""
        ...


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint the node signed: its size, root and the exact signed-note bytes."""

    size: int
    root: bytes
    note: bytes


class CheckpointStore(Protocol):
    """Durable record of signed checkpoints; the latest is the signer's anti-fork guard."""

    def latest_checkpoint(self) -> SignedCheckpoint | None: ...

    def save_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Persist durably before the note is published."""
        ...

    def checkpoints(self) -> list[SignedCheckpoint]:
        """All stored checkpoints, by increasing size."""
        ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...
