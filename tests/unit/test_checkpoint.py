"""C2SP tlog-checkpoint (medledger.core.checkpoint): the value, its text, signing and opening.

The spec example is quoted from c2sp.org/tlog-checkpoint (C2SP/C2SP tlog-checkpoint.md), via
tests/vectors/signed_note/cosignature_v1.json which records the source.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import Limits
from medledger.core.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_checkpoint_body,
    parse_decimal,
    sign_checkpoint,
)
from medledger.core.note import NoteSignature, Signer, parse_signature_line, sign_note
from medledger.errors import InvalidInputError, SignatureError, TooLargeError, VerificationError

VECTORS = Path(__file__).parent.parent / "vectors" / "signed_note"
SPEC = json.loads((VECTORS / "cosignature_v1.json").read_text(encoding="utf-8"))["spec_example"]
LIMITS = Limits()
ORIGIN = "medledger.example/log"
ROOT = hashlib.sha256(b"root").digest()
LOG = Signer(ORIGIN, bytes([1]) * 32)
CP = Checkpoint(ORIGIN, 5, ROOT)


def test_spec_example_body_parses_and_reformats() -> None:
    body = SPEC["checkpoint_body"].encode()
    cp = parse_checkpoint_body(body, LIMITS)
    assert (cp.origin, cp.size, cp.extensions) == (SPEC["origin"], SPEC["size"], ())
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.body() == body


def test_body_format() -> None:
    cp = Checkpoint(ORIGIN, 0, bytes(32), ("ext one", "ext\u00e9"))
    expected = f"{ORIGIN}\n0\n{'A' * 43}=\next one\next\u00e9\n".encode()
    assert cp.body() == expected
    assert parse_checkpoint_body(expected, LIMITS) == cp


_LINE = st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1, max_size=40)
CHECKPOINTS = st.builds(
    Checkpoint,
    origin=_LINE,
    size=st.integers(0, MAX_TREE_SIZE),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3).map(tuple),
)


@given(CHECKPOINTS)
def test_body_round_trip(cp: Checkpoint) -> None:
    body = cp.body()
    assert parse_checkpoint_body(body, LIMITS) == cp
    assert parse_checkpoint_body(body, LIMITS).body() == body


@given(CHECKPOINTS)
def test_sign_open_round_trip(cp: Checkpoint) -> None:
    signer = Signer("log.example", bytes([9]) * 32)
    note = sign_checkpoint(cp, signer)
    assert note.startswith(cp.body() + b"\n")
    assert open_checkpoint(note, cp.origin, [signer.verifier()], LIMITS) == cp


# --- the constructor enforces the invariants ------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"origin": "a\x00b"}, "origin"),
        ({"origin": "\ud800"}, "origin"),
        ({"size": -1}, "size"),
        ({"size": MAX_TREE_SIZE + 1}, "size"),
        ({"size": True}, "size"),
        ({"root_hash": bytes(31)}, "root_hash"),
        ({"root_hash": bytes(33)}, "root_hash"),
        ({"extensions": ("",)}, "extension line"),
        ({"extensions": ("a\nb",)}, "extension line"),
    ],
)
def test_invalid_checkpoints_cannot_exist(kwargs: dict[str, object], parameter: str) -> None:
    args: dict[str, object] = {"origin": ORIGIN, "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        Checkpoint(**args)  # type: ignore[arg-type]
    assert info.value.parameter == parameter


def test_extensions_are_stored_as_a_tuple() -> None:
    cp = Checkpoint(ORIGIN, 1, ROOT, ["x"])  # type: ignore[arg-type]
    assert cp.extensions == ("x",)
    assert hash(cp) == hash(Checkpoint(ORIGIN, 1, ROOT, ("x",)))


# --- parsing is strict ----------------------------------------------------------------------
_ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (f"o\n042\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n00\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n+1\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n-1\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n 1\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n1_000\n{_ROOT64}\n", "leading zeroes"),
        (f"o\n\u0661\n{_ROOT64}\n", "leading zeroes"),  # ARABIC-INDIC DIGIT ONE
        (f"o\n{2**64}\n{_ROOT64}\n", "at most"),
        (f"o\n1\n{_ROOT64}", "newline"),
        (f"o\n1\n{_ROOT64}\n\n", "must not be empty"),
        (f"o\n1\n{_ROOT64}\next\n\n", "must not be empty"),
        (f"\n1\n{_ROOT64}\n", "must not be empty"),
        ("o\n1\n", "origin, size and root"),
        ("o\n1\nAAAA\n", "32 bytes"),
        (f"o\n1\n{_ROOT64[:-1]}\n", "base64"),
        (f"o\n1\n{'A' * 42}B=\n", "canonical"),
        (f"o\r\n1\n{_ROOT64}\n", "control"),
    ],
)
def test_parse_rejects(body: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_checkpoint_body(body.encode(), LIMITS)


def test_parse_rejects_invalid_utf8() -> None:
    with pytest.raises(InvalidInputError, match="UTF-8"):
        parse_checkpoint_body(b"\xff\n1\n" + _ROOT64.encode() + b"\n", LIMITS)


def test_parse_rejects_oversize_body() -> None:
    body = CP.body()
    with pytest.raises(TooLargeError):
        parse_checkpoint_body(body, Limits(max_checkpoint_bytes=len(body) - 1))


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), (str(MAX_TREE_SIZE), 2**64 - 1)])
def test_parse_decimal(text: str, value: int) -> None:
    assert parse_decimal(text, what="n") == value


# --- opening: signature first, then parse, then origin --------------------------------------
def test_open_checkpoint() -> None:
    note = sign_checkpoint(CP, LOG)
    assert open_checkpoint(note, ORIGIN, [LOG.verifier()], LIMITS) == CP


def test_forged_checkpoint_signed_by_another_key_is_rejected() -> None:
    forger = Signer(ORIGIN, bytes([2]) * 32)  # same name, different key: an unknown key
    forged = sign_checkpoint(Checkpoint(ORIGIN, 6, bytes(32)), forger)
    with pytest.raises(SignatureError):
        open_checkpoint(forged, ORIGIN, [LOG.verifier()], LIMITS)


def test_forged_checkpoint_claiming_the_log_key_id_is_rejected() -> None:
    forger = Signer(ORIGIN, bytes([2]) * 32)
    body = Checkpoint(ORIGIN, 6, bytes(32)).body()
    stolen_id = NoteSignature(ORIGIN, LOG.key_id, parse_signature_line(forger.sign(body)).signature)
    with pytest.raises(SignatureError, match="invalid signature"):
        open_checkpoint(body + b"\n" + stolen_id.line(), ORIGIN, [LOG.verifier()], LIMITS)


def test_modified_body_byte_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    body_len = len(CP.body())
    for i in range(body_len):
        tampered = bytearray(note)
        tampered[i] ^= 0x01
        with pytest.raises((SignatureError, InvalidInputError)):
            open_checkpoint(bytes(tampered), ORIGIN, [LOG.verifier()], LIMITS)


def test_size_rewritten_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    with pytest.raises(SignatureError):
        open_checkpoint(note.replace(b"\n5\n", b"\n6\n", 1), ORIGIN, [LOG.verifier()], LIMITS)


def test_wrong_origin_is_rejected() -> None:
    other_log = Signer("other.example/log", bytes([3]) * 32)
    note = sign_checkpoint(Checkpoint("other.example/log", 5, ROOT), other_log)
    with pytest.raises(VerificationError, match="origin") as info:
        open_checkpoint(note, ORIGIN, [other_log.verifier()], LIMITS)
    assert not isinstance(info.value, SignatureError)


def test_truncated_note_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    for cut in range(1, len(note)):
        with pytest.raises((InvalidInputError, SignatureError)):
            open_checkpoint(note[:cut], ORIGIN, [LOG.verifier()], LIMITS)


def test_missing_trailing_newline_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    with pytest.raises(InvalidInputError, match="newline"):
        open_checkpoint(note[:-1], ORIGIN, [LOG.verifier()], LIMITS)


def test_oversize_note_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    with pytest.raises(TooLargeError):
        open_checkpoint(note, ORIGIN, [LOG.verifier()], Limits(max_checkpoint_bytes=len(note) - 1))


def test_too_many_signatures_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG)
    line = LOG.sign(CP.body())
    with pytest.raises(TooLargeError):
        open_checkpoint(note + line * 16, ORIGIN, [LOG.verifier()], LIMITS)


def test_unknown_cosignature_lines_are_ignored() -> None:
    witness = Signer("witness.example", bytes([4]) * 32)
    note = sign_note(CP.body(), [LOG, witness])
    assert open_checkpoint(note, ORIGIN, [LOG.verifier()], LIMITS) == CP


def test_signed_text_that_is_not_a_checkpoint_is_rejected() -> None:
    note = sign_note(b"just a note\n", [LOG])
    with pytest.raises(InvalidInputError, match="origin, size and root"):
        open_checkpoint(note, ORIGIN, [LOG.verifier()], LIMITS)
