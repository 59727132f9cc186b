"""did:key for Ed25519 (medledger.core.identity.did_key) and participant keys (.keys).

Known answers: tests/vectors/did_key/ed25519.json, transcribed from the W3C CCG did:key test
vectors (w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json, commit e7839a8e) and
RFC 8032 §7.1 TEST 1-2; the file records its sources. The rule checked: a did:key is
``did:key:`` + ``z`` (multibase base58btc) + base58btc(0xed 0x01 || 32-byte key), and parsing
accepts exactly that spelling -- every other string is ``InvalidInputError``.
"""

from __future__ import annotations

import ast
import base64
import json
import pickle
from pathlib import Path
from typing import Any, cast

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

import medledger.core.identity.did_key as did_key_module
import medledger.core.identity.keys as keys_module
from medledger.core.identity.did_key import (
    MAX_DID_LENGTH,
    did_from_public_key,
    is_did_key,
    public_key_from_did,
)
from medledger.core.identity.keys import ParticipantKey, verify_signature
from medledger.errors import InvalidInputError, SignatureError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "did_key" / "ed25519.json").read_text("utf-8")
)
DID_VECTORS: list[dict[str, str]] = VECTORS["vectors"]
RFC8032: list[dict[str, str]] = VECTORS["rfc8032_signatures"]["vectors"]

V0 = DID_VECTORS[0]
DID = V0["did"]
PUBLIC_KEY = bytes.fromhex(V0["public_key"])
BODY = DID.removeprefix("did:key:z")
RAW = base58.b58decode(BODY)  # 0xed 0x01 || public key

public_keys = st.binary(min_size=32, max_size=32)


def _z(raw: bytes) -> str:
    return "did:key:z" + base58.b58encode(raw).decode("ascii")


# --- the W3C CCG vectors ------------------------------------------------------------------
@pytest.mark.parametrize("vector", DID_VECTORS, ids=lambda v: v["seed"][-2:])
def test_public_key_to_did(vector: dict[str, str]) -> None:
    public_key = bytes.fromhex(vector["public_key"])
    assert base58.b58decode(vector["public_key_base58"]) == public_key
    assert did_from_public_key(public_key) == vector["did"]
    assert public_key_from_did(vector["did"]) == public_key
    assert is_did_key(vector["did"])


@pytest.mark.parametrize("vector", DID_VECTORS, ids=lambda v: v["seed"][-2:])
def test_seed_to_did(vector: dict[str, str]) -> None:
    key = ParticipantKey.from_seed(bytes.fromhex(vector["seed"]))
    assert key.did == vector["did"]
    assert key.public_key.hex() == vector["public_key"]


def test_zero_seed_vector_is_present() -> None:
    # The brief's anchor: RFC 8032 seed 0^32 -> this key -> this DID.
    assert V0["seed"] == "00" * 32
    assert V0["public_key"] == "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
    assert DID == "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    assert len(DID_VECTORS) == 5


@pytest.mark.parametrize("vector", DID_VECTORS, ids=lambda v: v["seed"][-2:])
def test_x25519_did_from_the_same_vector_is_not_an_ed25519_key(vector: dict[str, str]) -> None:
    # A valid did:key, but of an X25519 key agreement key (multicodec 0xec 0x01): not a signer.
    assert base58.b58decode(vector["x25519_did"].removeprefix("did:key:z"))[:2] == b"\xec\x01"
    with pytest.raises(InvalidInputError):
        public_key_from_did(vector["x25519_did"])
    assert not is_did_key(vector["x25519_did"])


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["name"])
def test_rfc8032_known_answer_signatures(vector: dict[str, str]) -> None:
    key = ParticipantKey.from_seed(bytes.fromhex(vector["seed"]))
    message = bytes.fromhex(vector["message"])
    assert key.public_key.hex() == vector["public_key"]
    assert key.sign(message).hex() == vector["signature"]
    verify_signature(key.did, message, bytes.fromhex(vector["signature"]))


# --- round trips --------------------------------------------------------------------------
@given(public_keys)
def test_did_round_trip(public_key: bytes) -> None:
    did = did_from_public_key(public_key)
    assert did.startswith("did:key:z6Mk")  # every Ed25519 did:key does (did:key §Ed25519)
    assert len(did) <= MAX_DID_LENGTH
    assert public_key_from_did(did) == public_key
    assert is_did_key(did)


