"""The node-local FHIR index (``data/fhir.db``): search-parameter rows, resource heads and
version rows (ADR 0018).

It holds PHI (names, birth dates, codes), so: never on the ledger, never in logs; the database
runs with ``secure_delete=ON`` and ``forget`` (GDPR erasure, beside the records service's
crypto-shredding) deletes a record's rows, then checkpoints and truncates the WAL. Content is
never kept here: a search finds ids, the records service reads (decrypts, checks) them.

A search's clauses are translated into SQL with bound parameters only (no value is ever part of
the SQL text); the query's shape is bounded by ``medledger.core.fhir.search``'s limits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from medledger.adapters.lru import MISSING, Lru
from medledger.adapters.sqlite_connect import connect, storage_errors, write_transaction
from medledger.core.fhir.rows import Activity, Head, VersionAnchor
from medledger.core.fhir.search import Clause, SearchQuery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
  type TEXT NOT NULL, id TEXT NOT NULL, patient TEXT NOT NULL, version INTEGER NOT NULL,
  time_ms INTEGER NOT NULL, deleted INTEGER NOT NULL, PRIMARY KEY (type, id));
CREATE INDEX IF NOT EXISTS heads_patient ON heads (patient);
CREATE TABLE IF NOT EXISTS versions (
  type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, time_ms INTEGER NOT NULL,
  activity TEXT NOT NULL, author TEXT NOT NULL, tx_id TEXT NOT NULL, height INTEGER NOT NULL,
  log_index INTEGER NOT NULL, PRIMARY KEY (type, id, version));
CREATE TABLE IF NOT EXISTS params (
  type TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
  low INTEGER, high INTEGER);
CREATE INDEX IF NOT EXISTS params_value ON params (type, name, value);
CREATE INDEX IF NOT EXISTS params_id ON params (type, id);
"""
Row = tuple[str, str, int | None, int | None]
#: Heads kept in memory (every read and write starts from one): type, id, the patient's
#: did:key, version, time, deleted; no PHI.
HEAD_CACHE_ENTRIES = 65_536


def _errors(doing: str) -> contextlib.AbstractContextManager[None]:
    return storage_errors("FHIR index", doing, detail=False)


def _head(row: Sequence[object]) -> Head:
    t, i, p, v, ms, d = row
    return Head(str(t), str(i), str(p), int(str(v)), int(str(ms)), bool(d))


