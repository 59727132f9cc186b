"""The peer database: an append-only audit table in PostgreSQL, fed the same batches.

One transaction per batch: ``COPY audit (data) FROM STDIN (FORMAT BINARY)`` then COMMIT, with
the default ``synchronous_commit = on`` (the commit returns after the WAL is flushed: durable,
as our append is). No hashing at all: this is what a plain audit table costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from benchmarks.postgres_cluster import Cluster

_SCHEMA = "CREATE TABLE audit (id bigserial PRIMARY KEY, data bytea NOT NULL)"


class PostgresAppender:
    def __init__(self, cluster: Cluster) -> None:
        self.conn = psycopg.connect(cluster.conninfo(), autocommit=True)
        self.conn.execute(_SCHEMA)

    def append(self, batch: Sequence[bytes]) -> None:
        with (
            self.conn.transaction(),
            self.conn.cursor() as cur,
            cur.copy("COPY audit (data) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["bytea"])
            for entry in batch:
                copy.write_row((entry,))

    def settings(self) -> dict[str, str]:
        names = ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
        return {n: str(self._scalar(f"SHOW {n}")) for n in names}

    def _scalar(self, query: str) -> object:
        row = self.conn.execute(query).fetchone()
        if row is None:
            raise RuntimeError(f"{query!r} returned no row")
        return row[0]

    def disk_bytes(self) -> int:
        """Heap + primary-key index + TOAST of ``audit`` (WAL not counted)."""
        return int(str(self._scalar("SELECT pg_total_relation_size('audit')")))

    def close(self) -> None:
        self.conn.close()
