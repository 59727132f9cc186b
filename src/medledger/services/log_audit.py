"""`medledger log verify`: re-derive everything a log stores from its entries and check it.

Steps, each naming the first inconsistency it finds (``TamperError``):

1. every stored checkpoint's signed note verifies under the log's key (C2SP signed-note) and
   says the origin, size and root stored beside it;
2. the entries are contiguous from 0, and their RFC 9162 leaf hashes, folded level by level,
   rebuild exactly the stored tlog-tiles rows (bottom rows and in-tile levels);
3. the root re-derived at each checkpoint's size equals the checkpoint's root;
4. the stored size and compact range equal the re-derived ones, and no extra tile is stored;
5. consecutive checkpoints are consistent through proofs served from the stored tiles
   (RFC 9162 §2.1.4.2), so what the node would serve is checked too.

Streams entries in bounded chunks: memory does not grow with the log.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from medledger.config import Limits
from medledger.core.checkpoint import open_checkpoint
from medledger.core.merkle import CompactRange, consistency_plan, leaf_hash, verify_consistency
from medledger.core.note import Verifier
from medledger.errors import MedledgerError, NotFoundError, TamperError
from medledger.ports import LogReader, SignedCheckpoint

TILE_HEIGHT = 8
TILE_WIDTH = 256

Progress = Callable[[int, int], None]


class AuditableStore(LogReader, Protocol):
    def checkpoints(self) -> list[SignedCheckpoint]: ...
    def iter_entries(self, start: int = 0, chunk: int = 4096) -> Iterator[tuple[int, bytes]]: ...
    def stored_range(self) -> CompactRange: ...
    def tile_ids(self) -> list[tuple[int, int, int]]: ...
    def tile_blob(self, level: int, index: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LogReport:
    size: int
    root: bytes
    checkpoints: int
    tiles: int


def verify_stored_log(
    store: AuditableStore,
    origin: str,
    verifier: Verifier,
    *,
    progress: Progress | None = None,
    limits: Limits | None = None,
) -> LogReport:
    limits = limits or Limits()
    stored_size = store.stored_range().size
    checkpoints = store.checkpoints()
    roots = _check_checkpoint_notes(checkpoints, origin, verifier, limits)
    rebuilt = _Rebuild(store)
    expected_index = 0
    for index, data in store.iter_entries():
        if index != expected_index:
            raise TamperError(f"entry {expected_index} is missing (next stored is {index})")
        rebuilt.append(leaf_hash(data))
        expected_index += 1
        want = roots.get(expected_index)
        if want is not None and not hmac.compare_digest(want, rebuilt.range.root()):
            raise TamperError(
                f"checkpoint at size {expected_index} does not match the entries' root"
            )
        if progress is not None and expected_index % 4096 == 0:
            progress(expected_index, stored_size)
    rebuilt.finish()
    _check_head(store, rebuilt.range, roots)
    _check_consistency_chain(store, checkpoints)
    if progress is not None:
        progress(expected_index, stored_size)
    return LogReport(
        size=rebuilt.range.size,
        root=rebuilt.range.root(),
        checkpoints=len(checkpoints),
        tiles=rebuilt.tiles_checked,
    )


def _check_checkpoint_notes(
    checkpoints: list[SignedCheckpoint], origin: str, verifier: Verifier, limits: Limits
) -> dict[int, bytes]:
    roots: dict[int, bytes] = {}
    for cp in checkpoints:
        try:
            opened = open_checkpoint(cp.note, origin, [verifier], limits)
        except MedledgerError as e:
            raise TamperError(f"checkpoint at size {cp.size} does not verify: {e}") from e
        if opened.size != cp.size or not hmac.compare_digest(opened.root_hash, cp.root):
            raise TamperError(f"checkpoint at size {cp.size} disagrees with its signed note")
        roots[cp.size] = cp.root
    return roots


class _Rebuild:
    """Rebuilds tile blobs from leaf hashes and compares each as soon as it is complete."""

    def __init__(self, store: AuditableStore) -> None:
        self.store = store
        self.range = CompactRange()
        self.tiles: dict[tuple[int, int], list[bytearray]] = {}
        self.tiles_checked = 0

    def append(self, leaf: bytes) -> None:
        self.range.append(leaf, self._visit)

    def _visit(self, level: int, index: int, h: bytes) -> None:
        tile_level, r = divmod(level, TILE_HEIGHT)
        tile_index = (index << r) >> TILE_HEIGHT
        key = (tile_level, tile_index)
        rows = self.tiles.setdefault(key, [bytearray() for _ in range(TILE_HEIGHT)])
        rows[r] += h
        if r == TILE_HEIGHT - 1 and len(rows[r]) == 2 * 32:  # the tile's last node
            self._compare(key, rows)
            del self.tiles[key]

    def _compare(self, key: tuple[int, int], rows: list[bytearray]) -> None:
        level, index = key
        try:
            stored = self.store.tile_blob(level, index)
        except NotFoundError as e:
            raise TamperError(f"tile {level}/{index} is missing") from e
        except MedledgerError as e:
            raise TamperError(f"tile {level}/{index} cannot be read: {e}") from e
        if not hmac.compare_digest(stored, b"".join(rows)):
            first = index * TILE_WIDTH << (TILE_HEIGHT * level)
            raise TamperError(
                f"tile {level}/{index} does not match the entries from index {first} on"
            )
        self.tiles_checked += 1

    def finish(self) -> None:
        for key, rows in sorted(self.tiles.items()):
            self._compare(key, rows)
        stored = self.store.tile_ids()
        if len(stored) != self.tiles_checked:
            raise TamperError(
                f"{len(stored)} tiles are stored but the entries make {self.tiles_checked}"
            )
        # Every stored tile was compared above, so only its width column is left: the store
        # splits a blob into rows by it, and a wrong width breaks proofs and reopening.
        for level, index, width in stored:
            want = min(TILE_WIDTH, (self.range.size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH)
            if width != want:
                raise TamperError(f"tile {level}/{index} is stored with width {width}, not {want}")


def _check_head(store: AuditableStore, rebuilt: CompactRange, roots: dict[int, bytes]) -> None:
    stored = store.stored_range()
    if stored.size != rebuilt.size:
        raise TamperError(f"stored size {stored.size} but {rebuilt.size} entries are stored")
    if stored.hashes != rebuilt.hashes:
        raise TamperError("the stored compact range does not match the entries")
    beyond = [s for s in roots if s > rebuilt.size]
    if beyond:
        raise TamperError(f"a checkpoint of size {min(beyond)} is beyond the stored entries")


def _check_consistency_chain(store: AuditableStore, checkpoints: list[SignedCheckpoint]) -> None:
    for prev, cur in itertools.pairwise(checkpoints):
        plan = consistency_plan(prev.size, cur.size)
        try:
            proof = plan.assemble(store.node_hashes(plan.nodes))
            verify_consistency(prev.size, cur.size, proof, prev.root, cur.root)
        except MedledgerError as e:
            raise TamperError(
                f"checkpoints {prev.size} and {cur.size} are not consistent: {e}"
            ) from e
