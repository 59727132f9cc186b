"""The state root: a binary sparse Merkle tree with shortcut leaves over all contract state.

Contract state is a map ``str -> bytes``. Every block header commits to all of it with one
hash, the *state root*, computed here. The tree is a binary Merkle tree over 256-bit paths
(the key hashes) in which a leaf sits at the shallowest depth where its path prefix is unique
("shortcut leaves", as in Diem's Jellyfish Merkle tree and compressed SMTs), so a state of n
keys has about log2(n) levels instead of 256. ADR 0007 records why.

Hashes (SHA-256, the RFC 9162 §2.1.1 prefixes 0x00/0x01 for leaves and internal nodes):

- ``key_hash   = SHA-256("medledger/state-key/v1" 0x00 || UTF-8(key))``, the leaf's path;
- ``value_hash = SHA-256("medledger/state-value/v1" 0x00 || value)``;
- empty subtree = 32 zero bytes (also the root of the empty state);
- leaf = ``SHA-256(0x00 || key_hash || value_hash)``;
- internal = ``SHA-256(0x01 || left || right)``.

The tree is canonical, a pure function of the key set: an internal node exists exactly where at
least two keys share its path prefix. So an internal node never has one empty child and one
*leaf* child (the leaf moves up), but may have one empty and one internal child.

Nodes are stored by *position*, ``NodeKey`` = the path prefix in ``ceil(depth / 8)`` bytes,
unused low bits zero, followed by one byte ``depth mod 256`` (the length tells depth 0 from
256). Prefix first, so that in a sorted store the nodes of one subtree, and so of one path
below the top levels, sit next to each other. Only the current tree is stored: an update
overwrites the nodes on the changed paths.

What this module does, with plain values in and out (no I/O):

1. ``update``: apply a whole block's changes in one pass. Changes are sorted by path and the
   tree is descended once, level by level, sharing prefixes: each level's nodes are fetched
   with one ``NodeStore.get_many`` (so a database serves a level in one query), then the new
   subtrees are hashed bottom-up. Below the depth where a change is alone in its subtree (about
   log2 of the block size), its path is rehashed in a tight loop, each untouched sibling read
   from its parent. It returns the new root and the nodes to put and delete, never writing:
   the caller writes them inside the same transaction as the block.
2. ``prove``: the siblings from the key's leaf (or the empty slot, or another key's leaf where
   its path ends) up to the root.
3. ``verify_proof``: membership (a value hash) or absence (``None``); ``None`` or ``ProofError``.

Not handled here: reading or writing a database, caching, transactions (see
``medledger.adapters.sqlite_state``), and keeping old versions (only the latest tree is
stored, so proofs are served against the current root). ``update`` and ``prove`` trust the
store's nodes below the root, which is checked against the root they are given.
"""

from __future__ import annotations

import hashlib
import hmac
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from medledger.core.merkle.hashing import HASH_SIZE, LEAF_PREFIX, NODE_PREFIX
from medledger.errors import InvalidInputError, ProofError, TamperError

KEY_DOMAIN = b"medledger/state-key/v1\x00"
VALUE_DOMAIN = b"medledger/state-value/v1\x00"
#: Paths are SHA-256 key hashes, so the tree has at most this many levels below the root.
PATH_BITS = 256
#: The hash of an empty subtree, and the root of the empty state.
EMPTY_HASH = bytes(HASH_SIZE)
EMPTY_STATE_ROOT = EMPTY_HASH

_sha256 = hashlib.sha256

#: A node's position: path prefix (``ceil(depth/8)`` bytes) || ``depth mod 256`` (one byte).
NodeKey: TypeAlias = bytes

_DEPTH_BYTES = tuple(bytes([d & 0xFF]) for d in range(PATH_BITS + 1))


