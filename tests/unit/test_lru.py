"""The adapters' bounded LRU map: a miss is told apart from a cached None, the least recently
used entry goes first, and the bound holds."""

from __future__ import annotations

import pytest

from medledger.adapters.lru import MISSING, Lru


def test_a_cached_none_is_not_a_miss() -> None:
    cache: Lru[str, int | None] = Lru(2)
    assert cache.get("a") is MISSING
    cache.put("a", None)
    assert cache.get("a") is None


def test_the_least_recently_used_goes_first() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is MISSING and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2
    cache.pop("a")
    cache.clear()
    assert len(cache) == 0


def test_an_empty_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Lru(0)
