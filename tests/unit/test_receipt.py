"""C2SP tlog-proof@v1 receipts (medledger.core.receipt): format, parse and verify.

Trees and proofs come from the naive RFC 9162 reference (medledger.testing.reference_merkle).
The spec example is quoted from c2sp.org/tlog-proof (C2SP/C2SP tlog-proof.md at commit
0065ea5b716154a2dd48508e3f905012a16ce5e9); its signatures are elided there, so it only
exercises the format.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import Limits
from medledger.core.checkpoint import MAX_TREE_SIZE, Checkpoint, sign_checkpoint
from medledger.core.cosignature import Cosigner, cosign, open_cosignatures
from medledger.core.merkle import leaf_hash
from medledger.core.note import Signer
from medledger.core.receipt import Receipt, format_receipt, parse_receipt, verify_receipt
from medledger.errors import (
    InvalidInputError,
    ProofError,
    SignatureError,
    TooLargeError,
    VerificationError,
)
from medledger.testing.reference_merkle import mth, path

LIMITS = Limits()
ORIGIN = "medledger.example/log"
LOG = Signer(ORIGIN, bytes([1]) * 32)
ENTRIES = [f"entry {i}".encode() for i in range(11)]

SPEC_EXAMPLE = """\
c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
""".encode()


def _checkpoint_note(size: int, signer: Signer = LOG, origin: str = ORIGIN) -> bytes:
    return sign_checkpoint(Checkpoint(origin, size, mth(ENTRIES[:size])), signer)


def _receipt(index: int, size: int, extra: bytes | None = None) -> Receipt:
    proof = tuple(path(index, ENTRIES[:size]))
    return Receipt(index, proof, _checkpoint_note(size), extra)


def _verify(receipt: Receipt, entry: bytes) -> Checkpoint:
    return verify_receipt(
        receipt, entry=entry, origin=ORIGIN, verifiers=[LOG.verifier()], limits=LIMITS
    )


# --- format ---------------------------------------------------------------------------------
def test_spec_example_parses_and_reformats_byte_for_byte() -> None:
    receipt = parse_receipt(SPEC_EXAMPLE, LIMITS)
    assert receipt.index == 73894
    assert receipt.extra == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert len(receipt.proof) == 5
    assert receipt.proof[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert receipt.checkpoint_note.startswith(b"example.com/fancylog\n109482\n")
    assert format_receipt(receipt) == SPEC_EXAMPLE


def test_format_layout() -> None:
    note = _checkpoint_note(3)
    receipt = Receipt(2, (bytes(32),), note, extra=b"hi")
    expected = b"c2sp.org/tlog-proof@v1\nextra aGk=\nindex 2\n" + b"A" * 43 + b"=\n\n" + note
    assert format_receipt(receipt) == expected


def test_format_without_extra_or_proof() -> None:
    note = _checkpoint_note(1)
    receipt = Receipt(0, (), note)
    assert format_receipt(receipt) == b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + note
    assert parse_receipt(format_receipt(receipt), LIMITS) == receipt


def test_empty_extra_is_distinct_from_no_extra() -> None:
    receipt = Receipt(0, (), _checkpoint_note(1), extra=b"")
    text = format_receipt(receipt)
    assert b"\nextra \n" in text
    assert parse_receipt(text, LIMITS) == receipt


RECEIPTS = st.builds(
    Receipt,
    index=st.integers(0, MAX_TREE_SIZE - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=LIMITS.max_proof_hashes).map(
        tuple
    ),
    checkpoint_note=st.binary(min_size=1, max_size=300),
    extra=st.none() | st.binary(max_size=100),
)


@given(RECEIPTS)
def test_format_parse_round_trip(receipt: Receipt) -> None:
    text = format_receipt(receipt)
    assert parse_receipt(text, LIMITS) == receipt
    assert format_receipt(parse_receipt(text, LIMITS)) == text


# --- parse errors name the problem ----------------------------------------------------------
_H = base64.b64encode(bytes(32))
_NOTE = b"o\n1\n" + _H + b"\n\n\xe2\x80\x94 k AAAAAAA=\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"", "header"),
        (b"c2sp.org/tlog-proof@v2\nindex 0\n\n" + _NOTE, "must start with"),
        (b"c2sp.org/tlog-proof@v1 \nindex 0\n\n" + _NOTE, "must start with"),
        (b"c2sp.org/tlog-proof@v1\r\nindex 0\n\n" + _NOTE, "must start with"),
        (b"c2sp.org/tlog-proof@v1\n\n" + _NOTE, "must be 'index <n>'"),
        (b"c2sp.org/tlog-proof@v1\nindex\n\n" + _NOTE, "must be 'index <n>'"),
        (b"c2sp.org/tlog-proof@v1\nindex 01\n\n" + _NOTE, "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex -1\n\n" + _NOTE, "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex +1\n\n" + _NOTE, "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex  1\n\n" + _NOTE, "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\r\n\n" + _NOTE, "leading zeroes"),
        (b"c2sp.org/tlog-proof@v1\nindex 18446744073709551615\n\n" + _NOTE, "at most"),
        (b"c2sp.org/tlog-proof@v1\nindex \xd9\xa1\n\n" + _NOTE, "not ASCII"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\nindex 0\n\n" + _NOTE, "proof hash on line 3"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\nextra aGk=\n\n" + _NOTE, "proof hash on line 3"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\n" + _NOTE, "line 3 is not 32 bytes"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n" + _H[:-1] + b"\n\n" + _NOTE, "base64"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n" + b"A" * 42 + b"B=\n\n" + _NOTE, "canonical"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n" + _H + b" \n\n" + _NOTE, "base64"),
        (b"c2sp.org/tlog-proof@v1\nextra *\nindex 0\n\n" + _NOTE, "extra is not valid base64"),
        (b"c2sp.org/tlog-proof@v1\nextra aGk\nindex 0\n\n" + _NOTE, "extra is not valid base64"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n" + _H + b"\n", "empty line before"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n\n", "no checkpoint"),
        (b"c2sp.org/tlog-proof@v1\nindex 0", "index line"),
    ],
)
def test_parse_rejects(text: bytes, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_receipt(text, LIMITS)


def test_too_many_proof_hashes() -> None:
    limit = LIMITS.max_proof_hashes
    head = b"c2sp.org/tlog-proof@v1\nindex 0\n"
    assert len(parse_receipt(head + (_H + b"\n") * limit + b"\n" + _NOTE, LIMITS).proof) == limit
    with pytest.raises(TooLargeError):
        parse_receipt(head + (_H + b"\n") * (limit + 1) + b"\n" + _NOTE, LIMITS)


def test_oversize_receipt() -> None:
    text = format_receipt(_receipt(3, 7))
    assert parse_receipt(text, Limits(max_receipt_bytes=len(text)))
    with pytest.raises(TooLargeError):
        parse_receipt(text, Limits(max_receipt_bytes=len(text) - 1))


def test_invalid_receipts_cannot_exist() -> None:
    note = _checkpoint_note(1)
    with pytest.raises(InvalidInputError):
        Receipt(-1, (), note)
    with pytest.raises(InvalidInputError):
        Receipt(MAX_TREE_SIZE, (), note)
    with pytest.raises(InvalidInputError):
        Receipt(0, (bytes(31),), note)
    with pytest.raises(InvalidInputError):
        Receipt(0, (), b"")


# --- verification ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 11])
def test_every_entry_verifies(size: int) -> None:
    for index in range(size):
        receipt = parse_receipt(format_receipt(_receipt(index, size)), LIMITS)
        checkpoint = _verify(receipt, ENTRIES[index])
        assert (checkpoint.size, checkpoint.root_hash) == (size, mth(ENTRIES[:size]))


def test_verify_with_leaf_hash() -> None:
    receipt = _receipt(4, 7)
    checkpoint = verify_receipt(
        receipt,
        leaf_hash=leaf_hash(ENTRIES[4]),
        origin=ORIGIN,
        verifiers=[LOG.verifier()],
        limits=LIMITS,
    )
    assert checkpoint.size == 7


def test_exactly_one_of_entry_and_leaf_hash() -> None:
    receipt = _receipt(4, 7)
    common = {"origin": ORIGIN, "verifiers": [LOG.verifier()], "limits": LIMITS}
    with pytest.raises(InvalidInputError, match="exactly one"):
        verify_receipt(receipt, **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="exactly one"):
        verify_receipt(
            receipt,
            entry=ENTRIES[4],
            leaf_hash=leaf_hash(ENTRIES[4]),
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInputError, match="32 bytes"):
        verify_receipt(receipt, leaf_hash=bytes(31), **common)  # type: ignore[arg-type]


def test_receipt_for_altered_entry_is_rejected() -> None:
    with pytest.raises(ProofError):
        _verify(_receipt(4, 7), b"entry 4 (edited)")


def test_receipt_for_another_entry_is_rejected() -> None:
    with pytest.raises(ProofError):
        _verify(_receipt(4, 7), ENTRIES[5])


@pytest.mark.parametrize("which", range(3))
def test_receipt_with_proof_hash_flipped_is_rejected(which: int) -> None:
    receipt = _receipt(4, 7)
    flipped = bytearray(receipt.proof[which])
    flipped[0] ^= 0x01
    proof = list(receipt.proof)
    proof[which] = bytes(flipped)
    with pytest.raises(ProofError):
        _verify(Receipt(4, tuple(proof), receipt.checkpoint_note), ENTRIES[4])


@pytest.mark.parametrize("delta", [-1, +1])
def test_receipt_index_off_by_one_is_rejected(delta: int) -> None:
    receipt = _receipt(4, 7)
    moved = Receipt(4 + delta, receipt.proof, receipt.checkpoint_note)
    with pytest.raises(ProofError):
        _verify(moved, ENTRIES[4])


def test_receipt_index_beyond_tree_is_rejected() -> None:
    receipt = _receipt(6, 7)
    with pytest.raises(ProofError):
        _verify(Receipt(7, receipt.proof, receipt.checkpoint_note), ENTRIES[6])


def test_truncated_proof_is_rejected() -> None:
    receipt = _receipt(4, 7)
    with pytest.raises(ProofError):
        _verify(Receipt(4, receipt.proof[:-1], receipt.checkpoint_note), ENTRIES[4])
    with pytest.raises(ProofError):
        _verify(Receipt(4, (*receipt.proof, bytes(32)), receipt.checkpoint_note), ENTRIES[4])


def test_receipt_with_swapped_checkpoint_is_rejected() -> None:
    # A genuine, correctly signed checkpoint of the same log, for another tree size.
    receipt = _receipt(4, 7)
    with pytest.raises(ProofError):
        _verify(Receipt(4, receipt.proof, _checkpoint_note(8)), ENTRIES[4])


def test_receipt_with_forged_checkpoint_is_rejected() -> None:
    forger = Signer(ORIGIN, bytes([2]) * 32)
    receipt = _receipt(4, 7)
    with pytest.raises(SignatureError):
        _verify(Receipt(4, receipt.proof, _checkpoint_note(7, signer=forger)), ENTRIES[4])


def test_receipt_with_checkpoint_of_another_log_is_rejected() -> None:
    other = Signer("other.example/log", bytes([3]) * 32)
    receipt = _receipt(4, 7)
    note = _checkpoint_note(7, signer=other, origin="other.example/log")
    with pytest.raises(VerificationError, match="origin"):
        verify_receipt(
            Receipt(4, receipt.proof, note),
            entry=ENTRIES[4],
            origin=ORIGIN,
            verifiers=[LOG.verifier(), other.verifier()],
            limits=LIMITS,
        )


def test_receipt_with_tampered_checkpoint_root_is_rejected() -> None:
    receipt = _receipt(4, 7)
    note = bytearray(receipt.checkpoint_note)
    note[len(ORIGIN) + 4] ^= 0x01  # a byte of the base64 root hash
    with pytest.raises((SignatureError, InvalidInputError)):
        _verify(Receipt(4, receipt.proof, bytes(note)), ENTRIES[4])


def test_receipt_with_truncated_checkpoint_is_rejected() -> None:
    receipt = _receipt(4, 7)
    with pytest.raises(InvalidInputError):
        _verify(Receipt(4, receipt.proof, receipt.checkpoint_note[:-1]), ENTRIES[4])


def test_verify_enforces_the_proof_limit() -> None:
    receipt = Receipt(0, (bytes(32),) * 66, _checkpoint_note(1))
    with pytest.raises(TooLargeError):
        _verify(receipt, ENTRIES[0])


def test_cosigned_receipt() -> None:
    # Witness cosignatures ride along in the checkpoint note; both policies read the same bytes.
    witness = Cosigner("witness.example/w1", bytes([7]) * 32)
    checkpoint = Checkpoint(ORIGIN, 7, mth(ENTRIES[:7]))
    note = sign_checkpoint(checkpoint, LOG) + cosign(checkpoint, witness, 1_700_000_000)
    receipt = parse_receipt(
        format_receipt(Receipt(4, tuple(path(4, ENTRIES[:7])), note, b"ctx")), LIMITS
    )
    assert _verify(receipt, ENTRIES[4]) == checkpoint
    assert len(open_cosignatures(receipt.checkpoint_note, [witness.verifier()], LIMITS)) == 1
