"""Recently unwrapped data keys (medledger.services.key_cache): bounded, expiring, keyed by
the exact wrap, and forgotten before an erasure."""

from __future__ import annotations

from medledger.services.key_cache import DataKeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_unwrapped_once_then_served_from_memory() -> None:
    calls: list[int] = []
    cache = DataKeyCache(clock=Clock())

    def unwrap() -> bytes:
        calls.append(1)
        return b"k" * 32

    for _ in range(3):
        assert cache.get_or_unwrap("p", "r", 1, b"wrap", unwrap) == b"k" * 32
    assert len(calls) == 1
    cache.get_or_unwrap("p", "r", 1, b"other wrap", unwrap)  # another wrap: another entry
    cache.get_or_unwrap("p", "r", 2, b"wrap", unwrap)  # another version
    assert len(calls) == 3


def test_keys_expire_and_the_cache_is_bounded() -> None:
    clock = Clock()
    cache = DataKeyCache(max_entries=2, ttl_s=10, clock=clock)
    calls: list[int] = []

    def unwrap() -> bytes:
        calls.append(1)
        return b"k" * 32

    cache.get_or_unwrap("p", "r", 1, b"w", unwrap)
    clock.now = 10.0
    cache.get_or_unwrap("p", "r", 1, b"w", unwrap)  # expired: unwrapped again
    assert len(calls) == 2
    for version in (2, 3, 4):
        cache.get_or_unwrap("p", "r", version, b"w", unwrap)
    assert len(cache) == 2


def test_erasure_forgets_every_version_of_the_record_only() -> None:
    cache = DataKeyCache(clock=Clock())
    for version in (1, 2):
        cache.get_or_unwrap("p", "erased", version, b"w", lambda: b"k" * 32)
    cache.get_or_unwrap("p", "kept", 1, b"w", lambda: b"k" * 32)
    cache.forget("p", "erased")
    assert len(cache) == 1
