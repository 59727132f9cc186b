"""A naive, recursive RFC 9162 §2.1 tree: the oracle the fast implementation is checked against.

Written to read like the RFC's definitions (MTH, PATH, PROOF, SUBPROOF), not to be fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw entries."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf m."""
    n = len(leaves)
    if n <= 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from size m (0 < m < n, else empty)."""
    if m in (0, len(leaves)):
        return []
    return _subproof(m, leaves, whole=True)


def _subproof(m: int, leaves: Sequence[bytes], *, whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], whole=whole), mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], whole=False), mth(leaves[:k])]
