"""Shamir secret sharing over GF(2^8) for key recovery (medledger.core.recovery.shamir).

Known answers: tests/vectors/recovery/gf256.json, transcribed from FIPS-197 -- the §4.2 and
§4.2.1 products of {57}, inverses, and S-box entries (§5.1.1, Figure 7) that check inversion
against a table published independently of this code. A naive reference multiplication
(carry-less product, then long division by 0x11b) is the oracle for all 65536 products, and
a direct evaluation of sum c_i x^i is the oracle for ``split``.

The rules checked: any k or more shares of a split give back the secret; everything else --
k - 1 shares, a forged threshold, a flipped byte, shares of two splits, a mutated share text --
raises, and ``combine`` never returns anything but the secret. Share texts have exactly one
spelling, and every malformed text names its failing part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from medledger.core.recovery import (
    MAX_SECRET_BYTES,
    MAX_SHARE_TEXT_CHARS,
    Share,
    combine,
    format_share,
    gf_add,
    gf_div,
    gf_inv,
    gf_mul,
    parse_share,
    split,
)
from medledger.errors import InvalidInputError, TooLargeError, VerificationError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "recovery" / "gf256.json").read_text("utf-8")
)
MULTIPLICATION: list[dict[str, str]] = VECTORS["multiplication"]
INVERSES: list[dict[str, str]] = VECTORS["inverse"]["cases"]
SBOX: list[dict[str, str]] = VECTORS["sbox"]["cases"]

FAST = settings(max_examples=100, deadline=None)
ELEMENTS = st.integers(0, 255)
NONZERO = st.integers(1, 255)
SECRETS = st.binary(min_size=1, max_size=40)
TAG = hashlib.sha256(b"medledger/shamir/v1\x00" + b"\x53").digest()[:8]


def _hex(value: str) -> int:
    return int(value, 16)


# --- oracles ---------------------------------------------------------------------------------
def reference_mul(a: int, b: int) -> int:
    """Schoolbook: multiply the bit polynomials without carries, then reduce modulo 0x11b."""
    product = 0
    for i in range(8):
        if b >> i & 1:
            product ^= a << i
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


def reference_evaluate(coefficients: list[int], x: int) -> int:
    """sum_i c_i * x^i, term by term (no Horner)."""
    total = 0
    for i, c in enumerate(coefficients):
        power = 1
        for _ in range(i):
            power = reference_mul(power, x)
        total ^= reference_mul(c, power)
    return total


def affine(b: int) -> int:
    """FIPS-197 §5.1.1 equation 5.1: b'_i = b_i ^ b_(i+4) ^ b_(i+5) ^ b_(i+6) ^ b_(i+7) ^ c_i."""
    out = 0
    for i in range(8):
        bit = b >> i ^ b >> (i + 4) % 8 ^ b >> (i + 5) % 8 ^ b >> (i + 6) % 8 ^ b >> (i + 7) % 8
        out |= ((bit ^ 0x63 >> i) & 1) << i
    return out


