"""C2SP signed notes with Ed25519 keys (medledger.core.note).

Known answers come from golang.org/x/mod/sumdb/note (tests/vectors/signed_note/peter_neumann.json
records the source); the rules quoted are c2sp.org/signed-note §Format and §Signatures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import Limits
from medledger.core.note import (
    NoteSignature,
    Signer,
    Verifier,
    b64decode_strict,
    format_signer_key,
    format_verifier_key,
    is_valid_key_name,
    key_id,
    open_note,
    parse_signature_line,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from medledger.errors import InvalidInputError, SignatureError, TooLargeError

VECTORS = Path(__file__).parent.parent / "vectors" / "signed_note"
LIMITS = Limits()


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


PETER = _load("peter_neumann.json")
ENOCH = PETER["other_key"]
TEXT = PETER["text"].encode()
SIGNED = PETER["signed_note"].encode()


def _signer(name: str = "example.com/log", seed: int = 1) -> Signer:
    return Signer(name, bytes([seed]) * 32)


# --- known answers from the Go implementation ----------------------------------------------
def test_spec_example_signature_is_reproduced_byte_for_byte() -> None:
    signer = parse_signer_key(PETER["skey"])
    assert signer.name == PETER["name"]
    assert signer.key_id.hex() == PETER["key_id"]
    assert signer.sign(TEXT) == PETER["signature_line"].encode()
    assert sign_note(TEXT, [signer]) == SIGNED


def test_spec_example_key_id_is_sha256_of_name_newline_type_key() -> None:
    verifier = parse_verifier_key(PETER["vkey"])
    material = PETER["name"].encode() + b"\n\x01" + verifier.public_key
    assert verifier.key_id == hashlib.sha256(material).digest()[:4]
    assert verifier.key_id.hex() == PETER["key_id"]
    assert key_id(PETER["name"], 0x01, verifier.public_key) == verifier.key_id


def test_spec_example_note_opens() -> None:
    opened = open_note(SIGNED, [parse_verifier_key(PETER["vkey"])], LIMITS)
    assert opened.text == TEXT
    assert [(s.name, s.key_id.hex()) for s in opened.signatures] == [("PeterNeumann", "c74f20a3")]
    assert opened.unverified == ()
    assert opened.signatures[0].line() == PETER["signature_line"].encode()


def test_signer_and_verifier_keys_agree() -> None:
    signer = parse_signer_key(PETER["skey"])
    assert signer.verifier() == parse_verifier_key(PETER["vkey"])
    assert "AYEKFALV" not in repr(signer)  # the seed never shows


def test_doubly_signed_note_with_one_known_key() -> None:
    note = PETER["doubly_signed_note"].encode()
    opened = open_note(note, [parse_verifier_key(PETER["vkey"])], LIMITS)
    assert [s.name for s in opened.signatures] == ["PeterNeumann"]
    assert [s.name for s in opened.unverified] == ["EnochRoot"]
    assert opened.unverified[0].key_id.hex() == ENOCH["key_id"]


def test_doubly_signed_note_with_both_keys() -> None:
    note = PETER["doubly_signed_note"].encode()
    verifiers = [parse_verifier_key(PETER["vkey"]), parse_verifier_key(ENOCH["vkey"])]
    opened = open_note(note, verifiers, LIMITS)
    assert [s.name for s in opened.signatures] == ["PeterNeumann", "EnochRoot"]
    assert opened.unverified == ()


@pytest.mark.parametrize("case", PETER["malformed_notes"], ids=lambda c: c["why"])
def test_malformed_notes_are_rejected(case: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        open_note(case["note"].encode(), [parse_verifier_key(PETER["vkey"])], LIMITS)


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="UTF-8"):
        open_note(b"\xff" + SIGNED, [parse_verifier_key(PETER["vkey"])], LIMITS)


def test_invalid_signature_from_known_key_rejects_the_note() -> None:
    note = PETER["invalid_signature_note"]["note"].encode()
    with pytest.raises(SignatureError):
        open_note(note, [parse_verifier_key(PETER["vkey"])], LIMITS)


# --- verifier and signer keys ---------------------------------------------------------------
def test_verifier_key_round_trip() -> None:
    for vkey in (PETER["vkey"], ENOCH["vkey"]):
        assert format_verifier_key(parse_verifier_key(vkey)) == vkey
    verifier = _signer().verifier()
    assert parse_verifier_key(format_verifier_key(verifier)) == verifier


def test_signer_key_round_trip() -> None:
    assert format_signer_key(parse_signer_key(PETER["skey"])) == PETER["skey"]
    signer = _signer("medledger.example/log", 7)
    again = parse_signer_key(format_signer_key(signer))
    assert (again.name, again.key_id, again.public_key) == (
        signer.name,
        signer.key_id,
        signer.public_key,
    )


def _manglings(key: str) -> list[str]:
    """Every proper substring and every one-byte increment, as TestNewVerifier/TestNewSigner."""
    raw = key.encode()
    out = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1)}
    out |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :] for i in range(len(raw))}
    out.discard(raw)
    return sorted(m.decode("utf-8", "replace") for m in out)


def test_mangled_verifier_keys_are_rejected() -> None:
    for bad in _manglings(PETER["vkey"]):
        with pytest.raises(InvalidInputError):
            parse_verifier_key(bad)


def test_mangled_signer_keys_are_rejected() -> None:
    for bad in _manglings(PETER["skey"]):
        with pytest.raises(InvalidInputError):
            parse_signer_key(bad)


@pytest.mark.parametrize("case", PETER["bad_vkeys"], ids=lambda c: c["why"])
def test_bad_verifier_keys_from_go(case: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        parse_verifier_key(case["vkey"])


def test_uppercase_key_id_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="lowercase"):
        parse_verifier_key(PETER["vkey"].replace("c74f20a3", "C74F20A3"))


def test_signer_key_is_not_a_verifier_key() -> None:
    with pytest.raises(InvalidInputError):
        parse_verifier_key(PETER["skey"])
    with pytest.raises(InvalidInputError):
        parse_signer_key(PETER["vkey"])


# --- key names ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["", "a+b", "a b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b", "a\x01b"],
)
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(InvalidInputError):
        Signer(name, bytes(32))
    with pytest.raises(InvalidInputError):
        Verifier(name, _signer().public_key)


@pytest.mark.parametrize("name", ["PeterNeumann", "example.com/log", "oid/1.3.6.1.4.1", "n\u00e9e"])
def test_valid_key_names(name: str) -> None:
    assert is_valid_key_name(name)


# --- signature lines ------------------------------------------------------------------------
def test_signature_line_round_trip() -> None:
    line = PETER["signature_line"].encode()
    sig = parse_signature_line(line)
    assert sig.key_id.hex() == PETER["key_id"]
    assert len(sig.signature) == 64
    assert sig.line() == line


@pytest.mark.parametrize(
    "line",
    [
        b"- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pA=\n",  # hyphen, not em dash
        "\u2014 PeterNeumann\n".encode(),  # no signature
        "\u2014 PeterNeumann AAAA\n".encode(),  # 3 bytes: shorter than a key ID
        "\u2014 PeterNeumann AAAAAAB=\n".encode(),  # non-canonical base64 (unused bits set)
        "\u2014 PeterNeumann AAAAAAE\n".encode(),  # missing padding
        "\u2014 PeterNeumann  AAAAAAA=\n".encode(),  # two spaces
        "\u2014 PeterNeumann AAAAAAA=".encode(),  # no newline
    ],
)
def test_malformed_signature_lines(line: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_signature_line(line)


def test_strict_base64() -> None:
    assert b64decode_strict("AAE=", what="x") == b"\x00\x01"
    for bad in ("AAF=", "AAE", "AAE=\n", " AAE=", "AA-E", "AAE==", "\u00e9AE="):
        with pytest.raises(InvalidInputError):
            b64decode_strict(bad, what="x")


# --- signing --------------------------------------------------------------------------------
def test_sign_note_requires_text_ending_in_newline() -> None:
    with pytest.raises(InvalidInputError, match="newline"):
        sign_note(b"abc", [_signer()])


def test_sign_note_requires_a_signer() -> None:
    with pytest.raises(InvalidInputError):
        sign_note(TEXT, [])


def test_sign_note_refuses_control_characters() -> None:
    with pytest.raises(InvalidInputError, match="control"):
        sign_note(b"a\rb\n", [_signer()])


def test_text_with_empty_lines_and_a_trailing_empty_line() -> None:
    # §Format: "The note text MAY contain empty lines; the text is separated from the
    # signatures by the last empty line in the note."
    signer = _signer()
    for text in (b"a\n\nb\n", b"a\n\n", b"\n"):
        assert open_note(sign_note(text, [signer]), [signer.verifier()], LIMITS).text == text


@given(
    text=st.text(
        st.characters(codec="utf-8", min_codepoint=10).filter(lambda c: c == "\n" or c >= " "),
        max_size=200,
    ),
    seeds=st.lists(st.integers(0, 255), min_size=1, max_size=4, unique=True),
)
def test_sign_open_round_trip(text: str, seeds: list[int]) -> None:
    body = (text + "\n").encode()
    signers = [_signer(f"k{seed}", seed) for seed in seeds]
    note = sign_note(body, signers)
    opened = open_note(note, [s.verifier() for s in signers], LIMITS)
    assert opened.text == body
    assert [s.key_id for s in opened.signatures] == [s.key_id for s in signers]


# --- §Signatures: which signatures count ----------------------------------------------------
def test_unknown_keys_are_ignored() -> None:
    log, other = _signer("log", 1), _signer("other", 2)
    note = sign_note(TEXT, [other, log])
    opened = open_note(note, [log.verifier()], LIMITS)
    assert [s.name for s in opened.signatures] == ["log"]
    assert [s.name for s in opened.unverified] == ["other"]


def test_note_signed_only_by_unknown_keys_is_rejected() -> None:
    with pytest.raises(SignatureError, match="no valid signature from a known key"):
        open_note(SIGNED, [parse_verifier_key(ENOCH["vkey"])], LIMITS)


def test_no_verifiers_rejects_every_note() -> None:
    with pytest.raises(SignatureError):
        open_note(SIGNED, [], LIMITS)


def test_same_name_other_key_is_ignored_not_trusted() -> None:
    # §Signatures: "Verifiers MUST ignore signatures from unknown keys, even if they share a
    # name or ID (but not both) with a known key."
    trusted, impostor = _signer("example.com/log", 1), _signer("example.com/log", 2)
    note = sign_note(TEXT, [impostor])
    with pytest.raises(SignatureError, match="known key"):
        open_note(note, [trusted.verifier()], LIMITS)


def test_forged_signature_under_known_key_id_rejects_the_note() -> None:
    # An attacker reuses the trusted key's name and ID with their own signature.
    trusted, forger = _signer("example.com/log", 1), _signer("example.com/log", 2)
    forged = NoteSignature(
        trusted.name, trusted.key_id, parse_signature_line(forger.sign(TEXT)).signature
    )
    with pytest.raises(SignatureError, match="invalid signature"):
        open_note(TEXT + b"\n" + forged.line(), [trusted.verifier()], LIMITS)


def test_bad_signature_from_one_known_key_rejects_the_whole_note() -> None:
    # §Signatures: "If a signature from a known key fails to verify, clients SHOULD reject the
    # whole note", even when another known key's signature verifies.
    a, b = _signer("a", 1), _signer("b", 2)
    bad = NoteSignature(b.name, b.key_id, bytes(64)).line()
    note = sign_note(TEXT, [a]) + bad
    with pytest.raises(SignatureError):
        open_note(note, [a.verifier(), b.verifier()], LIMITS)


def test_duplicate_signature_lines_are_each_verified() -> None:
    signer = _signer()
    good = signer.sign(TEXT)
    opened = open_note(TEXT + b"\n" + good + good, [signer.verifier()], LIMITS)
    assert len(opened.signatures) == 1
    bad = NoteSignature(signer.name, signer.key_id, bytes(64)).line()
    with pytest.raises(SignatureError):
        open_note(TEXT + b"\n" + good + bad, [signer.verifier()], LIMITS)


def test_ambiguous_verifiers_are_refused() -> None:
    a = _signer("a", 1).verifier()
    assert open_note(sign_note(TEXT, [_signer("a", 1)]), [a, a], LIMITS).text == TEXT
    with pytest.raises(InvalidInputError, match="share key"):
        open_note(SIGNED, [a, _FakeVerifier(a.name, a.key_id)], LIMITS)


class _FakeVerifier:
    def __init__(self, name: str, kid: bytes) -> None:
        self.name = name
        self.key_id = kid

    def verify(self, text: bytes, signature: bytes) -> None:
        raise AssertionError("never called")


# --- attacks on the bytes -------------------------------------------------------------------
def test_modified_text_byte_is_rejected() -> None:
    verifier = parse_verifier_key(PETER["vkey"])
    for i in range(len(TEXT) - 1):
        tampered = bytearray(SIGNED)
        tampered[i] ^= 0x01
        with pytest.raises((SignatureError, InvalidInputError)):
            open_note(bytes(tampered), [verifier], LIMITS)


def test_flipped_signature_byte_is_rejected() -> None:
    signer = _signer()
    line = parse_signature_line(signer.sign(TEXT))
    sig = bytearray(line.signature)
    sig[10] ^= 0x80
    tampered = NoteSignature(line.name, line.key_id, bytes(sig)).line()
    with pytest.raises(SignatureError):
        open_note(TEXT + b"\n" + tampered, [signer.verifier()], LIMITS)


def test_truncated_note_is_rejected() -> None:
    verifier = parse_verifier_key(PETER["vkey"])
    for cut in range(1, len(SIGNED)):
        with pytest.raises((InvalidInputError, SignatureError)):
            open_note(SIGNED[:cut], [verifier], LIMITS)


def test_missing_trailing_newline_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="newline"):
        open_note(SIGNED[:-1], [parse_verifier_key(PETER["vkey"])], LIMITS)


def test_oversize_note_is_rejected_before_parsing() -> None:
    limits = Limits(max_checkpoint_bytes=len(SIGNED) - 1)
    with pytest.raises(TooLargeError):
        open_note(SIGNED, [parse_verifier_key(PETER["vkey"])], limits)
    assert open_note(
        SIGNED, [parse_verifier_key(PETER["vkey"])], Limits(max_checkpoint_bytes=len(SIGNED))
    )


def test_too_many_signatures_is_rejected() -> None:
    signer = _signer()
    line = signer.sign(TEXT)
    # §Format: verifiers "MUST accept at least up to 16 signatures".
    assert open_note(TEXT + b"\n" + line * 16, [signer.verifier()], LIMITS)
    with pytest.raises(TooLargeError):
        open_note(TEXT + b"\n" + line * 17, [signer.verifier()], LIMITS)


def test_garbage_prepended_to_signature_block_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        open_note(
            TEXT + b"\nx" + PETER["signature_line"].encode(),
            [parse_verifier_key(PETER["vkey"])],
            LIMITS,
        )
