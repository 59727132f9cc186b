"""Solo ordering: the embedded node is the one authority and orders its own transactions.

Cuts a batch every ``max_items`` envelopes or ``max_wait_s`` after the first one arrived,
whichever comes first (the block-cutting rule of Fabric's solo/Raft orderers).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from medledger.errors import OverloadedError


class SoloOrdering:
    """An in-process FIFO with block-cutting; thread-safe."""

    def __init__(self, max_queue: int = 100_000) -> None:
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._max_queue = max_queue
        self._closed = False

    def submit(self, envelope: bytes) -> None:
        with self._cond:
            if len(self._queue) >= self._max_queue:
                raise OverloadedError("the node is overloaded: try again shortly")
            self._queue.append(envelope)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def next_batch(self, max_items: int, max_wait_s: float) -> list[bytes]:
        deadline = time.monotonic() + max_wait_s
        with self._cond:
            # Wait for the first envelope...
            while not self._queue and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            # ...then until the batch is full or the cut timer (from now) fires.
            cut_at = time.monotonic() + max_wait_s
            while len(self._queue) < max_items and not self._closed:
                remaining = cut_at - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(max_items, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]