def hash_key(key: str) -> bytes:
    """A state key's path in the tree: SHA-256("medledger/state-key/v1" 0x00 || UTF-8(key))."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError("a state key must be valid Unicode", parameter="key") from e
    return _sha256(KEY_DOMAIN + encoded).digest()


def hash_value(value: bytes) -> bytes:
    """SHA-256("medledger/state-value/v1" 0x00 || value)."""
    return _sha256(VALUE_DOMAIN + value).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


# --- node positions -------------------------------------------------------------------------
def node_key(depth: int, prefix: int) -> NodeKey:
    """The position of the node at ``depth`` whose path begins with the bits ``prefix``."""
    n = (depth + 7) >> 3
    return (prefix << ((n << 3) - depth)).to_bytes(n, "big") + _DEPTH_BYTES[depth]


def parse_node_key(key: NodeKey) -> tuple[int, int]:
    """``(depth, prefix)`` of a position; the inverse of ``node_key``."""
    if not 1 <= len(key) <= 1 + PATH_BITS // 8:
        raise InvalidInputError("a node key is 1 to 33 bytes", parameter="key")
    depth = PATH_BITS if len(key) == 33 and key[-1] == 0 else key[-1]
    n = (depth + 7) >> 3
    if len(key) != 1 + n:
        raise InvalidInputError("a node key's length does not match its depth", parameter="key")
    padded = int.from_bytes(key[:-1], "big")
    unused = (n << 3) - depth
    if padded & ((1 << unused) - 1):
        raise InvalidInputError("a node key's unused prefix bits must be zero", parameter="key")
    return depth, padded >> unused


ROOT_KEY: NodeKey = node_key(0, 0)


# --- nodes ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Leaf:
    """A key's leaf: its path (``key_hash``) and ``value_hash``."""

    key_hash: bytes
    value_hash: bytes

    def __post_init__(self) -> None:
        k, v = self.key_hash, self.value_hash
        if type(k) is not bytes or type(v) is not bytes or not len(k) == len(v) == 32:
            raise InvalidInputError("a leaf holds two 32-byte hashes", parameter="leaf")

    def hash(self) -> bytes:
        """SHA-256(0x00 || key_hash || value_hash)."""
        return _sha256(LEAF_PREFIX + self.key_hash + self.value_hash).digest()


@dataclass(frozen=True, slots=True)
class Internal:
    """An internal node: the hashes of its two subtrees (32 zero bytes for an empty one)."""

    left_hash: bytes
    right_hash: bytes

    def __post_init__(self) -> None:
        left, right = self.left_hash, self.right_hash
        if type(left) is not bytes or type(right) is not bytes or not len(left) == len(right) == 32:
            raise InvalidInputError("an internal node holds two 32-byte hashes", parameter="node")
        if left == right == EMPTY_HASH:
            raise InvalidInputError("an internal node has a non-empty child", parameter="node")

    def hash(self) -> bytes:
        """SHA-256(0x01 || left || right)."""
        return _sha256(NODE_PREFIX + self.left_hash + self.right_hash).digest()


Node: TypeAlias = Leaf | Internal


class NodeStore(Protocol):
    """Where the current tree's nodes are read from, by position. Writes are the caller's."""

    def get(self, key: NodeKey) -> Node | None:
        """The node at ``key``, or None if that position is empty."""
        ...

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, Node]:
        """The nodes at ``keys`` that exist (one level of a batch, read at once)."""
        ...


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """A block's effect on the tree: the new root and the node rows that change."""

    root: bytes
    puts: dict[NodeKey, Node]
    deletes: frozenset[NodeKey]


# --- update ---------------------------------------------------------------------------------
# Inside a batch a position is a heap index, ``pos = 1 << depth | prefix`` (children 2*pos and
# 2*pos + 1), and a path is extended the same way, ``xpath = 1 << 256 | key_hash``, so that
# ``xpath >> (256 - depth)`` is the position of the node at ``depth`` on its path. Positions
# become ``NodeKey``s only for the nodes read and written.

#: What a new subtree is: empty (None), one leaf that may still move up (a leaf alone under a
#: node replaces it), or the hash of a subtree that stays where it is.
_Sub: TypeAlias = Leaf | bytes | None

_TOP = 1 << PATH_BITS


def _key_of(pos: int) -> NodeKey:
    """``node_key`` of a heap position."""
    depth = pos.bit_length() - 1
    n = (depth + 7) >> 3
    return ((pos ^ (1 << depth)) << ((n << 3) - depth)).to_bytes(n, "big") + _DEPTH_BYTES[depth]


