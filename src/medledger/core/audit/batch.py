"""Access-event batches, KSI-style: many events, one Merkle root, one signature.

A node aggregates its access events into a batch: the events in arrival order are the leaves
of an RFC 9162 tree (leaf ``i`` hashed as ``SHA-256(0x00 || events[i].leaf_bytes())``), and
the batch's root is anchored on the ledger by one ``access.batch`` transaction signed by the
node's key (``contracts.access_batch``). One signature covers the whole batch, however many
events it holds; each event is then proved by an inclusion path to that root (RFC 9162
§2.1.3), which is what a patient's receipt carries (``receipt``).

What this module handles: sealing (``seal_batch``: leaf hashes, root, count and time range),
the anchor transaction's payload, and inclusion proofs within a batch
(``batch_inclusion_proof``: plain values in, proof out). Not handled here: when to seal,
storage, signing and submitting (``services.audit``), randomness (batch ids take 16 random
bytes from the caller). Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.contracts.access_batch import BATCH_ID, MAX_BATCH_EVENTS
from medledger.core.merkle import HASH_SIZE, CompactRange
from medledger.core.merkle.hashing import LEAF_PREFIX, NODE_PREFIX
from medledger.errors import InvalidInputError

#: A batch of up to 2**20 events needs an inclusion path of at most 20 hashes.
MAX_BATCH_PROOF_HASHES: Final = (MAX_BATCH_EVENTS - 1).bit_length()


def new_batch_id(random16: bytes) -> str:
    """A batch id of 16 random bytes: the same 26-character form as an event id, which the
    access-batch contract's ``BATCH_ID`` accepts."""
    return new_event_id(random16)


def leaf_hashes(events: Sequence[AccessEvent]) -> list[bytes]:
    """RFC 9162 §2.1.1 leaf hashes of the events' leaf bytes, in order."""
    sha256 = hashlib.sha256
    return [sha256(LEAF_PREFIX + e.leaf_bytes()).digest() for e in events]


def batch_root(hashes: Sequence[bytes]) -> bytes:
    """MTH over the leaf hashes (RFC 9162 §2.1.1), hashed a level at a time."""
    tree = CompactRange()
    tree.extend_levels(list(hashes))
    return tree.root()


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch that will not change: its events, their leaf hashes and the root over them.

    ``first_time_ms``/``last_time_ms`` are the earliest and latest event times (events from
    concurrent requests need not arrive in time order)."""

    batch_id: str
    events: tuple[AccessEvent, ...]
    leaves: tuple[bytes, ...]
    root: bytes
    #: Every level of the tree (``tree_levels``), kept to answer inclusion proofs at once.
    levels: tuple[tuple[bytes, ...], ...] = field(default=(), repr=False, compare=False)
    _times: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.batch_id, str) or not BATCH_ID.fullmatch(self.batch_id):
            raise InvalidInputError("batch_id: 8-64 of [A-Za-z0-9_-]", parameter="batch_id")
        if not 1 <= len(self.events) <= MAX_BATCH_EVENTS:
            raise InvalidInputError(
                f"a batch holds 1..{MAX_BATCH_EVENTS} events", parameter="events"
            )
        if len(self.leaves) != len(self.events) or len(self.root) != HASH_SIZE:
            raise InvalidInputError("one leaf hash per event and a 32-byte root")
        if self.levels and (self.levels[0] != self.leaves or self.levels[-1] != (self.root,)):
            raise InvalidInputError("levels must be the tree over the leaves", parameter="levels")
        times = [e.time_ms for e in self.events]
        object.__setattr__(self, "_times", (min(times), max(times)))

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def first_time_ms(self) -> int:
        return self._times[0]

    @property
    def last_time_ms(self) -> int:
        return self._times[1]

    def anchor_payload(self) -> dict[str, JSON]:
        """The ``access.batch`` payload that anchors this batch."""
        return {
            "batch_id": self.batch_id,
            "root": self.root.hex(),
            "count": self.count,
            "first_time_ms": self.first_time_ms,
            "last_time_ms": self.last_time_ms,
        }


def seal_batch(batch_id: str, events: Sequence[AccessEvent]) -> SealedBatch:
    """Hash each event once and the tree once: the batch, ready to store and anchor."""
    levels = tree_levels(leaf_hashes(events))
    return SealedBatch(batch_id, tuple(events), levels[0], levels[-1][0], levels)


def tree_levels(hashes: Sequence[bytes]) -> tuple[tuple[bytes, ...], ...]:
    """Every level of the RFC 9162 tree over ``hashes``, leaves first, root last.

    Level by level, neighbours pair up; a last node without a partner is carried up
    unchanged. For RFC 9162's left-balanced trees this gives MTH exactly (the split at the
    largest power of two below n puts every unpaired node on the right edge)."""
    if not hashes:
        raise InvalidInputError("a batch has at least one event", parameter="leaves")
    sha256 = hashlib.sha256
    levels = [tuple(hashes)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        up = [
            sha256(NODE_PREFIX + a + b).digest()
            for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) & 1:
            up.append(level[-1])
        levels.append(tuple(up))
    return tuple(levels)


def proof_from_levels(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """PATH(index) (RFC 9162 §2.1.3.1), leaf-side first, from ``tree_levels``: the sibling
    at each level, none where the node is carried up without one."""
    if not 0 <= index < len(levels[0]):
        raise InvalidInputError(
            f"index {index} is not in a batch of {len(levels[0])}", parameter="index"
        )
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index >>= 1
    return proof


def batch_inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion path of leaf ``index`` in the batch tree over ``hashes``."""
    return proof_from_levels(tree_levels(hashes), index)
