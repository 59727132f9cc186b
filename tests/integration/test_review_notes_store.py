"""The review-note store (adapters.sqlite_review_notes) on a real SQLite file (ADR 0022)."""

from __future__ import annotations

from pathlib import Path

from medledger.adapters.sqlite_review_notes import SqliteReviewNotes
from medledger.ports import StoredNote

EVENT = "abcdefghijklmnopqrstuvwxyz"
NOTE = "Unjustified: the patient was seen in clinic the same morning, no emergency."
SALT = "ab" * 32


def put(store: SqliteReviewNotes, note: str = NOTE, salt: str = SALT) -> StoredNote:
    return store.put(
        event_id=EVENT, reviewer="did:key:z6Mkofficer", commitment="c" * 64, note=note,
        salt=salt, now_ms=1_000,
    )  # fmt: skip


def test_a_note_is_stored_once_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "review-notes.db"
    store = SqliteReviewNotes(path)
    first = put(store)
    again = put(store, note="another text", salt="cd" * 32)  # the first row stays
    assert first == again
    store.close()
    reopened = SqliteReviewNotes(path)
    stored = reopened.get(EVENT)
    assert stored is not None and stored.note == NOTE and stored.salt == SALT
    assert reopened.get("b" * 26) is None
    reopened.close()


def test_erasure_leaves_a_tombstone_and_no_text_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "review-notes.db"
    store = SqliteReviewNotes(path)
    put(store)
    assert store.erase(EVENT, 2_000) is True
    assert store.erase(EVENT, 3_000) is False  # once
    stored = store.get(EVENT)
    assert stored is not None and stored.note is None and stored.salt is None
    assert stored.erased_ms == 2_000 and stored.commitment == "c" * 64
    assert put(store).note is None  # never attached again: the tombstone answers
    store.close()
    for file in tmp_path.iterdir():  # the database, and its WAL and shm if any are left
        data = file.read_bytes()
        assert b"clinic the same morning" not in data and SALT.encode() not in data, file.name
