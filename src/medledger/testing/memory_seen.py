"""An in-memory ``medledger.ports.SeenRequests`` for unit tests of the services that use one
(the node runs ``adapters.sqlite_nonces.SqliteSeenRequests``, on disk)."""

from __future__ import annotations

from medledger.errors import OverloadedError


class MemorySeenRequests:
    """Same contract as the SQLite store: remembered until expiry, bounded, never forgets a
    live entry early."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, int] = {}
        self._max = max_entries

    def seen_before(self, key: str, expires_s: int, now_s: int) -> bool:
        if len(self._seen) >= self._max:
            self._seen = {k: e for k, e in self._seen.items() if e > now_s}
            if len(self._seen) >= self._max:
                raise OverloadedError("too many requests in flight: try again shortly")
        if self._seen.get(key, 0) > now_s:
            return True
        self._seen[key] = expires_s
        return False
