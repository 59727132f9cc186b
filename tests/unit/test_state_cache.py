"""The ledger's committed-state cache against a dict oracle: a read never returns a value that a
commit already replaced, including a value read from SQLite just before a commit and offered
to the cache just after it; and it stays within its bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.adapters.sqlite_ledger import _StateCache

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.none() | st.binary(max_size=24)
#: ("read", key) reads through the cache; ("begin", key) is a miss whose SQLite read
#: returns the current value but whose fill arrives only at the matching ("end", key);
#: ("commit", {key: value}) is a block.
OPS = st.lists(
    st.tuples(st.just("read"), KEYS)
    | st.tuples(st.just("begin"), KEYS)
    | st.tuples(st.just("end"), KEYS)
    | st.tuples(st.just("commit"), st.dictionaries(KEYS, VALUES, max_size=3)),
    max_size=60,
)


def _read(cache: _StateCache, db: dict[str, bytes | None], key: str) -> bytes | None:
    hit, value, generation = cache.get(key)
    if hit:
        return value
    value = db.get(key)
    cache.fill(key, value, generation)
    return value


@settings(max_examples=1000)
@given(OPS, st.integers(1, 4))
def test_reads_match_the_committed_state(ops: list[tuple[str, object]], entries: int) -> None:
    cache = _StateCache(max_entries=entries, max_bytes=64, max_value_bytes=32)
    db: dict[str, bytes | None] = {}
    in_flight: dict[str, tuple[bytes | None, int]] = {}
    for op, arg in ops:
        if op == "read":
            assert isinstance(arg, str)
            assert _read(cache, db, arg) == db.get(arg)
        elif op == "begin":
            assert isinstance(arg, str)
            hit, _, generation = cache.get(arg)
            if not hit:
                in_flight[arg] = (db.get(arg), generation)
        elif op == "end":
            assert isinstance(arg, str)
            if arg in in_flight:
                value, generation = in_flight.pop(arg)
                cache.fill(arg, value, generation)
        else:
            assert isinstance(arg, dict)
            db.update(arg)
            cache.committed(arg)
        for key in "abcde":  # whatever the cache holds is the committed value
            hit, value, _ = cache.get(key)
            assert not hit or value == db.get(key)
        assert len(cache._values) <= entries and cache._bytes <= 64


def test_a_value_read_before_a_commit_is_not_cached_after_it() -> None:
    cache = _StateCache(max_entries=8, max_bytes=1024, max_value_bytes=256)
    hit, _, generation = cache.get("record/p/r")
    assert not hit
    cache.committed({"record/p/r": b"v2"})  # a block lands between the read and the fill
    cache.fill("record/p/r", b"v1", generation)
    assert cache.get("record/p/r")[0] is False


def test_a_large_value_is_read_through_not_kept() -> None:
    cache = _StateCache(max_entries=8, max_bytes=1024, max_value_bytes=16)
    _, _, generation = cache.get("k")
    cache.fill("k", b"x" * 64, generation)
    assert cache.get("k")[0] is False