class SqliteFhirIndex:
    """One connection, serialised by a lock (writes are rare next to anchoring). Heads are
    cached; ``record`` and ``forget`` keep the cache exact (the only writers of ``heads``)."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, readonly=False, what="FHIR index")
        self._lock = threading.Lock()
        self._heads: Lru[tuple[str, str], Head | None] = Lru(HEAD_CACHE_ENTRIES)
        with _errors("setup"):
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._heads.clear()
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[sqlite3.Connection]:
        with _errors(doing), write_transaction(self._conn, self._lock) as conn:
            yield conn

    def _read(self, sql: str, args: Sequence[object]) -> list[tuple[object, ...]]:
        with self._lock, _errors("read"):
            return list(self._conn.execute(sql, args))

    # --- writes ---------------------------------------------------------------------------
    def record(self, head: Head, anchor: VersionAnchor, rows: Sequence[Row]) -> None:
        """A new version: its head, its version row, and (unless deleted) its search rows."""
        with self._tx("write") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO heads VALUES (?, ?, ?, ?, ?, ?)",
                (
                    head.resource_type,
                    head.record_id,
                    head.patient,
                    head.version,
                    head.time_ms,
                    int(head.deleted),
                ),
            )
            conn.execute(
                "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    anchor.resource_type,
                    anchor.record_id,
                    anchor.version,
                    anchor.time_ms,
                    anchor.activity,
                    anchor.author,
                    anchor.tx_id,
                    anchor.height,
                    anchor.log_index,
                ),
            )
            conn.execute(
                "DELETE FROM params WHERE type = ? AND id = ?",
                (head.resource_type, head.record_id),
            )
            conn.executemany(
                "INSERT INTO params VALUES (?, ?, ?, ?, ?, ?)",
                [(head.resource_type, head.record_id, *row) for row in rows],
            )
        with self._lock:
            self._heads.put((head.resource_type, head.record_id), head)

    def forget(self, patient: str, record_id: str) -> None:
        """Erasure: every row of the record goes, the freed pages zeroed, the WAL truncated."""
        with self._tx("erase") as conn:
            types = [
                str(r[0])
                for r in conn.execute(
                    "SELECT type FROM heads WHERE patient = ? AND id = ?", (patient, record_id)
                )
            ]
            for resource_type in types:
                for table in ("heads", "versions", "params"):
                    conn.execute(
                        f"DELETE FROM {table} WHERE type = ? AND id = ?",  # noqa: S608
                        (resource_type, record_id),
                    )
            self._heads.clear()  # erasure is rare: start afresh (under the write's lock)
        with self._lock, _errors("checkpoint"):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reads ----------------------------------------------------------------------------
    def head(self, resource_type: str, record_id: str) -> Head | None:
        key = (resource_type, record_id)
        with self._lock:
            found = self._heads.get(key)
            if found is not MISSING:
                return cast("Head | None", found)
            with _errors("read"):
                row = self._conn.execute(
                    "SELECT type, id, patient, version, time_ms, deleted FROM heads"
                    " WHERE type = ? AND id = ?",
                    key,
                ).fetchone()
            head = None if row is None else _head(row)
            self._heads.put(key, head)
            return head

    def versions(self, resource_type: str, record_id: str) -> list[VersionAnchor]:
        """Newest first."""
        rows = self._read(
            "SELECT type, id, version, time_ms, activity, author, tx_id, height, log_index"
            " FROM versions WHERE type = ? AND id = ? ORDER BY version DESC",
            (resource_type, record_id),
        )
        return [_anchor(r) for r in rows]

    def anchor_of(self, record_id: str, version: int) -> VersionAnchor | None:
        rows = self._read(
            "SELECT type, id, version, time_ms, activity, author, tx_id, height, log_index"
            " FROM versions WHERE id = ? AND version = ?",
            (record_id, version),
        )
        return _anchor(rows[0]) if rows else None

    def recent_versions(
        self, resource_type: str, *, patient: str | None, limit: int
    ) -> list[tuple[Head, VersionAnchor]]:
        """The type's newest versions (type history), each with its resource's head."""
        sql = (
            "SELECT h.type, h.id, h.patient, h.version, h.time_ms, h.deleted,"
            " v.type, v.id, v.version, v.time_ms, v.activity, v.author, v.tx_id, v.height,"
            " v.log_index FROM versions v JOIN heads h ON h.type = v.type AND h.id = v.id"
            " WHERE v.type = ? AND (? IS NULL OR h.patient = ?)"
            " ORDER BY v.time_ms DESC, v.id, v.version DESC LIMIT ?"
        )
        args: list[object] = [resource_type, patient, patient, limit]
        return [(_head(r[:6]), _anchor(r[6:])) for r in self._read(sql, args)]

    def patient_resource(self, did: str) -> Head | None:
        """The Patient resource carrying ``did`` (at most one, ADR 0018)."""
        rows = self._read(
            "SELECT type, id, patient, version, time_ms, deleted FROM heads"
            " WHERE type = 'Patient' AND patient = ? AND deleted = 0 LIMIT 1",
            (did,),
        )
        return _head(rows[0]) if rows else None

    def search(self, query: SearchQuery, *, patient: str | None, limit: int) -> list[Head]:
        """The live resources matching ``query`` (``patient``: only that patient's), sorted,
        at most ``limit``."""
        where = ["h.type = ?", "h.deleted = 0"]
        args: list[object] = [query.resource_type]
        if patient is not None:
            where.append("h.patient = ?")
            args.append(patient)
        for clause in query.clauses:
            sql, more = _clause_sql(query.resource_type, clause)
            where.append(sql)
            args.extend(more)
        order = []
        for key, descending in query.sort or (("_lastUpdated", True),):
            direction = "DESC" if descending else "ASC"
            if key == "_id":
                order.append(f"h.id {direction}")
            elif key == "_lastUpdated":
                order.append(f"h.time_ms {direction}")
            else:
                order.append(
                    "(SELECT MIN(p.low) FROM params p WHERE p.type = h.type AND p.id = h.id"  # noqa: S608
                    f" AND p.name = ?) {direction}"
                )
                args.append(key)
        order.append("h.id ASC")
        sql = (  # only placeholders and fixed fragments are interpolated
            "SELECT h.type, h.id, h.patient, h.version, h.time_ms, h.deleted FROM heads h"  # noqa: S608
            f" WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} LIMIT ?"
        )
        return [_head(r) for r in self._read(sql, [*args, limit])]

    def referencing(
        self, source_type: str, param: str, references: Sequence[str], limit: int
    ) -> list[Head]:
        """Live ``source_type`` resources whose ``param`` references one of ``references``."""
        if not references:
            return []
        marks = ",".join("?" * len(references))
        sql = (
            "SELECT h.type, h.id, h.patient, h.version, h.time_ms, h.deleted FROM heads h"  # noqa: S608
            " WHERE h.type = ? AND h.deleted = 0 AND h.id IN (SELECT p.id FROM params p"
            f" WHERE p.type = ? AND p.name = ? AND p.value IN ({marks}))"
            " ORDER BY h.id LIMIT ?"
        )
        return [
            _head(r) for r in self._read(sql, [source_type, source_type, param, *references, limit])
        ]


def _anchor(row: Sequence[object]) -> VersionAnchor:
    t, i, v, ms, activity, author, tx, height, log_index = row
    act: Activity = (
        "create" if activity == "create" else ("delete" if activity == "delete" else "update")
    )
    return VersionAnchor(
        str(t),
        str(i),
        int(str(v)),
        int(str(ms)),
        act,
        str(author),
        str(tx),
        int(str(height)),
        int(str(log_index)),
    )


def _like(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _clause_sql(resource_type: str, clause: Clause) -> tuple[str, list[object]]:
    """One clause as ``h.id IN (...)`` (or a head column test), values OR-ed."""
    if clause.kind == "_id":
        marks = ",".join("?" * len(clause.values))
        return f"h.id IN ({marks})", list(clause.values)
    if clause.kind == "_lastUpdated":
        parts, more = _range_sql("h.time_ms", "h.time_ms", clause)
        return f"({' OR '.join(parts)})", more
    base = "h.id IN (SELECT p.id FROM params p WHERE p.type = ? AND p.name = ? AND ({}))"
    args = [resource_type, clause.name]
    if clause.kind == "date":
        parts, more = _range_sql("p.low", "p.high", clause)
        return base.format(" OR ".join(parts)), [*args, *more]
    if clause.kind == "string" and not clause.exact:
        parts = ["p.value LIKE ? ESCAPE '\\'"] * len(clause.values)
        return base.format(" OR ".join(parts)), [*args, *(_like(v) for v in clause.values)]
    parts = ["p.value = ?"] * len(clause.values)
    return base.format(" OR ".join(parts)), [*args, *clause.values]


def _range_sql(low: str, high: str, clause: Clause) -> tuple[list[str], list[object]]:
    """FHIR R4 §3.1.1.5.6 date comparison: the stored range against the query's range."""
    parts: list[str] = []
    args: list[object] = []
    for prefix, q_low, q_high in clause.ranges:
        if prefix == "eq":
            parts.append(f"({low} >= ? AND {high} <= ?)")
            args += [q_low, q_high]
        elif prefix == "ne":
            parts.append(f"NOT ({low} >= ? AND {high} <= ?)")
            args += [q_low, q_high]
        elif prefix == "lt":
            parts.append(f"{low} < ?")
            args.append(q_low)
        elif prefix == "le":
            parts.append(f"{low} <= ?")
            args.append(q_high)
        elif prefix == "gt":
            parts.append(f"{high} > ?")
            args.append(q_high)
        else:
            parts.append(f"{high} >= ?")
            args.append(q_low)
    return parts, args
