"""C2SP tlog-cosignature, Ed25519 cosignature/v1 (medledger.core.cosignature).

Known answers: the spec example and transparency-dev/formats vectors in
tests/vectors/signed_note/cosignature_v1.json (which records the sources).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import Limits
from medledger.core.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from medledger.core.cosignature import (
    MAX_TIMESTAMP,
    Cosignature,
    CosignatureVerifier,
    Cosigner,
    cosign,
    cosignature_from_note_signature,
    cosignature_message,
    format_cosigner_key,
    open_cosignatures,
    parse_cosignature_line,
    parse_cosigner_key,
)
from medledger.core.note import NoteSignature, Signer, key_id, open_note, parse_verifier_key
from medledger.errors import InvalidInputError, SignatureError, TooLargeError

VECTORS = Path(__file__).parent.parent / "vectors" / "signed_note"
COSIG: dict[str, Any] = json.loads((VECTORS / "cosignature_v1.json").read_text(encoding="utf-8"))
SPEC = COSIG["spec_example"]
LIMITS = Limits()
ORIGIN = "medledger.example/log"
LOG = Signer(ORIGIN, bytes([1]) * 32)
W1 = Cosigner("witness.example/w1", bytes([11]) * 32)
W2 = Cosigner("witness.example/w2", bytes([12]) * 32)
W3 = Cosigner("witness.example/w3", bytes([13]) * 32)
CP = Checkpoint(ORIGIN, 42, hashlib.sha256(b"root").digest())
T = 1_700_000_000


def _cosigned(*cosigners: Cosigner, time_s: int = T) -> bytes:
    return sign_checkpoint(CP, LOG) + b"".join(cosign(CP, w, time_s) for w in cosigners)


# --- known answers --------------------------------------------------------------------------
def test_spec_example_signed_message() -> None:
    body = SPEC["checkpoint_body"].encode()
    assert cosignature_message(body, SPEC["timestamp"]) == SPEC["signed_message"].encode()


def test_spec_example_cosignature_line_parses() -> None:
    line = SPEC["cosignature_line"].encode()
    cosig = parse_cosignature_line(line)
    assert cosig.name == SPEC["cosigner_name"]
    assert cosig.key_id.hex() == SPEC["cosigner_key_id"]
    assert cosig.timestamp == SPEC["timestamp"]
    assert cosig.line() == line


def test_spec_example_log_signature_is_not_a_cosignature() -> None:
    with pytest.raises(InvalidInputError, match="72 bytes"):
        parse_cosignature_line(SPEC["log_signature_line"].encode())


@pytest.mark.parametrize("case", COSIG["timestamp_vectors"], ids=lambda c: c["why"])
def test_timestamp_vectors(case: dict[str, Any]) -> None:
    raw = base64.b64decode(case["signature_base64"])
    cosig = cosignature_from_note_signature(NoteSignature("w", raw[:4], raw[4:]))
    assert cosig.timestamp == case["timestamp"]


def test_plain_note_signature_is_not_a_cosignature() -> None:
    raw = base64.b64decode(COSIG["not_a_cosignature"]["signature_base64"])
    with pytest.raises(InvalidInputError):
        cosignature_from_note_signature(NoteSignature("w", raw[:4], raw[4:]))


def test_cosigner_vkey_vector() -> None:
    case = COSIG["cosigner_vkey"]
    verifier = parse_cosigner_key(case["vkey"])
    assert (verifier.name, verifier.key_id.hex()) == (case["name"], case["key_id"])
    assert format_cosigner_key(verifier) == case["vkey"]


def test_type_01_vkey_is_not_a_cosigner_key() -> None:
    case = COSIG["ed25519_vkey"]
    assert parse_verifier_key(case["vkey"]).key_id.hex() == case["key_id"]
    with pytest.raises(InvalidInputError, match="0x04"):
        parse_cosigner_key(case["vkey"])
    with pytest.raises(InvalidInputError, match="0x01"):
        parse_verifier_key(COSIG["cosigner_vkey"]["vkey"])


# --- key IDs and keys -----------------------------------------------------------------------
def test_key_id_uses_signature_type_04() -> None:
    material = W1.name.encode() + b"\n\x04" + W1.public_key
    assert W1.key_id == hashlib.sha256(material).digest()[:4]
    # The same Ed25519 key as a plain note signer has a different key ID.
    assert key_id(W1.name, 0x01, W1.public_key) != W1.key_id


def test_cosigner_key_round_trip() -> None:
    verifier = W1.verifier()
    assert parse_cosigner_key(format_cosigner_key(verifier)) == verifier
    assert "seed" not in repr(W1)


# --- signing --------------------------------------------------------------------------------
def test_cosignature_signs_header_time_and_body() -> None:
    cosig = parse_cosignature_line(cosign(CP, W1, T))
    assert (cosig.name, cosig.key_id, cosig.timestamp) == (W1.name, W1.key_id, T)
    message = b"cosignature/v1\ntime 1700000000\n" + CP.body()
    # Checked with the primitive directly, not with our verifier.
    Ed25519PublicKey.from_public_bytes(W1.public_key).verify(cosig.signature, message)


def test_cosignature_is_key_id_timestamp_signature() -> None:
    line = cosign(CP, W1, T)
    raw = base64.b64decode(line.decode().split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == W1.key_id
    assert raw[4:12] == T.to_bytes(8, "big")


@pytest.mark.parametrize("time_s", [-1, MAX_TIMESTAMP + 1])
def test_timestamp_out_of_range_is_refused(time_s: int) -> None:
    with pytest.raises(InvalidInputError):
        cosign(CP, W1, time_s)


def test_timestamp_zero_and_maximum_are_allowed() -> None:
    for time_s in (0, MAX_TIMESTAMP):
        assert parse_cosignature_line(cosign(CP, W1, time_s)).timestamp == time_s


@given(
    time_s=st.integers(0, MAX_TIMESTAMP),
    name=st.from_regex(r"[a-z0-9./]{1,30}", fullmatch=True),
)
def test_cosignature_line_round_trip(time_s: int, name: str) -> None:
    cosigner = Cosigner(name, bytes([5]) * 32)
    line = cosign(CP, cosigner, time_s)
    cosig = parse_cosignature_line(line)
    assert cosig.line() == line
    assert cosig == Cosignature(name, cosigner.key_id, time_s, cosig.signature)


# --- verification ---------------------------------------------------------------------------
def test_open_cosignatures() -> None:
    note = _cosigned(W1, W2)
    cosigs = open_cosignatures(note, [W1.verifier(), W2.verifier(), W3.verifier()], LIMITS)
    assert [(c.name, c.timestamp) for c in cosigs] == [(W1.name, T), (W2.name, T)]
    # The log's signature is still checked separately, on the same bytes.
    assert open_checkpoint(note, ORIGIN, [LOG.verifier()], LIMITS) == CP


def test_quorum() -> None:
    note = _cosigned(W1, W2)
    verifiers = [W1.verifier(), W2.verifier(), W3.verifier()]
    assert len(open_cosignatures(note, verifiers, LIMITS, quorum=2)) == 2
    with pytest.raises(SignatureError, match="quorum is 3"):
        open_cosignatures(note, verifiers, LIMITS, quorum=3)
    with pytest.raises(InvalidInputError):
        open_cosignatures(note, verifiers, LIMITS, quorum=0)


def test_duplicate_cosignature_counts_once() -> None:
    note = _cosigned(W1, W1)
    with pytest.raises(SignatureError, match="quorum"):
        open_cosignatures(note, [W1.verifier(), W2.verifier()], LIMITS, quorum=2)


def test_note_without_cosignatures_is_rejected() -> None:
    with pytest.raises(SignatureError):
        open_cosignatures(sign_checkpoint(CP, LOG), [W1.verifier()], LIMITS)


def test_log_signature_does_not_count_as_a_cosignature() -> None:
    # Same key and name used as a plain note signer: a different key ID (type 0x01), so ignored.
    same_key_as_log = Cosigner(ORIGIN, bytes([1]) * 32)
    with pytest.raises(SignatureError):
        open_cosignatures(sign_checkpoint(CP, LOG), [same_key_as_log.verifier()], LIMITS)


def test_cosignature_verifier_plugs_into_open_note() -> None:
    opened = open_note(_cosigned(W1), [LOG.verifier(), W1.verifier()], LIMITS)
    assert [s.name for s in opened.signatures] == [ORIGIN, W1.name]


def test_rewritten_timestamp_is_rejected() -> None:
    cosig = parse_cosignature_line(cosign(CP, W1, T))
    moved = Cosignature(cosig.name, cosig.key_id, T + 1, cosig.signature)
    note = sign_checkpoint(CP, LOG) + moved.line()
    with pytest.raises(SignatureError, match="invalid cosignature"):
        open_cosignatures(note, [W1.verifier()], LIMITS)


def test_cosignature_on_another_checkpoint_is_rejected() -> None:
    other = Checkpoint(ORIGIN, 43, CP.root_hash)
    note = sign_checkpoint(CP, LOG) + cosign(other, W1, T)
    with pytest.raises(SignatureError):
        open_cosignatures(note, [W1.verifier()], LIMITS)


def test_modified_body_byte_is_rejected() -> None:
    note = _cosigned(W1)
    for i in range(len(CP.body())):
        tampered = bytearray(note)
        tampered[i] ^= 0x01
        with pytest.raises((SignatureError, InvalidInputError)):
            open_cosignatures(bytes(tampered), [W1.verifier()], LIMITS)


def test_forged_cosignature_under_witness_key_id_is_rejected() -> None:
    forger = Cosigner(W1.name, bytes([99]) * 32)
    forged = parse_cosignature_line(cosign(CP, forger, T))
    stolen = Cosignature(W1.name, W1.key_id, T, forged.signature)
    with pytest.raises(SignatureError):
        open_cosignatures(sign_checkpoint(CP, LOG) + stolen.line(), [W1.verifier()], LIMITS)


def test_timestamp_over_2_63_is_rejected_by_the_verifier() -> None:
    cosig = parse_cosignature_line(cosign(CP, W1, T))
    raw = (2**63).to_bytes(8, "big") + cosig.signature
    line = NoteSignature(W1.name, W1.key_id, raw).line()
    with pytest.raises(SignatureError, match="2\\^63"):
        open_cosignatures(sign_checkpoint(CP, LOG) + line, [W1.verifier()], LIMITS)
    with pytest.raises(InvalidInputError):
        parse_cosignature_line(line)


def test_wrong_length_cosignature_is_rejected_by_the_verifier() -> None:
    line = NoteSignature(W1.name, W1.key_id, bytes(64)).line()
    with pytest.raises(SignatureError, match="72 bytes"):
        open_cosignatures(sign_checkpoint(CP, LOG) + line, [W1.verifier()], LIMITS)


def test_too_many_cosignatures_is_rejected() -> None:
    note = sign_checkpoint(CP, LOG) + cosign(CP, W1, T) * 16
    with pytest.raises(TooLargeError):
        open_cosignatures(note, [W1.verifier()], LIMITS)


def test_invalid_cosigner_keys() -> None:
    with pytest.raises(InvalidInputError):
        CosignatureVerifier("w", bytes(31))
    with pytest.raises(InvalidInputError):
        Cosigner("bad name", bytes(32))
    with pytest.raises(InvalidInputError):
        Cosigner("w", bytes(16))
