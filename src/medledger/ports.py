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


class Ordering(Protocol):
    """Gives every node the same total order of transaction envelopes.

    Solo (the embedded node orders its own blocks) or an etcd Raft cluster (issue 7).
    """

    def submit(self, envelope: bytes) -> None:
        """Hand an envelope to the orderer; it will appear in some later batch exactly once."""
        ...

    def next_batch(self, max_items: int, max_wait_s: float) -> list[bytes]:
        """The next envelopes in order: as soon as ``max_items`` are ready, or after
        ``max_wait_s`` from the first one; an empty list if none came within ``max_wait_s``."""
        ...


class BlockRecord(Protocol):
    """A stored block: its canonical header bytes (as signed, after the domain prefix)."""

    @property
    def height(self) -> int: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def header(self) -> bytes: ...
    @property
    def signature(self) -> bytes: ...


class TxRecord(Protocol):
    """A committed transaction: wire bytes, position and outcome."""

    @property
    def tx_id(self) -> bytes: ...
    @property
    def height(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def wire(self) -> bytes: ...
    @property
    def ok(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def log_index(self) -> int: ...
