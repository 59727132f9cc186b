"""The transparency log use cases: append, sign checkpoints, serve proofs and receipts.

Handles: appending entries durably (RFC 9162 leaves), signing C2SP tlog-checkpoints without ever
signing two that conflict, producing inclusion/consistency proofs (RFC 9162 §2.1.3, §2.1.4) at
any past size, C2SP tlog-proof@v1 receipts, and tlog-tiles reads.
Not handled here: storage (``LogStore`` port), clocks and scheduling (the entrypoints decide
when to call ``checkpoint_if_grown``), and authorization (the HTTP edge's hook).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from medledger.config import LogConfig
from medledger.core.checkpoint import Checkpoint, sign_checkpoint
from medledger.core.merkle import (
    consistency_plan,
    inclusion_plan,
    root_plan,
    verify_consistency,
)
from medledger.core.merkle.plan import root_from_hashes
from medledger.core.note import Signer, Verifier
from medledger.core.receipt import Receipt, format_receipt
from medledger.core.tiles import TILE_WIDTH, TileId, encode_entry_bundle
from medledger.errors import ConflictError, InvalidInputError, NotFoundError, ProofError
from medledger.ports import CheckpointStore, LogReader, LogWriter, SignedCheckpoint


class LogStore(LogWriter, LogReader, CheckpointStore, Protocol):
    """What the log service needs from one store."""

    def head(self) -> tuple[int, bytes]:
        """(size, root) of the committed tree, read atomically."""
        ...

    def preview(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """(size, root) after appending ``entries``; writes nothing."""
        ...


class TransparencyLog:
    """One node's transparency log."""

    def __init__(self, store: LogStore, signer: Signer, config: LogConfig) -> None:
        self._store = store
        self._signer = signer
        self._config = config
        self._sign_lock = threading.Lock()

    @property
    def origin(self) -> str:
        return self._config.origin

    @property
    def verifier(self) -> Verifier:
        return self._signer.verifier()

    # --- writes --------------------------------------------------------------------------------
    def append(self, entries: Sequence[bytes]) -> int:
        """Append entries durably; return the index of the first. Acknowledged = durable."""
        return self._store.append(entries)

    def checkpoint_if_grown(self) -> SignedCheckpoint | None:
        """Sign a checkpoint for the current tree if it grew since the last one."""
        latest = self._store.latest_checkpoint()
        size, _ = self._store.head()
        if latest is not None and latest.size >= size:
            return None
        return self.sign_current()

    def sign_current(self) -> SignedCheckpoint:
        """Sign the committed tree, unless that would conflict with what was signed before."""
        with self._sign_lock:
            size, root = self._store.head()
            last = self._store.latest_checkpoint()
            if last is not None and last.size == size:
                self._check_extends(last, size, root)
                return last
            self._check_extends(last, size, root)
            note = sign_checkpoint(Checkpoint(self.origin, size, root), self._signer)
            signed = SignedCheckpoint(size, root, note)
            # Persist before publishing: a crash after this line re-signs the same bytes
            # (Ed25519 is deterministic), never a different tree at this size.
            self._store.save_checkpoint(signed)
            return signed

    def _check_extends(self, last: SignedCheckpoint | None, size: int, root: bytes) -> None:
        """Refuse a smaller or inconsistent tree than the last signed checkpoint."""
        if last is None:
            return
        if size < last.size:
            raise ConflictError(
                f"refusing to sign size {size}: a checkpoint of size {last.size} is signed"
            )
        proof = self.consistency_proof(last.size, size)
        try:
            verify_consistency(last.size, size, proof, last.root, root)
        except ProofError as e:
            raise ConflictError(
                f"refusing to sign size {size}: not consistent with the signed size {last.size}"
            ) from e

    # --- reads ---------------------------------------------------------------------------------
    def size(self) -> int:
        return self._store.head()[0]

    def head(self) -> tuple[int, bytes]:
        """(size, root) of the committed tree."""
        return self._store.head()

    def preview(self, entries: Sequence[bytes]) -> tuple[int, bytes]:
        """(size, root) after appending ``entries``, without appending them."""
        return self._store.preview(entries)

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint; signs the first one if none exists."""
        latest = self._store.latest_checkpoint()
        return latest if latest is not None else self.sign_current()

    def entry(self, index: int) -> bytes:
        self._check_index(index, self.size())
        return self._store.entries(index, index + 1)[0]

    def root_at(self, size: int) -> bytes:
        self._check_size(size, "size")
        return root_from_hashes(self._store.node_hashes(root_plan(size).nodes))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size, "size")
        self._check_index(index, size)
        plan = inclusion_plan(index, size)
        return plan.assemble(self._store.node_hashes(plan.nodes))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2, "to")
        if not 0 <= size1 <= size2:
            raise InvalidInputError(f"from={size1} must be in 0..to={size2}", parameter="from")
        plan = consistency_plan(size1, size2)
        return plan.assemble(self._store.node_hashes(plan.nodes))

    def receipt(self, index: int) -> bytes:
        """A C2SP tlog-proof@v1 receipt against the newest checkpoint that covers ``index``.

        The ``extra`` line carries the entry itself (ADR 0004): the receipt is then
        self-contained, and the extra data is authenticated by the inclusion proof, never
        trusted on its own.
        """
        self._check_index(index, self.size())
        checkpoint = self.latest_checkpoint()
        if checkpoint.size <= index:
            checkpoint = self.sign_current()
        proof = self.inclusion_proof(index, checkpoint.size)
        entry = self._store.entries(index, index + 1)[0]
        return format_receipt(
            Receipt(index=index, proof=tuple(proof), checkpoint_note=checkpoint.note, extra=entry)
        )

    def tile(self, tile: TileId) -> bytes:
        """tlog-tiles: a hash tile's bottom row or an entry bundle, at the width asked for."""
        size = self.size()
        if tile.is_entries:
            if tile.end_index > size:
                raise NotFoundError("that entry bundle does not exist yet")
            return encode_entry_bundle(self._store.entries(tile.start_index, tile.end_index))
        level_size = size >> (8 * tile.level)
        if (tile.index * TILE_WIDTH) + tile.width > level_size:
            raise NotFoundError("that tile does not exist yet at that width")
        return self._store.tile_row(tile.level, tile.index)[: tile.width * 32]

    # --- parameter checks ----------------------------------------------------------------------
    def _check_size(self, size: int, parameter: str) -> None:
        current = self.size()
        if not 0 <= size <= current:
            raise InvalidInputError(
                f"{parameter}={size} is outside the log (size {current})", parameter=parameter
            )

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise InvalidInputError(
                f"index={index} is not below the tree size {size}", parameter="index"
            )