def update(store: NodeStore, root: bytes, changes: Mapping[bytes, bytes | None]) -> UpdateResult:
    """Apply ``changes`` (key_hash -> value_hash, or None to delete) to the tree whose root is
    ``root``, reading ``store``. Returns the new root and the nodes to put and delete; nothing
    is written. Deleting an absent key is a no-op. Raises ``TamperError`` if the store does not
    hold the tree ``root`` commits to (checked at the root) or misses a node below it."""
    if not _is_hash(root):
        raise InvalidInputError("the root is a 32-byte hash", parameter="root")
    for k, v in changes.items():
        if not (_is_hash(k) and (v is None or _is_hash(v))):
            raise InvalidInputError("changes map 32-byte key hashes to 32-byte value hashes")
    if not changes:
        return UpdateResult(root, {}, frozenset())
    return _Batch(store, changes).run(root)


class _Batch:
    """One block's changes, sorted by path; the old nodes read and the new nodes made."""

    def __init__(self, store: NodeStore, changes: Mapping[bytes, bytes | None]) -> None:
        items = sorted(changes.items())
        self.store = store
        self.xpaths = [_TOP | int.from_bytes(k, "big") for k, _ in items]
        self.leaves = [None if v is None else Leaf(k, v) for k, v in items]
        self.old: dict[int, Node] = {}  # position -> node, for every old node read
        self.keys: dict[int, NodeKey] = {}  # position -> key, for the nodes read
        self.puts: dict[int, Node] = {}  # new nodes, some maybe equal to the old ones
        self.fresh: dict[int, Internal] = {}  # new nodes certain to differ from the old
        # For a change alone in its subtree: the internal nodes on its path, (pos, node, bit).
        self.lone: dict[int, list[tuple[int, Internal, int]]] = {}

    def run(self, root: bytes) -> UpdateResult:
        self._load(root)
        new_root = self._place(1, self._subtree(0, 1, 0, len(self.xpaths), root))
        old, keys, puts, fresh = self.old, self.keys, self.puts, self.fresh
        deletes = frozenset(keys[pos] for pos in old if pos not in puts and pos not in fresh)
        changed: dict[NodeKey, Node] = {keys[pos]: node for pos, node in fresh.items()}
        for pos, node in puts.items():
            if old.get(pos) != node:
                changed[keys.get(pos) or _key_of(pos)] = node
        return UpdateResult(new_root, changed, deletes)

    def _load(self, root: bytes) -> None:
        """Read every existing node on the changed paths, one ``get_many`` per level."""
        if root == EMPTY_HASH:
            return
        top = self.store.get(ROOT_KEY)
        if top is None or not hmac.compare_digest(top.hash(), root):
            raise TamperError("the stored state tree does not match the state root")
        old, keys = self.old, self.keys
        old[1], keys[1] = top, ROOT_KEY
        frontier = [(1, 0, len(self.xpaths), top)] if isinstance(top, Internal) else []
        depth = 0
        while frontier:
            wanted = self._children(depth, frontier)
            depth += 1
            got = self.store.get_many([w[3] for w in wanted])
            frontier = []
            for pos, lo, hi, key in wanted:
                child = got.get(key)
                if child is None:
                    raise TamperError("the stored state tree is missing a node")
                old[pos] = child
                keys[pos] = key
                if isinstance(child, Internal):
                    frontier.append((pos, lo, hi, child))

    def _children(
        self, depth: int, frontier: list[tuple[int, int, int, Internal]]
    ) -> list[tuple[int, int, int, NodeKey]]:
        """The non-empty children, at ``depth + 1``, of the nodes ``frontier`` on the changed
        paths: ``(pos, lo, hi, key)`` with changes[lo:hi] below each."""
        xpaths, lone = self.xpaths, self.lone
        shift = PATH_BITS - 1 - depth
        depth += 1  # every child has this depth, so its key is a simple function of pos:
        size, pad, top_bit, tail = (depth + 7) >> 3, -depth % 8, 1 << depth, _DEPTH_BYTES[depth]
        wanted: list[tuple[int, int, int, NodeKey]] = []
        for pos, lo, hi, node in frontier:
            if hi - lo == 1:  # one change below: follow its path
                bit = (xpaths[lo] >> shift) & 1
                if lo in lone:
                    lone[lo].append((pos, node, bit))
                else:
                    lone[lo] = [(pos, node, bit)]
                if (node.right_hash if bit else node.left_hash) != EMPTY_HASH:
                    child = (pos << 1) | bit
                    key = ((child ^ top_bit) << pad).to_bytes(size, "big") + tail
                    wanted.append((child, lo, hi, key))
                continue
            child = pos << 1
            mid = bisect_left(xpaths, (child | 1) << shift, lo, hi)
            if lo < mid and node.left_hash != EMPTY_HASH:
                key = ((child ^ top_bit) << pad).to_bytes(size, "big") + tail
                wanted.append((child, lo, mid, key))
            if mid < hi and node.right_hash != EMPTY_HASH:
                child |= 1
                key = ((child ^ top_bit) << pad).to_bytes(size, "big") + tail
                wanted.append((child, mid, hi, key))
        return wanted

    def _subtree(self, depth: int, pos: int, lo: int, hi: int, old_hash: bytes) -> _Sub:
        """The new subtree at ``pos``, whose old hash is ``old_hash``, after changes[lo:hi]."""
        if hi - lo == 1:
            return self._path(depth, pos, lo, old_hash)
        node = None if old_hash == EMPTY_HASH else self.old[pos]
        if not isinstance(node, Internal):
            return self._rebuild(depth, pos, lo, hi, node)
        left = pos << 1
        mid = bisect_left(self.xpaths, (left | 1) << (PATH_BITS - 1 - depth), lo, hi)
        if lo < mid < hi:
            return self._join(
                pos,
                self._subtree(depth + 1, left, lo, mid, node.left_hash),
                self._subtree(depth + 1, left | 1, mid, hi, node.right_hash),
            )
        if mid == hi:
            sub = self._subtree(depth + 1, left, lo, hi, node.left_hash)
            return self._beside(pos, sub, 0, node.right_hash)
        sub = self._subtree(depth + 1, left | 1, lo, hi, node.right_hash)
        return self._beside(pos, sub, 1, node.left_hash)

    def _path(self, depth: int, pos: int, i: int, old_hash: bytes) -> _Sub:
        """The subtree at ``pos`` when only change ``i`` falls in it: down its path to the
        old leaf or empty slot, then back up, every sibling on the way untouched."""
        old = self.old
        down = self.lone.get(i, [])  # the internal nodes on the way down, read by _load
        if down:
            depth += len(down)
            last, last_node, bit = down[-1]
            pos = (last << 1) | bit
            below = last_node.right_hash if bit else last_node.left_hash
            node = None if below == EMPTY_HASH else old[pos]
        else:
            node = None if old_hash == EMPTY_HASH else old[pos]
        if isinstance(node, Internal):  # _load follows a lone path down to its end
            raise TamperError("the stored state tree changed while it was read")
        leaf = self.leaves[i]
        if leaf == node or (leaf is None and (node is None or node.key_hash != self._key_hash(i))):
            # A write of the value it has, or a delete of an absent key: nothing changes.
            if not down:
                return node
            for unchanged, _, _ in down:  # the nodes read stay
                del old[unchanged]
            old.pop(pos, None)
            return old_hash
        sub = self._rebuild(depth, pos, i, i + 1, node)
        fresh = self.fresh
        for parent, parent_node, bit in reversed(down):
            kept = parent_node.left_hash if bit else parent_node.right_hash
            if sub is None or isinstance(sub, Leaf) or kept == EMPTY_HASH:
                sub = self._beside(parent, sub, bit, kept)
                continue
            # Most levels: a changed subtree beside an untouched one. Every node from here up
            # differs from the old one, since the subtree below it does.
            left, right = (kept, sub) if bit else (sub, kept)
            fresh[parent] = Internal(left, right)
            sub = _sha256(NODE_PREFIX + left + right).digest()
        return sub

    def _key_hash(self, i: int) -> bytes:
        return (self.xpaths[i] ^ _TOP).to_bytes(HASH_SIZE, "big")

    def _beside(self, pos: int, sub: _Sub, sub_bit: int, kept: bytes) -> _Sub:
        """The node at ``pos`` over a new subtree ``sub`` (its child ``sub_bit``) and an
        untouched sibling of hash ``kept``, which stays where it is unless it must move up."""
        if kept == EMPTY_HASH:
            if sub is None or isinstance(sub, Leaf):
                return sub  # empty, or a leaf alone that moves up
            new = sub
        elif sub is None:
            # The kept side is now alone: if it is a leaf it moves up, so read what it is.
            kept_pos = (pos << 1) | (sub_bit ^ 1)
            key = _key_of(kept_pos)
            alone = self.store.get(key)
            if alone is None or not hmac.compare_digest(alone.hash(), kept):
                raise TamperError("the stored state tree does not match its parent node")
            if isinstance(alone, Leaf):
                self.old[kept_pos], self.keys[kept_pos] = alone, key  # it leaves kept_pos
                return alone
            new = EMPTY_HASH
        else:
            new = self._place((pos << 1) | sub_bit, sub)
        left, right = (kept, new) if sub_bit else (new, kept)
        self.puts[pos] = Internal(left, right)
        return _sha256(NODE_PREFIX + left + right).digest()

    def _rebuild(self, depth: int, pos: int, lo: int, hi: int, leaf: Leaf | None) -> _Sub:
        """Below an old leaf or empty slot nothing is stored: build from the leaves alone."""
        if hi - lo == 1:  # one change: the common case, without the general merge
            new = self.leaves[lo]
            if leaf is None or leaf.key_hash == self._key_hash(lo):
                return new
            if new is None:
                return leaf
            pair = [self.xpaths[lo], _TOP | int.from_bytes(leaf.key_hash, "big")]
            two = [new, leaf] if pair[0] < pair[1] else [leaf, new]
            return self._build(depth, pos, sorted(pair), two, lo=0, hi=2)
        window = zip(self.xpaths[lo:hi], self.leaves[lo:hi], strict=True)
        pairs = [(x, v) for x, v in window if v is not None]
        if leaf is not None:
            xpath = _TOP | int.from_bytes(leaf.key_hash, "big")
            at = bisect_left(self.xpaths, xpath, lo, hi)
            if at == hi or self.xpaths[at] != xpath:  # the old leaf is not changed: keep it
                pairs.append((xpath, leaf))
                pairs.sort(key=lambda pair: pair[0])
        xpaths = [x for x, _ in pairs]
        leaves = [v for _, v in pairs]
        return self._build(depth, pos, xpaths, leaves, lo=0, hi=len(pairs))

    def _build(
        self, depth: int, pos: int, xpaths: list[int], leaves: list[Leaf], *, lo: int, hi: int
    ) -> _Sub:
        if hi - lo <= 1:
            return leaves[lo] if hi > lo else None
        left = pos << 1
        mid = bisect_left(xpaths, (left | 1) << (PATH_BITS - 1 - depth), lo, hi)
        return self._join(
            pos,
            self._build(depth + 1, left, xpaths, leaves, lo=lo, hi=mid),
            self._build(depth + 1, left | 1, xpaths, leaves, lo=mid, hi=hi),
        )

    def _join(self, pos: int, left: _Sub, right: _Sub) -> _Sub:
        """The node at ``pos`` over two new subtrees (a leaf alone moves up)."""
        if right is None:
            if left is None or isinstance(left, Leaf):
                return left
            left_hash, right_hash = left, EMPTY_HASH
        elif left is None:
            if isinstance(right, Leaf):
                return right
            left_hash, right_hash = EMPTY_HASH, right
        else:
            left_hash, right_hash = self._place(pos << 1, left), self._place(pos << 1 | 1, right)
        self.puts[pos] = Internal(left_hash, right_hash)
        return _sha256(NODE_PREFIX + left_hash + right_hash).digest()

    def _place(self, pos: int, sub: _Sub) -> bytes:
        """Fix ``sub`` at ``pos``, storing it there if it is a leaf; return its hash."""
        if sub is None:
            return EMPTY_HASH
        if isinstance(sub, Leaf):
            self.puts[pos] = sub
            return _sha256(LEAF_PREFIX + sub.key_hash + sub.value_hash).digest()
        return sub


