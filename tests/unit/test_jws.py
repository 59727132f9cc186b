"""Compact JWS with EdDSA (medledger.core.auth.jws).

Known answer: tests/vectors/jws/rfc8037_ed25519.json, RFC 8037 Appendix A.4 (the file names its
source). Then the mutations: every byte of a part that matters changes the outcome, and every
way a token could smuggle another algorithm, another key or another spelling is refused.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import AuthLimits
from medledger.core.auth.jws import (
    JwsHeader,
    b64url_decode,
    b64url_encode,
    encode_compact,
    sign_jws,
    verify_compact,
    verify_jws,
)
from medledger.core.identity.did_key import public_key_from_did
from medledger.core.identity.keys import ParticipantKey
from medledger.errors import InvalidInputError, SignatureError

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "jws" / "rfc8037_ed25519.json").read_text("utf-8")
)
RFC_KEY = ParticipantKey.from_seed(b64url_decode(VECTOR["jwk"]["d"], part="d"))
ALICE = ParticipantKey.from_seed(bytes(range(32)))
MALLORY = ParticipantKey.from_seed(bytes(range(1, 33)))
CLAIMS = {"iss": ALICE.did, "sub": ALICE.did, "exp": 1_800_000_000, "jti": "abcdefgh"}


def rfc_key(_: JwsHeader) -> bytes:
    return RFC_KEY.public_key


def resolve(did: str) -> bytes:
    return public_key_from_did(did)


def enc(obj: Any) -> str:
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def forge(header: Any, claims: Any, key: ParticipantKey = ALICE) -> str:
    """A token with exactly these header and claims bytes, signed properly by ``key``."""
    signing_input = f"{enc(header)}.{enc(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"


# --- RFC 8037 Appendix A -----------------------------------------------------------------
def test_rfc8037_public_key_is_the_one_of_the_private_key() -> None:
    assert b64url_encode(RFC_KEY.public_key) == VECTOR["jwk"]["x"]


def test_rfc8037_a4_signing_gives_the_published_jws() -> None:
    token = encode_compact(
        json.loads(VECTOR["protected_header"]), VECTOR["payload"].encode(), RFC_KEY.sign
    )
    assert token == VECTOR["jws"]
    assert token.rsplit(".", 1) == [VECTOR["signing_input"], VECTOR["signature"]]


def test_rfc8037_a5_the_published_jws_verifies() -> None:
    header, payload = verify_compact(VECTOR["jws"], rfc_key)
    assert header == JwsHeader(alg="EdDSA")
    assert payload == VECTOR["payload"].encode()


@pytest.mark.parametrize("part", [0, 1, 2])
def test_rfc8037_jws_with_one_flipped_character_is_refused(part: int) -> None:
    parts = VECTOR["jws"].split(".")
    text = parts[part]
    parts[part] = ("B" if text[3] == "A" else "A").join([text[:3], text[4:]])
    with pytest.raises((SignatureError, InvalidInputError)):
        verify_compact(".".join(parts), rfc_key)


# --- round trip ----------------------------------------------------------------------------
def test_sign_then_verify_round_trips_the_claims() -> None:
    token = sign_jws(CLAIMS, ALICE)
    assert verify_jws(token, resolve) == CLAIMS
    header = json.loads(b64url_decode(token.split(".")[0], part="header"))
    assert header == {"alg": "EdDSA", "kid": ALICE.did, "typ": "JWT"}


def test_signing_is_deterministic() -> None:
    assert sign_jws(CLAIMS, ALICE) == sign_jws(dict(reversed(CLAIMS.items())), ALICE)


def test_kid_with_the_did_key_fragment_is_accepted() -> None:
    fragment = ALICE.did.removeprefix("did:key:")
    token = forge({"alg": "EdDSA", "kid": f"{ALICE.did}#{fragment}"}, CLAIMS)
    assert verify_jws(token, resolve) == CLAIMS


# --- attacks -------------------------------------------------------------------------------
def test_altered_payload_is_refused() -> None:
    header, _, signature = sign_jws(CLAIMS, ALICE).split(".")
    altered = enc({**CLAIMS, "sub": MALLORY.did})
    with pytest.raises(SignatureError):
        verify_jws(f"{header}.{altered}.{signature}", resolve)


def test_altered_header_is_refused() -> None:
    _, payload, signature = sign_jws(CLAIMS, ALICE).split(".")
    header = enc({"alg": "EdDSA", "kid": ALICE.did})  # typ dropped: other bytes signed
    with pytest.raises(SignatureError):
        verify_jws(f"{header}.{payload}.{signature}", resolve)


def test_token_signed_with_alg_none_is_refused() -> None:
    token = f"{enc({'alg': 'none', 'kid': ALICE.did})}.{enc(CLAIMS)}."
    with pytest.raises((SignatureError, InvalidInputError)):
        verify_jws(token, resolve)
    with pytest.raises(SignatureError, match="alg"):
        verify_jws(token + "AAAA", resolve)


def test_token_macd_with_hs256_keyed_by_the_public_key_is_refused() -> None:
    """The classic key-confusion attack: HMAC with the (public) verification key as secret."""
    signing_input = f"{enc({'alg': 'HS256', 'kid': ALICE.did})}.{enc(CLAIMS)}"
    mac = hmac.HMAC(ALICE.public_key, hashes.SHA256())
    mac.update(signing_input.encode())
    with pytest.raises(SignatureError, match="alg"):
        verify_jws(f"{signing_input}.{b64url_encode(mac.finalize())}", resolve)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "eddsa", "Ed25519", "", None, ["EdDSA"]])
def test_any_alg_but_eddsa_is_refused(alg: Any) -> None:
    with pytest.raises(SignatureError, match="alg"):
        verify_jws(forge({"alg": alg, "kid": ALICE.did}, CLAIMS), resolve)


def test_token_signed_by_another_key_than_its_kid_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify_jws(forge({"alg": "EdDSA", "kid": ALICE.did}, CLAIMS, key=MALLORY), resolve)


@pytest.mark.parametrize(
    "kid",
    [None, "", "did:web:example.com", "did:key:zNotBase58", 42, "did:key:z6Mk#other"],
)
def test_missing_or_foreign_kid_is_refused(kid: Any) -> None:
    header = {"alg": "EdDSA"} if kid is None else {"alg": "EdDSA", "kid": kid}
    with pytest.raises((SignatureError, InvalidInputError)):
        verify_jws(forge(header, CLAIMS), resolve)


def test_kid_fragment_naming_another_key_is_refused() -> None:
    other = MALLORY.did.removeprefix("did:key:")
    with pytest.raises(SignatureError, match="fragment"):
        verify_jws(forge({"alg": "EdDSA", "kid": f"{ALICE.did}#{other}"}, CLAIMS), resolve)


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}},  # a key inside the token
        {"jku": "https://evil.example/keys"},
        {"x5c": ["AAAA"]},
        {"crit": ["b64"], "b64": False},
    ],
)
def test_header_parameters_that_change_the_key_or_the_signed_bytes_are_refused(
    extra: dict[str, Any],
) -> None:
    with pytest.raises(InvalidInputError, match="not supported"):
        verify_jws(forge({"alg": "EdDSA", "kid": ALICE.did, **extra}, CLAIMS), resolve)


def test_unexpected_typ_is_refused() -> None:
    token = sign_jws(CLAIMS, ALICE, typ="at+jwt")
    with pytest.raises(InvalidInputError, match="typ"):
        verify_jws(token, resolve)  # expects none or JWT
    assert verify_jws(token, resolve, accept_typ=("application/AT+JWT",)) == CLAIMS


def test_padded_base64url_is_refused() -> None:
    header, payload, signature = sign_jws(CLAIMS, ALICE).split(".")
    assert len(signature) % 4 != 0  # 64 bytes -> 86 characters; padding would add "=="
    with pytest.raises(InvalidInputError, match="base64url"):
        verify_jws(f"{header}.{payload}.{signature}==", resolve)


def test_standard_base64_alphabet_is_refused() -> None:
    header, payload, signature = sign_jws(CLAIMS, ALICE).split(".")
    std = base64.b64encode(b64url_decode(signature, part="s")).decode().rstrip("=")
    if std == signature:
        pytest.skip("this signature has no - or _")  # pragma: no cover
    with pytest.raises(InvalidInputError, match="base64url"):
        verify_jws(f"{header}.{payload}.{std}", resolve)


def test_non_canonical_base64url_trailing_bits_are_refused() -> None:
    header, payload, signature = sign_jws(CLAIMS, ALICE).split(".")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 86 characters carry 516 bits for 512: the last character's low 4 bits must be zero.
    tweaked = signature[:-1] + last[last.index(signature[-1]) + 1]
    assert b64url_decode(signature, part="s")
    with pytest.raises(InvalidInputError, match="canonical"):
        verify_jws(f"{header}.{payload}.{tweaked}", resolve)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "..", "a..c", ".b.c", 12, None])
def test_anything_but_three_parts_is_refused(token: Any) -> None:
    with pytest.raises(InvalidInputError):
        verify_jws(token, resolve)


def test_oversize_token_is_refused_before_it_is_parsed() -> None:
    limits = AuthLimits()
    token = sign_jws({**CLAIMS, "pad": "x" * limits.max_jws_bytes}, ALICE)
    with pytest.raises(InvalidInputError, match="at most"):
        verify_jws(token, resolve)


def test_duplicate_claim_names_are_refused() -> None:
    """Two parsers that disagree on which ``sub`` counts is an impersonation waiting to happen."""
    header = enc({"alg": "EdDSA", "kid": ALICE.did})
    payload = b64url_encode(
        f'{{"iss":"{ALICE.did}","sub":"{ALICE.did}","sub":"{MALLORY.did}"}}'.encode()
    )
    signing_input = f"{header}.{payload}"
    token = f"{signing_input}.{b64url_encode(ALICE.sign(signing_input.encode()))}"
    with pytest.raises(InvalidInputError, match="duplicate"):
        verify_jws(token, resolve)


def test_duplicate_header_names_are_refused() -> None:
    header = b64url_encode(f'{{"alg":"EdDSA","kid":"{ALICE.did}","alg":"none"}}'.encode())
    signing_input = f"{header}.{enc(CLAIMS)}"
    token = f"{signing_input}.{b64url_encode(ALICE.sign(signing_input.encode()))}"
    with pytest.raises(InvalidInputError, match="duplicate"):
        verify_jws(token, resolve)


@pytest.mark.parametrize(
    "payload",
    [b"[1,2]", b'"text"', b"null", b"\xff\xfe", b'{"exp": NaN}', b"[" * 5000 + b"]" * 5000],
)
def test_payload_that_is_not_a_json_object_is_refused(payload: bytes) -> None:
    header = enc({"alg": "EdDSA", "kid": ALICE.did})
    signing_input = f"{header}.{b64url_encode(payload)}"
    token = f"{signing_input}.{b64url_encode(ALICE.sign(signing_input.encode()))}"
    with pytest.raises(InvalidInputError):
        verify_jws(token, resolve, limits=AuthLimits(max_jws_bytes=64 * 1024))


def test_deeply_nested_claims_are_refused() -> None:
    nested: Any = "x"
    for _ in range(10):
        nested = {"a": nested}
    with pytest.raises(InvalidInputError, match="deep"):
        verify_jws(forge({"alg": "EdDSA", "kid": ALICE.did}, {"n": nested}), resolve)


def test_short_signature_is_refused() -> None:
    header, payload, signature = sign_jws(CLAIMS, ALICE).split(".")
    short = b64url_encode(b64url_decode(signature, part="s")[:63])
    with pytest.raises(SignatureError, match="64 bytes"):
        verify_jws(f"{header}.{payload}.{short}", resolve)


def test_untrusted_signer_is_refused_by_the_resolver() -> None:
    def only_alice(did: str) -> bytes:
        if did != ALICE.did:
            raise SignatureError("not trusted")
        return ALICE.public_key

    with pytest.raises(SignatureError, match="not trusted"):
        verify_jws(sign_jws(CLAIMS, MALLORY), only_alice)


@given(
    claims=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=20), st.booleans()),
        max_size=6,
    ),
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AQgw09-_xZ."),
)
def test_any_changed_character_is_refused(
    claims: dict[str, Any], position: int, replacement: str
) -> None:
    """Property: a token verifies as signed, and no one-character change of it verifies."""
    token = sign_jws(claims, ALICE)
    assert verify_jws(token, resolve) == claims
    i = position % len(token)
    if token[i] == replacement:
        return
    with pytest.raises((SignatureError, InvalidInputError)):
        verify_jws(token[:i] + replacement + token[i + 1 :], resolve)