@given(st.binary(min_size=32, max_size=32))
def test_participant_key_from_seed_round_trip(seed: bytes) -> None:
    key = ParticipantKey.from_seed(seed)
    assert key.export_seed() == seed
    assert ParticipantKey.from_seed(key.export_seed()) == key
    assert public_key_from_did(key.did) == key.public_key


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=256))
def test_sign_verify_round_trip(seed: bytes, data: bytes) -> None:
    key = ParticipantKey.from_seed(seed)
    signature = key.sign(data)
    assert len(signature) == 64
    assert key.sign(data) == signature  # RFC 8032 signatures are deterministic
    verify_signature(key.did, data, signature)
    with pytest.raises(SignatureError):
        verify_signature(key.did, data + b"\x00", signature)


# --- rejection table ------------------------------------------------------------------------
REJECTED: dict[str, object] = {
    "empty string": "",
    "method prefix only": "did:key:",
    "multibase prefix only": "did:key:z",
    "no multibase prefix": "did:key:" + BODY,
    "multibase base16 (f)": "did:key:f" + RAW.hex(),
    "multibase base64url (u)": "did:key:u" + base64.urlsafe_b64encode(RAW).decode().rstrip("="),
    "multibase base58flickr (Z)": "did:key:Z" + BODY,
    "upper-case method": "DID:KEY:z" + BODY,
    "other DID method": "did:web:z" + BODY,
    "wrong multicodec X25519 0xec01": _z(b"\xec\x01" + PUBLIC_KEY),
    "wrong multicodec secp256k1 0xe701": _z(b"\xe7\x01\x02" + PUBLIC_KEY),
    "wrong multicodec P-256 0x8024": _z(b"\x80\x24\x02" + PUBLIC_KEY),
    "no multicodec, bare key": _z(PUBLIC_KEY),
    "non-minimal multicodec varint ed 81 00": _z(b"\xed\x81\x00" + PUBLIC_KEY),
    "multicodec only": _z(b"\xed\x01"),
    "truncated by one byte": _z(RAW[:-1]),
    "truncated by one character": DID[:-1],
    "truncated to half": DID[: len(DID) // 2],
    "one extra byte": _z(RAW + b"\x00"),
    "one extra character": DID + "2",
    "64-byte key": _z(b"\xed\x01" + PUBLIC_KEY * 2),
    "leading zero byte (base58 '1')": "did:key:z1" + BODY,
    "two leading zero bytes": "did:key:z11" + BODY,
    "non-base58 '0'": DID[:-1] + "0",
    "non-base58 'O'": DID[:-1] + "O",
    "non-base58 'I'": DID[:-1] + "I",
    "non-base58 'l'": DID[:-1] + "l",
    "non-base58 '+'": DID[:-1] + "+",
    "non-base58 '/'": DID[:-1] + "/",
    "non-ASCII letter": DID[:-1] + "é",
    "fullwidth digit": DID[:-1] + "\uff12",
    "NUL byte": DID + "\x00",
    "leading space": " " + DID,
    "trailing newline": DID + "\n",
    "inner space": DID[:20] + " " + DID[20:],
    "DID URL with fragment": DID + "#" + BODY,
    "DID URL with path": DID + "/path",
    "too long, valid base58": "did:key:z" + "2" * 200,
    "too long, repeated body": "did:key:z" + BODY * 3,
    "megabyte string": "did:key:z" + "2" * 1_000_000,
    "bytes, not str": DID.encode(),
    "None": None,
    "int": 0,
    "list": [DID],
}


@pytest.mark.parametrize("value", REJECTED.values(), ids=REJECTED.keys())
def test_rejected_dids(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        public_key_from_did(cast(str, value))
    assert info.value.parameter == "did"
    assert not is_did_key(cast(str, value))


@pytest.mark.parametrize("size", [0, 1, 31, 33, 34, 64])
def test_did_from_public_key_rejects_wrong_sizes(size: int) -> None:
    with pytest.raises(InvalidInputError):
        did_from_public_key(bytes(size))


@given(st.text(max_size=80))
def test_any_string_parses_canonically_or_is_rejected(text: str) -> None:
    try:
        public_key = public_key_from_did(text)
    except InvalidInputError:
        return
    assert did_from_public_key(public_key) == text


@given(st.integers(min_value=len("did:key:"), max_value=len(DID) - 1), st.characters())
def test_one_character_changed(position: int, char: str) -> None:
    mutated = DID[:position] + char + DID[position + 1 :]
    try:
        public_key = public_key_from_did(mutated)
    except InvalidInputError:
        return
    # The rare survivor is another key's canonical did:key, never an alias of this one.
    assert did_from_public_key(public_key) == mutated
    assert (mutated == DID) == (public_key == PUBLIC_KEY)


# --- ParticipantKey -------------------------------------------------------------------------
SEED = bytes(range(1, 33))


def test_repr_and_str_never_show_the_seed() -> None:
    key = ParticipantKey.from_seed(SEED)
    for shown in (repr(key), str(key), f"{key}", f"{key!r}"):
        assert key.did in shown
        for spelling in (SEED.hex(), SEED.hex().upper(), base64.b64encode(SEED).decode()):
            assert spelling not in shown
        assert base58.b58encode(SEED).decode() not in shown


def test_a_key_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(ParticipantKey.from_seed(SEED))


def test_keys_compare_by_did() -> None:
    a, b = ParticipantKey.from_seed(SEED), ParticipantKey.from_seed(SEED)
    other = ParticipantKey.from_seed(bytes(32))
    assert a == b
    assert hash(a) == hash(b)
    assert a != other
    assert a != a.did


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytes(64), bytearray(32), "0" * 32])
def test_from_seed_rejects_anything_but_32_bytes(seed: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        ParticipantKey.from_seed(cast(bytes, seed))
    assert info.value.parameter == "seed"


def test_constructor_rejects_other_key_types() -> None:
    with pytest.raises(InvalidInputError):
        ParticipantKey(cast(Any, SEED))


def test_sign_rejects_non_bytes() -> None:
    with pytest.raises(InvalidInputError):
        ParticipantKey.from_seed(SEED).sign(cast(bytes, "text"))


# --- verify_signature: each attack it stops -----------------------------------------------
KEY = ParticipantKey.from_seed(SEED)
OTHER = ParticipantKey.from_seed(bytes(32))
DATA = b"medledger/tx/v1\x00{}"
SIGNATURE = KEY.sign(DATA)


def test_valid_signature_verifies() -> None:
    verify_signature(KEY.did, DATA, SIGNATURE)


@pytest.mark.parametrize("index", range(64))
def test_flipped_signature_byte(index: int) -> None:
    forged = bytearray(SIGNATURE)
    forged[index] ^= 0x01
    with pytest.raises(SignatureError):
        verify_signature(KEY.did, DATA, bytes(forged))


@pytest.mark.parametrize(
    ("did", "data", "signature"),
    [
        pytest.param(KEY.did, DATA + b" ", SIGNATURE, id="modified data"),
        pytest.param(KEY.did, b"", SIGNATURE, id="empty data"),
        pytest.param(KEY.did, DATA, OTHER.sign(DATA), id="signature by another key"),
        pytest.param(OTHER.did, DATA, SIGNATURE, id="claimed by another did"),
        pytest.param(KEY.did, DATA, SIGNATURE[:-1], id="truncated signature"),
        pytest.param(KEY.did, DATA, SIGNATURE + b"\x00", id="extended signature"),
        pytest.param(KEY.did, DATA, b"", id="empty signature"),
        pytest.param(KEY.did, DATA, bytes(64), id="all-zero signature"),
        pytest.param(
            did_from_public_key(b"\xff" * 32), DATA, SIGNATURE, id="did of a non-canonical point"
        ),
    ],
)
def test_forgeries_raise_signature_error(did: str, data: bytes, signature: bytes) -> None:
    with pytest.raises(SignatureError):
        verify_signature(did, data, signature)


@pytest.mark.parametrize(
    ("did", "data", "signature"),
    [
        (DID_VECTORS[0]["x25519_did"], DATA, SIGNATURE),
        ("did:key:z" + BODY[:-1], DATA, SIGNATURE),
        (KEY.did, "text", SIGNATURE),
        (KEY.did, DATA, SIGNATURE.hex()),
    ],
    ids=["x25519 did", "malformed did", "str data", "str signature"],
)
def test_malformed_inputs_raise_invalid_input(did: str, data: object, signature: object) -> None:
    with pytest.raises(InvalidInputError):
        verify_signature(did, cast(bytes, data), cast(bytes, signature))


def test_core_identity_modules_draw_no_randomness() -> None:
    # No randomness inside the core: keys come from seeds the adapters draw.
    for module in (keys_module, did_key_module):
        tree = ast.parse(Path(cast(str, module.__file__)).read_text("utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & {"os", "secrets", "random", "uuid", "time"}, module.__name__
