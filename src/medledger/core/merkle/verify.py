"""Verifying RFC 9162 inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs.

Algorithms take plain values. ``verify_*`` return None or raise ``ProofError``; they never
return a bare False. Root comparisons are constant-time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from medledger.core.merkle.hashing import HASH_SIZE, node_hash
from medledger.errors import ProofError

#: A tree of up to 2**64 leaves never needs a longer proof.
MAX_PROOF_HASHES = 64


def _check_hashes(proof: Sequence[bytes], *roots: bytes) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(proof)} hashes, at most {MAX_PROOF_HASHES} are possible")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError("every proof hash must be 32 bytes")
    if any(len(r) != HASH_SIZE for r in roots):
        raise ProofError("hashes and roots must be 32 bytes")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Steps 1-6 of RFC 9162 §2.1.3.2: the root that ``proof`` implies for ``leaf_hash``."""
    _check_hashes(proof, leaf_hash)
    # 1. Compare leaf_index from the inclusion_proof against tree_size; fail if >=.
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.  3. Set r to hash.
    fn, sn, r = index, size - 1, leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("proof is longer than the path for this index and size")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # If LSB(fn) is not set, right-shift fn and sn equally until either LSB(fn) is set
            # or fn is 0.
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0; fail if different (the proof was too short).
    if sn != 0:
        raise ProofError("proof is shorter than the path for this index and size")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise ``ProofError`` unless ``leaf_hash`` is at ``index`` in ``root``."""
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    _check_hashes((), root)
    # 6. Compare r against root_hash; fail if unequal.
    if not hmac.compare_digest(computed, root):
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """RFC 9162 §2.1.4.2: raise ``ProofError`` unless tree ``size2`` extends tree ``size1``."""
    _check_hashes(proof, root1, root2)
    if not 0 <= size1 <= size2:
        raise ProofError(f"sizes must satisfy 0 <= first <= second, got {size1}, {size2}")
    if size1 == size2:
        # "If first is equal to second, verify that consistency_path is empty and
        # first_hash equals second_hash."
        if proof:
            raise ProofError("consistency between equal sizes takes an empty proof")
        if not hmac.compare_digest(root1, root2):
            raise ProofError("equal sizes with different roots: the log forked")
        return
    if size1 == 0:
        # Every tree extends the empty tree; a non-empty proof is malformed. (Checked after
        # equal sizes, so that two different roots claimed for size 0 still fail.)
        if proof:
            raise ProofError("consistency from the empty tree takes an empty proof")
        return
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not proof:
        raise ProofError("consistency proof is empty")
    fr, sr, sn = _consistency_roots(size1, size2, proof, root1)
    # 7. Verify fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if not hmac.compare_digest(fr, root1):
        raise ProofError("consistency proof does not lead to the first root")
    if not hmac.compare_digest(sr, root2):
        raise ProofError("consistency proof does not lead to the second root")


def _consistency_roots(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes, int]:
    """Steps 2-6 of RFC 9162 §2.1.4.2: the (first, second) roots the proof implies, and sn."""
    path = list(proof)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set or fn
            # is 0.
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    return fr, sr, sn