# --- proofs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StateProof:
    """The siblings on a key's path, deepest first, and the leaf where the path ends (None for
    an empty slot). A leaf of another key is a proof of absence, as is an empty slot."""

    siblings: tuple[bytes, ...]
    leaf: Leaf | None

    def __post_init__(self) -> None:
        if len(self.siblings) > PATH_BITS:
            raise ProofError(f"a state proof has at most {PATH_BITS} siblings")
        if not all(_is_hash(s) for s in self.siblings):
            raise ProofError("every sibling in a state proof is a 32-byte hash")


def prove(store: NodeStore, root: bytes, key_hash: bytes) -> StateProof:
    """A proof of the value of ``key_hash`` (or of its absence) in the tree ``root``."""
    if not (_is_hash(root) and _is_hash(key_hash)):
        raise InvalidInputError("root and key_hash are 32-byte hashes")
    if root == EMPTY_HASH:
        return StateProof((), None)
    path = int.from_bytes(key_hash, "big")
    siblings: list[bytes] = []
    expected, depth, prefix = root, 0, 0
    while True:
        node = store.get(node_key(depth, prefix))
        if node is None or not hmac.compare_digest(node.hash(), expected):
            raise TamperError("the stored state tree does not match the state root")
        if isinstance(node, Leaf):
            break
        bit = (path >> (PATH_BITS - 1 - depth)) & 1
        expected, sibling = (
            (node.right_hash, node.left_hash) if bit else (node.left_hash, node.right_hash)
        )
        siblings.append(sibling)
        depth, prefix = depth + 1, (prefix << 1) | bit
        if expected == EMPTY_HASH:
            node = None
            break
    siblings.reverse()
    return StateProof(tuple(siblings), node)


