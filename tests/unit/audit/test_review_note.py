"""The review note's commitment and limits (medledger.core.audit.review_note, ADR 0022)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from medledger.core.audit.review_note import (
    MAX_NOTE_CHARS,
    is_note_committed,
    note_commitment,
    parse_note,
    parse_salt,
)
from medledger.errors import InvalidInputError

EVENT = "abcdefghijklmnopqrstuvwxyz"
NOTE = "Flagged: no emergency in the chart; follow up with the ward."
SALT = bytes(range(32))


def test_the_commitment_is_domain_separated_sha256_over_jcs() -> None:
    # written out by hand: the prefix, then the RFC 8785 text with keys in order
    body = (
        '{"event_id":"abcdefghijklmnopqrstuvwxyz",'
        '"note":"Flagged: no emergency in the chart; follow up with the ward.",'
        f'"salt":"{SALT.hex()}"}}'
    )
    expected = hashlib.sha256(b"medledger/review-note/v1\0" + body.encode()).hexdigest()
    assert note_commitment(EVENT, NOTE, SALT) == expected
    assert is_note_committed(expected, EVENT, NOTE, SALT)


VECTORS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "review_note" / "commitments.json").read_text()
)["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["note"][:12])
def test_the_known_answers_hold(vector: dict[str, str]) -> None:
    salt = bytes.fromhex(vector["salt"])
    assert note_commitment(vector["event_id"], vector["note"], salt) == vector["commitment"]
    assert VECTORS[0]["commitment"] == (
        "fa0d9d6963457fd139bda1b98a48699c6b6ef0f02ec01aeffffd7596c85852e1"
    )  # "ok", 32 zero bytes: pinned, so regenerating the file cannot hide a change


@pytest.mark.parametrize(
    ("event_id", "note", "salt"),
    [
        ("bcdefghijklmnopqrstuvwxyza", NOTE, SALT),  # a note meant for another event
        (EVENT, NOTE + " ", SALT),  # one character added
        (EVENT, NOTE.replace("Flagged", "Approved"), SALT),  # a forged note
        (EVENT, NOTE, bytes(32)),  # the right note, another salt
    ],
)
def test_anything_else_does_not_open_the_commitment(event_id: str, note: str, salt: bytes) -> None:
    assert not is_note_committed(note_commitment(EVENT, NOTE, SALT), event_id, note, salt)


def test_notes_are_not_normalised() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert note_commitment(EVENT, composed, SALT) != note_commitment(EVENT, decomposed, SALT)


@pytest.mark.parametrize(
    "note", ["x", "line one\nline two\ttabbed\r\n", "é" * MAX_NOTE_CHARS, "😀" * MAX_NOTE_CHARS]
)
def test_notes_within_the_limits_are_taken_as_written(note: str) -> None:
    assert parse_note(note) == note


@pytest.mark.parametrize(
    "note",
    [
        "",
        "   \n\t",
        "x" * (MAX_NOTE_CHARS + 1),
        "a\x00b",
        "bell\x07",
        "esc\x1b[31m",
        "del\x7f",
        "lone \ud800 surrogate",
        None,
        42,
        ["a note"],
    ],
)
def test_notes_outside_the_limits_are_refused_by_name(note: object) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_note(note)
    assert e.value.parameter == "note"


@pytest.mark.parametrize("salt", ["", "0" * 63, "0" * 65, "A" * 64, "z" * 64, None, 3])
def test_salts_are_32_bytes_of_lowercase_hex(salt: object) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_salt(salt)
    assert e.value.parameter == "salt"
    assert parse_salt(SALT.hex()) == SALT


def test_a_short_salt_is_refused_when_committing() -> None:
    with pytest.raises(InvalidInputError):
        note_commitment(EVENT, NOTE, bytes(31))
