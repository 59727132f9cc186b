"""The small ports the services depend on. Adapters implement them; tests may use
``medledger.testing`` in-memory versions for the pure core, never for the running node."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


# Appended for the blob store (ADR 0011); the import sits here so the lines above stay as
# they were. It can join the ``collections.abc`` import at the top in a later tidy-up.


class BlobStore(Protocol):
    """Content-addressed storage of opaque blobs (clinical content, already encrypted).

    A blob is named by its CID (``medledger.core.cid``: CIDv1, raw codec, sha2-256, base32),
    which is what the ledger anchors. Narrow on purpose: a filesystem, an S3-compatible bucket
    (object key = CID) or an IPFS node (the CID is already an IPFS raw-leaf CID) each
    implement these five methods. Malformed CIDs raise ``InvalidInputError``.
    """

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its CID. Idempotent: the same bytes give the same
        CID and one stored copy. ``TooLargeError`` over the store's size limit."""
        ...

    def get(self, cid: str) -> bytes:
        """The blob's bytes, verified against ``cid`` before they are returned.

        ``NotFoundError`` if absent; ``TamperError`` if the stored bytes no longer hash to
        ``cid`` (a corrupted blob is never returned)."""
        ...

    def delete(self, cid: str) -> bool:
        """Remove the blob durably; ``True`` if it was there."""
        ...

    def exists(self, cid: str) -> bool:
        """Whether a blob is stored under ``cid`` (not verified: ``get`` verifies)."""
        ...

    def iter_cids(self) -> Iterator[str]:
        """The CIDs of every stored blob, in no promised order."""
        ...


@dataclass(frozen=True, slots=True)
class KeyedVersion:
    """What the node keeps off-chain for one record version: where its ciphertext is, the
    commitment's salt, and the data key wrapped to the node (never the key itself)."""

    patient: str
    record_id: str
    version: int
    resource_type: str
    cid: str
    salt: bytes
    node_wrap: bytes
    anchored: bool
    #: ``ResourceFacts`` bytes: labels, codes and data time the access gate reads.
    facts: bytes


class SeenRequests(Protocol):
    """Where a node remembers one-time values it has seen -- signed requests' nonces, client
    assertions' ``jti`` -- until they expire (``adapters.sqlite_nonces``)."""

    def seen_before(self, key: str, expires_s: int, now_s: int) -> bool:
        """Remember ``key`` until ``expires_s``; True if it was remembered and has not expired
        (a replay). ``OverloadedError`` when full of live entries: never forget one early."""
        ...


@dataclass(frozen=True, slots=True)
class StoredNote:
    """A privacy officer's review note as stored off-chain (ADR 0022); ``note``/``salt`` are
    None once erased (the row stays as a tombstone)."""

    event_id: str
    reviewer: str
    commitment: str
    note: str | None
    salt: str | None
    stored_ms: int
    erased_ms: int | None


class NoteStore(Protocol):
    """Review notes by event id (``adapters.sqlite_review_notes``): written once, erasable."""

    def put(
        self, *, event_id: str, reviewer: str, commitment: str, note: str, salt: str, now_ms: int
    ) -> StoredNote:
        """Store unless a row exists (or was erased); return the row stored afterwards."""
        ...

    def get(self, event_id: str) -> StoredNote | None: ...

    def erase(self, event_id: str, now_ms: int) -> bool:
        """Shred the note's text and salt, keep the tombstone; False if there was none."""
        ...
