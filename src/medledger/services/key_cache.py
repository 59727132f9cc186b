"""Recently unwrapped data keys, so a key release costs one HPKE wrap, not an unwrap as well.

The node can unwrap any data key it custodies at any moment (its X25519 key is in memory), so
keeping a few recently used data keys in memory for a short while widens nothing; what it must
never do is outlive an erasure, or hold keys without bound. So: keyed by the exact wrap bytes a
version's key was unwrapped from (another version or a re-wrap is another entry), at most
``max_entries`` keys for at most ``ttl_s`` seconds, and ``forget(patient, record_id)`` drops
every version of a record (called before the vault shreds it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

_Key = tuple[str, str, int, bytes]


class DataKeyCache:
    def __init__(
        self,
        *,
        max_entries: int = 4096,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys: OrderedDict[_Key, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock

    def get_or_unwrap(
        self, patient: str, record_id: str, version: int, wrap: bytes, unwrap: Callable[[], bytes]
    ) -> bytes:
        """The data key ``wrap`` holds: from the cache, else ``unwrap()`` (and remembered)."""
        key = (patient, record_id, version, wrap)
        now = self._clock()
        with self._lock:
            found = self._keys.get(key)
            if found is not None and found[1] > now:
                self._keys.move_to_end(key)
                return found[0]
        data_key = unwrap()  # outside the lock: HPKE is the slow part
        with self._lock:
            self._keys[key] = (data_key, now + self._ttl)
            self._keys.move_to_end(key)
            while len(self._keys) > self._max:
                self._keys.popitem(last=False)
        return data_key

    def forget(self, patient: str, record_id: str) -> None:
        """Drop every cached version of a record (before it is erased)."""
        with self._lock:
            for key in [k for k in self._keys if k[0] == patient and k[1] == record_id]:
                del self._keys[key]

    def __len__(self) -> int:
        return len(self._keys)
