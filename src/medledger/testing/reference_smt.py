"""A naive, recursive sparse Merkle tree: the oracle ``medledger.core.state.smt`` is checked
against.

It reads like the definition in ADR 0007, not like a fast implementation: at each depth the
key hashes are split by their bit at that depth; no key gives the empty hash (32 zero bytes),
one key gives its leaf hash, more give ``SHA-256(0x01 || left || right)``. It hashes with
``hashlib`` directly and only borrows the node *types* and position encoding from the core, so
that ``layout`` can be compared with what a store holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from medledger.core.state.smt import Internal, Leaf, Node, NodeKey, node_key

ZEROS = bytes(32)


def _bit(key_hash: bytes, depth: int) -> int:
    return (key_hash[depth // 8] >> (7 - depth % 8)) & 1


def root(leaves: Mapping[bytes, bytes]) -> bytes:
    """The root over ``{key_hash: value_hash}``."""
    return _root(sorted(leaves.items()), 0)


def _root(items: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not items:
        return ZEROS
    if len(items) == 1:
        key_hash, value_hash = items[0]
        return hashlib.sha256(b"\x00" + key_hash + value_hash).digest()
    left = [kv for kv in items if _bit(kv[0], depth) == 0]
    right = [kv for kv in items if _bit(kv[0], depth) == 1]
    return hashlib.sha256(b"\x01" + _root(left, depth + 1) + _root(right, depth + 1)).digest()


def state_root(state: Mapping[str, bytes]) -> bytes:
    """The root over a contract state ``{key: value}``."""
    return root(
        {
            hashlib.sha256(b"medledger/state-key/v1\x00" + k.encode()).digest(): hashlib.sha256(
                b"medledger/state-value/v1\x00" + v
            ).digest()
            for k, v in state.items()
        }
    )


def layout(leaves: Mapping[bytes, bytes]) -> dict[NodeKey, Node]:
    """Every node of the canonical tree over ``{key_hash: value_hash}``, by position."""
    nodes: dict[NodeKey, Node] = {}
    _layout(sorted(leaves.items()), 0, 0, nodes)
    return nodes


def _layout(
    items: list[tuple[bytes, bytes]], depth: int, prefix: int, nodes: dict[NodeKey, Node]
) -> bytes:
    """Record the nodes of the subtree at (depth, prefix) in ``nodes``; return its hash."""
    if not items:
        return ZEROS
    if len(items) == 1:
        leaf = Leaf(*items[0])
        nodes[node_key(depth, prefix)] = leaf
        return hashlib.sha256(b"\x00" + leaf.key_hash + leaf.value_hash).digest()
    left = [kv for kv in items if _bit(kv[0], depth) == 0]
    right = [kv for kv in items if _bit(kv[0], depth) == 1]
    node = Internal(
        _layout(left, depth + 1, prefix << 1, nodes),
        _layout(right, depth + 1, (prefix << 1) | 1, nodes),
    )
    nodes[node_key(depth, prefix)] = node
    return hashlib.sha256(b"\x01" + node.left_hash + node.right_hash).digest()
