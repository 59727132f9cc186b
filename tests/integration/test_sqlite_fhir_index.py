"""The FHIR index on a real SQLite file (``medledger.adapters.sqlite_fhir_index``): reads from
many threads see every committed write, and erasure leaves no PHI on disk (rows, freed pages
and WAL) even after other threads have been reading."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from medledger.adapters.sqlite_fhir_index import Row, SqliteFhirIndex
from medledger.core.fhir.rows import Head, VersionAnchor
from medledger.core.fhir.search import SearchQuery, extract, parse_query
from medledger.errors import StorageError

PATIENT = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
SECRET_NAME = "Zebediah-Quillfeather"


def _patient(record_id: str, family: str) -> tuple[Head, VersionAnchor, list[Row]]:
    resource = {"resourceType": "Patient", "id": record_id, "name": [{"family": family}]}
    head = Head("Patient", record_id, PATIENT, 1, 1_000, deleted=False)
    anchor = VersionAnchor("Patient", record_id, 1, 1_000, "create", PATIENT, "ab" * 32, 1, 1)
    return head, anchor, extract(resource)


def _by_family(family: str) -> SearchQuery:
    return parse_query("Patient", [("family", family)])


def test_every_thread_reads_what_was_committed(tmp_path: Path) -> None:
    index = SqliteFhirIndex(tmp_path / "fhir.db")
    try:
        found: list[object] = []

        def reader(n: int) -> None:
            index.record(*_patient(f"p-{n}", f"Family{n}"))
            found.append(index.head("Patient", f"p-{n}"))
            found.append(len(index.search(_by_family(f"Family{n}"), patient=None, limit=10)))

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(1 for f in found if isinstance(f, Head)) == 8
        assert found.count(1) == 8
        assert len(index.search(SearchQuery("Patient", ()), patient=PATIENT, limit=100)) == 8
    finally:
        index.close()


def test_erasure_leaves_no_phi_on_disk_after_other_threads_read(tmp_path: Path) -> None:
    index = SqliteFhirIndex(tmp_path / "fhir.db")
    try:
        index.record(*_patient("victim", SECRET_NAME))
        index.record(*_patient("other", "Smith"))

        def read() -> None:
            assert len(index.search(_by_family(SECRET_NAME), patient=None, limit=10)) == 1

        readers = [threading.Thread(target=read) for _ in range(4)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        index.forget(PATIENT, "victim")
        assert index.head("Patient", "victim") is None
        assert index.search(_by_family(SECRET_NAME), patient=None, limit=10) == []
        assert index.head("Patient", "other") is not None
        wal = tmp_path / "fhir.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert SECRET_NAME.encode() not in on_disk
        assert SECRET_NAME.lower().encode() not in on_disk
    finally:
        index.close()


def test_a_closed_index_refuses_reads(tmp_path: Path) -> None:
    index = SqliteFhirIndex(tmp_path / "fhir.db")
    index.record(*_patient("p-1", "Doe"))
    index.close()
    with pytest.raises(StorageError):
        index.head("Patient", "p-1")
