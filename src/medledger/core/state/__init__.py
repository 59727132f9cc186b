"""Contract state and its commitment: the sparse Merkle tree behind each block's state root.

- ``smt``: node positions and hashes, the batch ``update``, ``prove`` and ``verify_proof``.
"""

from medledger.core.state.smt import (
    EMPTY_STATE_ROOT,
    Internal,
    Leaf,
    Node,
    NodeKey,
    NodeStore,
    StateProof,
    UpdateResult,
    hash_key,
    hash_value,
    node_key,
    parse_node_key,
    prove,
    update,
    verify_proof,
)

__all__ = [
    "EMPTY_STATE_ROOT",
    "Internal",
    "Leaf",
    "Node",
    "NodeKey",
    "NodeStore",
    "StateProof",
    "UpdateResult",
    "hash_key",
    "hash_value",
    "node_key",
    "parse_node_key",
    "prove",
    "update",
    "verify_proof",
]
