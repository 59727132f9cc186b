"""RFC 9162 Merkle tree: hashing, compact ranges, proof plans and proof verification.

One idea per module, as in transparency-dev/merkle:

- ``hashing``: the leaf and node hash functions (RFC 9162 §2.1.1).
- ``compact``: appending leaves in O(log n) and computing the root (compact range).
- ``plan``: which stored nodes a root, inclusion or consistency proof needs (no fetching).
- ``verify``: checking inclusion and consistency proofs (RFC 9162 §2.1.3.2, §2.1.4.2).
"""

from medledger.core.merkle.compact import CompactRange
from medledger.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from medledger.core.merkle.plan import (
    NodeId,
    ProofPlan,
    consistency_plan,
    inclusion_plan,
    root_plan,
)
from medledger.core.merkle.verify import (
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "ProofPlan",
    "consistency_plan",
    "inclusion_plan",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_plan",
    "verify_consistency",
    "verify_inclusion",
]
