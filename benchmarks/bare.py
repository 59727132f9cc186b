"""The bare limit: the RFC 9162 tree over the same leaves with ``hashlib`` alone, in memory.

Per entry, the minimal work any RFC 9162 log must do: one leaf hash SHA-256(0x00 || entry), and
the node hashes SHA-256(0x01 || left || right) that a compact range completes (one per entry,
amortized); per batch, the root. No storage, no tiles, no validation, no function calls per node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


class BareTree:
    """A compact range inlined over ``hashlib.sha256``: the floor the log is compared with."""

    __slots__ = ("_root", "_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []
        self._root = hashlib.sha256(b"").digest()

    def append(self, batch: Sequence[bytes]) -> None:
        sha256 = hashlib.sha256
        stack, size = self._stack, self._size
        for entry in batch:
            h = sha256(b"\x00" + entry).digest()
            carry = size
            while carry & 1:
                h = sha256(b"\x01" + stack.pop() + h).digest()
                carry >>= 1
            stack.append(h)
            size += 1
        self._size = size
        root = stack[-1]
        for left in reversed(stack[:-1]):
            root = sha256(b"\x01" + left + root).digest()
        self._root = root

    def root(self) -> bytes:
        return self._root
