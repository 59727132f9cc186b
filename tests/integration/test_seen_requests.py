"""Signed requests' nonces on disk (medledger.adapters.sqlite_nonces): a replay is refused
within the request's validity window, even after the node restarts; expired ones are
forgotten; the table is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from medledger.adapters.sqlite_nonces import SqliteSeenRequests
from medledger.errors import OverloadedError

NOW = 1_700_000_000


def test_a_replay_is_refused_until_the_request_expires(tmp_path: Path) -> None:
    seen = SqliteSeenRequests(tmp_path / "requests.db")
    assert not seen.seen_before("did:key:a/nonce-1", NOW + 60, NOW)
    assert seen.seen_before("did:key:a/nonce-1", NOW + 60, NOW + 59)
    assert not seen.seen_before("did:key:b/nonce-1", NOW + 60, NOW)  # another sender
    assert not seen.seen_before("did:key:a/nonce-1", NOW + 200, NOW + 60)  # expired: new
    seen.close()


def test_a_replay_after_a_restart_is_still_refused(tmp_path: Path) -> None:
    seen = SqliteSeenRequests(tmp_path / "requests.db")
    assert not seen.seen_before("did:key:a/nonce-2", NOW + 300, NOW)
    seen.close()
    reopened = SqliteSeenRequests(tmp_path / "requests.db")
    assert reopened.seen_before("did:key:a/nonce-2", NOW + 300, NOW + 10)
    reopened.close()


def test_the_table_is_bounded_and_purges_expired_rows(tmp_path: Path) -> None:
    seen = SqliteSeenRequests(tmp_path / "requests.db", max_entries=3)
    for i in range(3):
        assert not seen.seen_before(f"k{i}", NOW + 10, NOW)
    with pytest.raises(OverloadedError):
        seen.seen_before("k3", NOW + 10, NOW)
    assert not seen.seen_before("k3", NOW + 100, NOW + 10)  # the first three expired
    seen.close()