class Recorder:
    """A ``random_bytes`` that Hypothesis controls and that remembers what it handed out."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.drawn = b""

    def __call__(self, size: int) -> bytes:
        self.drawn = self.data.draw(st.binary(min_size=size, max_size=size), label="random")
        return self.drawn


@st.composite
def thresholds(draw: st.DrawFn, max_n: int = 9) -> tuple[int, int]:
    n = draw(st.integers(2, max_n))
    return draw(st.integers(2, n)), n


def fixed(byte: int) -> Callable[[int], bytes]:
    return lambda size: bytes([byte]) * size


# --- GF(2^8): known answers ------------------------------------------------------------------
@pytest.mark.parametrize("case", MULTIPLICATION, ids=lambda c: f"{c['a']}*{c['b']}")
def test_fips197_multiplication(case: dict[str, str]) -> None:
    a, b, product = _hex(case["a"]), _hex(case["b"]), _hex(case["product"])
    assert gf_mul(a, b) == product
    assert gf_mul(b, a) == product


@pytest.mark.parametrize("case", INVERSES, ids=lambda c: c["a"])
def test_inverse_vectors(case: dict[str, str]) -> None:
    a, inverse = _hex(case["a"]), _hex(case["inverse"])
    assert gf_inv(a) == inverse
    assert gf_mul(a, inverse) == 1
    assert gf_div(1, a) == inverse


@pytest.mark.parametrize("case", SBOX, ids=lambda c: c["a"])
def test_fips197_sbox_is_affine_of_inverse(case: dict[str, str]) -> None:
    a = _hex(case["a"])
    assert affine(gf_inv(a) if a else 0) == _hex(case["s"])


def test_multiplication_matches_reference_for_all_pairs() -> None:
    for a in range(256):
        for b in range(256):
            assert gf_mul(a, b) == reference_mul(a, b), (a, b)


def test_every_nonzero_element_has_exactly_one_inverse() -> None:
    for a in range(1, 256):
        assert [b for b in range(256) if reference_mul(a, b) == 1] == [gf_inv(a)]


# --- GF(2^8): field axioms -------------------------------------------------------------------
@FAST
@given(ELEMENTS, ELEMENTS)
def test_mul_and_add_are_commutative(a: int, b: int) -> None:
    assert gf_mul(a, b) == gf_mul(b, a)
    assert gf_add(a, b) == gf_add(b, a) == a ^ b


@FAST
@given(ELEMENTS, ELEMENTS, ELEMENTS)
def test_mul_is_associative(a: int, b: int, c: int) -> None:
    assert gf_mul(gf_mul(a, b), c) == gf_mul(a, gf_mul(b, c))


@FAST
@given(ELEMENTS, ELEMENTS, ELEMENTS)
def test_mul_distributes_over_add(a: int, b: int, c: int) -> None:
    assert gf_mul(a, gf_add(b, c)) == gf_add(gf_mul(a, b), gf_mul(a, c))


@FAST
@given(ELEMENTS)
def test_identities(a: int) -> None:
    assert gf_mul(a, 1) == a
    assert gf_mul(a, 0) == 0
    assert gf_add(a, 0) == a
    assert gf_add(a, a) == 0  # every element is its own additive inverse


@FAST
@given(NONZERO, ELEMENTS)
def test_inverse_and_division(a: int, b: int) -> None:
    assert gf_mul(a, gf_inv(a)) == 1
    assert gf_inv(gf_inv(a)) == a
    assert gf_div(gf_mul(b, a), a) == b
    assert gf_div(b, a) == gf_mul(b, gf_inv(a))


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: gf_inv(0), "a"),
        (lambda: gf_div(1, 0), "b"),
        (lambda: gf_div(0, 0), "b"),
        (lambda: gf_mul(256, 1), "a"),
        (lambda: gf_mul(1, -1), "b"),
        (lambda: gf_add(True, 1), "a"),
        (lambda: gf_inv(0x11B), "a"),
    ],
    ids=["inv-0", "div-by-0", "0-div-0", "mul-256", "mul-negative", "add-bool", "inv-9-bits"],
)
def test_field_operations_reject_non_elements(call: Callable[[], int], parameter: str) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        call()
    assert excinfo.value.parameter == parameter


# --- split -----------------------------------------------------------------------------------
def test_known_split_and_share_text() -> None:
    # f(x) = {53} + {83} x: f(1) = {53} ^ {83} = {d0}; f(2) = {53} ^ xtime({83}) = {53} ^ {1d}.
    shares = split(b"\x53", 2, 3, fixed(0x83))
    assert [(s.x, s.y) for s in shares] == [(1, b"\xd0"), (2, b"\x4e"), (3, b"\xcd")]
    assert all(s.k == 2 and s.tag == TAG for s in shares)
    assert format_share(shares[1]) == "medledger-share-v1:2:2:Tg:" + TAG.hex()
    assert combine(shares[1:]) == b"\x53"


@FAST
@given(SECRETS, thresholds(), st.data())
def test_split_matches_direct_evaluation(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    k, n = k_n
    random = Recorder(data)
    shares = split(secret, k, n, random)
    assert len(random.drawn) == (k - 1) * len(secret)
    rows = [random.drawn[i * len(secret) : (i + 1) * len(secret)] for i in range(k - 1)]
    assert [s.x for s in shares] == list(range(1, n + 1))
    for share in shares:
        assert share.k == k
        assert share.tag == hashlib.sha256(b"medledger/shamir/v1\x00" + secret).digest()[:8]
        expected = [
            reference_evaluate([byte, *(row[j] for row in rows)], share.x)
            for j, byte in enumerate(secret)
        ]
        assert list(share.y) == expected


@pytest.mark.parametrize(
    ("secret", "k", "n", "random_bytes", "parameter"),
    [
        (b"", 2, 3, fixed(1), "secret"),
        (b"\x00" * (MAX_SECRET_BYTES + 1), 2, 3, fixed(1), "secret"),
        (b"key", 1, 3, fixed(1), "k"),
        (b"key", 0, 3, fixed(1), "k"),
        (b"key", 4, 3, fixed(1), "k"),
        (b"key", True, 3, fixed(1), "k"),
        (b"key", 2, 1, fixed(1), "n"),
        (b"key", 2, 256, fixed(1), "n"),
        (b"key", 2, 3, lambda size: b"\x01" * (size - 1), "random_bytes"),
        (b"key", 2, 3, lambda size: b"\x01" * (size + 1), "random_bytes"),
        (b"key", 2, 3, lambda size: bytearray(b"\x01" * size), "random_bytes"),
    ],
    ids=[
        "empty-secret",
        "secret-too-long",
        "k-1",
        "k-0",
        "k-above-n",
        "k-bool",
        "n-1",
        "n-256",
        "random-short",
        "random-long",
        "random-not-bytes",
    ],
)
def test_split_rejects(
    secret: bytes, k: int, n: int, random_bytes: Callable[[int], bytes], parameter: str
) -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        split(secret, k, n, random_bytes)
    assert excinfo.value.parameter == parameter


def test_largest_split_255_of_255() -> None:
    secret = b"\x00\xff"  # 2 bytes: 255 shares of a degree-254 polynomial are ~130k products
    shares = split(secret, 255, 255, lambda size: bytes(i % 251 for i in range(size)))
    assert combine(shares[::-1], k=255) == secret
    with pytest.raises(VerificationError):
        combine(shares[:254])


def test_largest_secret() -> None:
    secret = bytes(i % 256 for i in range(MAX_SECRET_BYTES))
    shares = split(secret, 2, 3, fixed(0xA5))
    assert combine(shares[1:]) == secret
    assert len(format_share(shares[2])) <= MAX_SHARE_TEXT_CHARS


# --- combine ---------------------------------------------------------------------------------
@FAST
@given(SECRETS, thresholds(), st.data())
def test_any_k_or_more_shares_recover_the_secret(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    k, n = k_n
    shares = split(secret, k, n, Recorder(data))
    count = data.draw(st.integers(k, n), label="count")
    chosen = data.draw(st.permutations(shares), label="order")[:count]
    assert combine(chosen) == secret
    assert combine(chosen, k=k) == secret


@FAST
@given(SECRETS, thresholds(), st.data())
def test_k_minus_one_colluding_holders_get_an_error_not_the_secret(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    k, n = k_n
    shares = split(secret, k, n, Recorder(data))
    chosen = data.draw(st.permutations(shares), label="order")[: k - 1]
    with pytest.raises(VerificationError):
        combine(chosen)


@FAST
@given(SECRETS, thresholds(), st.data())
def test_forged_lower_threshold_is_caught_by_the_tag(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    # k - 1 holders rewrite k in their shares so the count check passes: interpolation gives
    # secret + c_(k-1) * prod(x) per byte, which is the secret only if every top coefficient
    # is 0 -- then the polynomial really has degree k - 2 and k - 1 shares do determine it.
    k, n = k_n
    assume(k >= 3)
    random = Recorder(data)
    shares = split(secret, k, n, random)
    assume(any(random.drawn[(k - 2) * len(secret) :]))
    chosen = data.draw(st.permutations(shares), label="order")[: k - 1]
    forged = [dataclasses.replace(s, k=k - 1) for s in chosen]
    with pytest.raises(VerificationError):
        combine(forged)


@FAST
@given(SECRETS, thresholds(), st.data())
def test_a_flipped_byte_in_one_share_fails(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    k, n = k_n
    shares = split(secret, k, n, Recorder(data))
    chosen = data.draw(st.permutations(shares), label="order")[: data.draw(st.integers(k, n))]
    victim = data.draw(st.integers(0, len(chosen) - 1), label="victim")
    position = data.draw(st.integers(0, len(secret) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    y = bytearray(chosen[victim].y)
    y[position] ^= mask
    chosen[victim] = dataclasses.replace(chosen[victim], y=bytes(y))
    with pytest.raises(VerificationError):
        combine(chosen)


@FAST
@given(SECRETS, thresholds(), st.data())
def test_a_flipped_tag_fails(secret: bytes, k_n: tuple[int, int], data: st.DataObject) -> None:
    k, n = k_n
    shares = split(secret, k, n, Recorder(data))
    bad_tag = bytes([shares[0].tag[0] ^ 1]) + shares[0].tag[1:]
    with pytest.raises(VerificationError):  # one share's tag differs from the others
        combine([dataclasses.replace(shares[0], tag=bad_tag), *shares[1:]])
    with pytest.raises(VerificationError):  # every tag rewritten: the secret does not match
        combine([dataclasses.replace(s, tag=bad_tag) for s in shares])


@FAST
@given(SECRETS, SECRETS, thresholds(), st.data())
def test_shares_from_two_splits_mixed_fail(
    secret_a: bytes, secret_b: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    assume(secret_a != secret_b)
    k, n = k_n
    shares_a = split(secret_a, k, n, Recorder(data))
    shares_b = split(secret_b, k, n, Recorder(data))
    from_b = data.draw(st.integers(1, n - 1), label="from_b")
    mixed = shares_a[from_b:] + shares_b[:from_b]  # all n x values, some of each split
    with pytest.raises(VerificationError):
        combine(data.draw(st.permutations(mixed), label="order"))


@FAST
@given(SECRETS, thresholds(), st.data())
def test_two_splits_of_one_secret_mixed_give_the_secret_or_fail(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    # Same secret, same tag, different polynomials: the mix is rarely on one polynomial, but
    # whatever happens, the result is never garbage.
    k, n = k_n
    shares_a = split(secret, k, n, Recorder(data))
    shares_b = split(secret, k, n, Recorder(data))
    from_b = data.draw(st.integers(1, n - 1), label="from_b")
    try:
        result = combine(shares_a[from_b:] + shares_b[:from_b])
    except VerificationError:
        return
    assert result == secret


@FAST
@given(SECRETS, thresholds(), st.data())
def test_a_mutated_share_text_never_yields_a_wrong_secret(
    secret: bytes, k_n: tuple[int, int], data: st.DataObject
) -> None:
    # Share texts are canonical, so a changed text is a changed share (or no share at all).
    k, n = k_n
    texts = [format_share(s) for s in split(secret, k, n, Recorder(data))]
    victim = data.draw(st.integers(0, n - 1), label="victim")
    position = data.draw(st.integers(0, len(texts[victim]) - 1), label="position")
    replacement = data.draw(st.sampled_from("0123456789abcdefABCDEF-_:=+/ "), label="char")
    text = texts[victim]
    assume(text[position] != replacement)
    texts[victim] = text[:position] + replacement + text[position + 1 :]
    try:
        result = combine([parse_share(t) for t in texts])
    except (InvalidInputError, VerificationError):
        return
    assert result == secret  # only if the changed x happens to lie on the polynomial


def test_the_same_share_entered_twice_is_rejected() -> None:
    shares = split(b"patient key", 2, 3, fixed(7))
    with pytest.raises(InvalidInputError) as excinfo:
        combine([shares[0], shares[1], shares[0]])
    assert excinfo.value.parameter == "shares"


def test_two_shares_with_one_x_and_different_y_are_rejected() -> None:
    shares = split(b"patient key", 2, 3, fixed(7))
    forged = dataclasses.replace(shares[1], x=shares[0].x)
    with pytest.raises(InvalidInputError) as excinfo:
        combine([shares[0], forged])
    assert excinfo.value.parameter == "shares"


def test_no_shares_is_rejected() -> None:
    with pytest.raises(InvalidInputError) as excinfo:
        combine([])
    assert excinfo.value.parameter == "shares"


def test_shares_of_different_lengths_fail() -> None:
    short = split(b"key", 2, 3, fixed(7))
    longer = split(b"key!", 2, 3, fixed(7))
    with pytest.raises(VerificationError):
        combine([short[0], longer[1]])


def test_shares_with_different_thresholds_fail() -> None:
    two = split(b"key", 2, 3, fixed(7))
    three = split(b"key", 3, 3, fixed(7))
    with pytest.raises(VerificationError):
        combine([two[0], three[1], three[2]])


def test_expected_threshold_is_enforced() -> None:
    shares = split(b"escrow key", 3, 5, fixed(9))
    assert combine(shares[:3], k=3) == b"escrow key"
    with pytest.raises(VerificationError):
        combine(shares[:3], k=4)  # the caller's policy says 4-of-n: these shares are not it
    with pytest.raises(VerificationError):
        combine(shares[:3], k=2)
    with pytest.raises(InvalidInputError) as excinfo:
        combine(shares[:3], k=1)
    assert excinfo.value.parameter == "k"


# --- Share -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"x": 0}, "x"),
        ({"x": 256}, "x"),
        ({"x": True}, "x"),
        ({"y": b""}, "y"),
        ({"y": b"\x00" * (MAX_SECRET_BYTES + 1)}, "y"),
        ({"y": bytearray(b"\x01")}, "y"),
        ({"k": 1}, "k"),
        ({"k": 256}, "k"),
        ({"tag": b"\x00" * 7}, "tag"),
        ({"tag": b"\x00" * 9}, "tag"),
        ({"tag": bytearray(8)}, "tag"),
    ],
    ids=lambda v: repr(v)[:30] if isinstance(v, dict) else str(v),
)
def test_share_constructor_rejects(fields: dict[str, Any], parameter: str) -> None:
    valid: dict[str, Any] = {"x": 1, "y": b"\x01", "k": 2, "tag": TAG}
    with pytest.raises(InvalidInputError) as excinfo:
        Share(**{**valid, **fields})
    assert excinfo.value.parameter == parameter


def test_share_repr_leaves_out_the_secret_material() -> None:
    share = Share(x=1, y=b"SECRET-SHARE-BYTES", k=2, tag=TAG)
    assert "SECRET" not in repr(share)
    assert "x=1" in repr(share)


# --- share text ------------------------------------------------------------------------------
SHARES = st.builds(
    Share,
    x=st.integers(1, 255),
    y=st.binary(min_size=1, max_size=64),
    k=st.integers(2, 255),
    tag=st.binary(min_size=8, max_size=8),
)


@FAST
@given(SHARES)
def test_format_parse_round_trip(share: Share) -> None:
    text = format_share(share)
    assert text.isascii()
    assert parse_share(text) == share
    assert format_share(parse_share(text)) == text


def test_longest_share_text_parses() -> None:
    share = Share(x=255, y=b"\xff" * MAX_SECRET_BYTES, k=255, tag=TAG)
    text = format_share(share)
    assert len(text) == MAX_SHARE_TEXT_CHARS
    assert parse_share(text) == share
    with pytest.raises(TooLargeError) as excinfo:
        parse_share(text + "A")
    assert excinfo.value.parameter == "share"


VALID = "medledger-share-v1:2:2:Tg:" + TAG.hex()
MALFORMED = [
    ("", "share", "empty"),
    ("medledger-share-v1:2:2:Tg", "share", "four-parts"),
    (VALID + ":", "share", "six-parts"),
    (VALID.replace(":", "\uff1a"), "share", "fullwidth-colons"),
    ("x" * (MAX_SHARE_TEXT_CHARS + 1), "share", "too-long"),
    (VALID.replace("-v1", "-v2"), "version", "version-2"),
    (VALID.upper(), "version", "upper-case"),
    (" " + VALID, "version", "leading-space"),
    (VALID.replace(":2:2:", ":02:2:"), "k", "k-leading-zero"),
    (VALID.replace(":2:2:", ":+2:2:"), "k", "k-plus"),
    (VALID.replace(":2:2:", "::2:"), "k", "k-empty"),
    (VALID.replace(":2:2:", ":1:2:"), "k", "k-1"),
    (VALID.replace(":2:2:", ":0:2:"), "k", "k-0"),
    (VALID.replace(":2:2:", ":256:2:"), "k", "k-256"),
    (VALID.replace(":2:2:", ":1000:2:"), "k", "k-4-digits"),
    (VALID.replace(":2:2:", ":\u0662:2:"), "k", "k-arabic-indic-digit"),
    (VALID.replace(":2:2:", ":2 :2:"), "k", "k-space"),
    (VALID.replace(":2:2:", ":2:0:"), "x", "x-0"),
    (VALID.replace(":2:2:", ":2:256:"), "x", "x-256"),
    (VALID.replace(":2:2:", ":2:-1:"), "x", "x-negative"),
    (VALID.replace(":2:2:", ":2:0x2:"), "x", "x-hex"),
    (VALID.replace(":Tg:", "::"), "y", "y-empty"),
    (VALID.replace(":Tg:", ":Tg==:"), "y", "y-padded"),
    (VALID.replace(":Tg:", ":Tg=:"), "y", "y-half-padded"),
    (VALID.replace(":Tg:", ":T:"), "y", "y-one-char"),
    (VALID.replace(":Tg:", ":Th:"), "y", "y-nonzero-trailing-bits"),
    (VALID.replace(":Tg:", ":T+:"), "y", "y-standard-alphabet-plus"),
    (VALID.replace(":Tg:", ":T/:"), "y", "y-standard-alphabet-slash"),
    (VALID.replace(":Tg:", ":T g:"), "y", "y-space"),
    (VALID.replace(":Tg:", ":Tg.:"), "y", "y-dot"),
    (VALID.replace(":Tg:", ":" + "A" * 1367 + ":"), "y", "y-1025-bytes"),
    (VALID.replace(TAG.hex(), TAG.hex().upper()), "tag", "tag-upper-case"),
    (VALID[:-1], "tag", "tag-15-digits"),
    (VALID + "0", "tag", "tag-17-digits"),
    (VALID.replace(TAG.hex(), "zz" * 8), "tag", "tag-not-hex"),
    (VALID + "\n", "tag", "trailing-newline"),
    (VALID.replace(TAG.hex(), ""), "tag", "tag-empty"),
]


@pytest.mark.parametrize(
    ("text", "parameter"),
    [(text, parameter) for text, parameter, _ in MALFORMED],
    ids=[name for _, _, name in MALFORMED],
)
def test_malformed_share_texts_are_rejected(text: str, parameter: str) -> None:
    assert parse_share(VALID).y == b"\x4e"  # the unmutated text is fine
    with pytest.raises(InvalidInputError) as excinfo:
        parse_share(text)
    assert excinfo.value.parameter == parameter