def verify_proof(root: bytes, key_hash: bytes, value_hash: bytes | None, proof: StateProof) -> None:
    """Check that in the state ``root``, ``key_hash`` has ``value_hash`` (None: is absent).

    1. The path ends, at depth ``len(proof.siblings)``, in ``proof.leaf`` or (None) an empty
       slot. A leaf must lie on the key's path.
    2. The key's own leaf proves it present, and its value hash must match; another key's leaf
       or an empty slot proves it absent. Either must be what was claimed.
    3. Hashing up the siblings, left or right by the key's path bits, must give ``root``.
    """
    if not (_is_hash(root) and _is_hash(key_hash)):
        raise ProofError("root and key_hash must be 32-byte hashes")
    if value_hash is not None and not _is_hash(value_hash):
        raise ProofError("value_hash must be a 32-byte hash")
    path = int.from_bytes(key_hash, "big")
    node = _end_of_path(path, key_hash, value_hash, proof)  # 1-2.
    depth = len(proof.siblings)
    for i, sibling in enumerate(proof.siblings):  # 3.
        if (path >> (PATH_BITS - depth + i)) & 1:
            node = _sha256(NODE_PREFIX + sibling + node).digest()
        else:
            node = _sha256(NODE_PREFIX + node + sibling).digest()
    if not hmac.compare_digest(node, root):
        raise ProofError("the state proof does not lead to the state root")


def _end_of_path(path: int, key_hash: bytes, value_hash: bytes | None, proof: StateProof) -> bytes:
    """Steps 1-2 of ``verify_proof``: the hash where the key's path ends."""
    leaf = proof.leaf
    if leaf is None:
        if value_hash is not None:
            raise ProofError("the key's path ends at an empty slot: the proof shows absence")
        return EMPTY_HASH
    if (int.from_bytes(leaf.key_hash, "big") ^ path) >> (PATH_BITS - len(proof.siblings)):
        raise ProofError("the proof's leaf is not on the key's path")
    if leaf.key_hash != key_hash:
        if value_hash is not None:
            raise ProofError("the key's path ends at another key's leaf: the proof shows absence")
    elif value_hash is None:
        raise ProofError("the proof shows the key present, not absent")
    elif leaf.value_hash != value_hash:
        raise ProofError("the proof's leaf holds a different value")
    return leaf.hash()
