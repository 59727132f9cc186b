"""A bounded least-recently-used map for the adapters' hot rows (a resource's head, a
version's key-vault row), kept exact by the adapter that owns it: every write of the rows it
caches updates or drops the entry, under the same lock as the write. Not thread-safe on its
own: the owner's lock guards it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: ``get``'s answer for a key that is not cached (None may be a cached answer).
MISSING: Final = object()


class Lru(Generic[K, V]):
    __slots__ = ("_max", "_values")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an LRU cache holds at least one entry")
        self._max = max_entries
        self._values: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | object:
        """The cached value, or ``MISSING``."""
        values = self._values
        if key not in values:
            return MISSING
        values.move_to_end(key)
        return values[key]

    def put(self, key: K, value: V) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        if len(self._values) > self._max:
            self._values.popitem(last=False)

    def pop(self, key: K) -> None:
        self._values.pop(key, None)

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
