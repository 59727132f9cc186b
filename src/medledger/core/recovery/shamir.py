"""Shamir's secret sharing over GF(2^8): split a key k-of-n, recombine it from any k shares.

Used for key recovery: a patient's key split among guardians, an organization's emergency
escrow key split among custodians. What this module handles:

- GF(2^8) arithmetic modulo the AES polynomial x^8 + x^4 + x^3 + x + 1 (FIPS-197 §4.2):
  ``gf_add``, ``gf_mul``, ``gf_inv``, ``gf_div``;
- ``split(secret, k, n, random_bytes)``: one random polynomial of degree k - 1 per secret byte
  (Shamir 1979, "How to Share a Secret"), evaluated at x = 1..n;
- ``combine(shares)``: Lagrange interpolation at x = 0, then the integrity check below;
- ``format_share`` / ``parse_share``: the one-line text a guardian keeps on paper.

Not handled here: randomness (the caller passes ``random_bytes``, e.g. ``secrets.token_bytes``;
split never draws any itself), storing, sending or printing shares, choosing guardians, and
checking the recovered key against its public key or did:key -- callers should do that last
step, it is the only check that authenticates a recovery. Pure: no I/O.

**Constant time (best effort).** Multiplication is a shift-and-xor loop of exactly 8 rounds
whose conditional steps are masks (``a & -(b & 1)``), not branches, and there are no log/exp
tables: a table indexed by a secret byte leaks it through the cache, as in the AES table
timing attacks. Inversion is a fixed chain of 13 multiplications (a^254 = a^-1, since
a^255 = 1). This removes secret-dependent branches and memory indexing at the Python level;
CPython itself gives no timing guarantees, which is acceptable for an offline recovery
ceremony but is why this is not called constant time. The Lagrange weights depend only on the
public x coordinates, so the branches that check them (zero, duplicates) leak nothing.

**Integrity tag.** Plain Shamir cannot tell k - 1 shares, a corrupted share or shares of two
different splits from a correct set: interpolation silently returns garbage. Every share of
one split therefore carries ``k`` and ``tag`` = the first 8 bytes of
SHA-256(``b"medledger/shamir/v1\\x00"`` || secret), and ``combine`` interpolates through *all*
the shares it is given (any k or more points of a degree k - 1 polynomial give the same value
at 0) and raises ``VerificationError`` unless the result matches the tag. A wrong result passes
with probability 2^-64. The tag is not authentication: whoever can write a whole share set can
split a secret of their choice, hence the check against the public key above.

**What the tag leaks.** Without the tag, fewer than k shares reveal nothing at all about the
secret (information-theoretic secrecy). With it, one share holder learns a 64-bit fingerprint
that lets them *recognize* the secret, though not find it. For the secrets this is meant for
-- 32-byte uniformly random keys, such as Ed25519 seeds and AES keys -- that is no loss: the
search space stays 2^256 (2^192 even if the tag's 64 bits were subtracted), and the public key
or did:key of the same key already identifies it exactly, so the tag confirms nothing an
attacker could not confirm already. It *would* enable offline guessing of a low-entropy
secret (a passphrase), so split only high-entropy keys.

**Coefficients.** ``random_bytes((k - 1) * len(secret))`` is called once; coefficient i
(1..k - 1) of secret byte j is byte ``(i - 1) * len(secret) + j``. All coefficients are uniform
in 0..255, including the top one: forcing it to be non-zero would bias the polynomial and let
k - 1 shares rule out one value of each secret byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from medledger.errors import InvalidInputError, TooLargeError, VerificationError

#: FIPS-197 §4.2: m(x) = x^8 + x^4 + x^3 + x + 1.
AES_POLYNOMIAL = 0x11B
_REDUCTION = AES_POLYNOMIAL & 0xFF  # what x^8 becomes after one reduction step

#: Domain separation for the integrity tag (one prefix per object type, house style).
TAG_DOMAIN = b"medledger/shamir/v1\x00"
TAG_SIZE = 8

MIN_THRESHOLD = 2
#: x runs over the non-zero elements of GF(2^8).
MAX_SHARES = 255
MAX_SECRET_BYTES = 1024

SHARE_TEXT_VERSION = "medledger-share-v1"
#: Longest ``format_share`` output: version, k and x of 3 digits, unpadded base64url of the
#: largest secret, the hex tag and 4 separators.
MAX_SHARE_TEXT_CHARS = (
    len(SHARE_TEXT_VERSION) + 3 + 3 + (4 * MAX_SECRET_BYTES + 2) // 3 + 2 * TAG_SIZE + 4
)

_DECIMAL = re.compile(r"[1-9][0-9]{0,2}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX_TAG = re.compile(rf"[0-9a-f]{{{2 * TAG_SIZE}}}")


# --- GF(2^8) ---------------------------------------------------------------------------------
def _mul(a: int, b: int) -> int:
    # Russian-peasant multiplication: 8 rounds whatever the operands, masks instead of branches.
    product = 0
    for _ in range(8):
        product ^= a & -(b & 1)
        a = ((a << 1) ^ (_REDUCTION & -(a >> 7))) & 0xFF
        b >>= 1
    return product


def _inv(a: int) -> int:
    # a^254 = a^2 * a^4 * ... * a^128: 7 squarings and 6 multiplications. Maps 0 to 0.
    square = _mul(a, a)
    result = square
    for _ in range(6):
        square = _mul(square, square)
        result = _mul(result, square)
    return result


def _check_element(value: int, name: str) -> None:
    if isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise InvalidInputError(f"{name} must be a GF(2^8) element in 0..255", parameter=name)


def gf_add(a: int, b: int) -> int:
    """a + b in GF(2^8) (FIPS-197 §4.1): xor. Also a - b: every element is its own negative."""
    _check_element(a, "a")
    _check_element(b, "b")
    return a ^ b


def gf_mul(a: int, b: int) -> int:
    """a * b in GF(2^8) modulo the AES polynomial (FIPS-197 §4.2), without tables or branches."""
    _check_element(a, "a")
    _check_element(b, "b")
    return _mul(a, b)


def gf_inv(a: int) -> int:
    """The multiplicative inverse a^-1 = a^254 of a non-zero element (FIPS-197 §4.2)."""
    _check_element(a, "a")
    if a == 0:
        raise InvalidInputError("0 has no multiplicative inverse", parameter="a")
    return _inv(a)


def gf_div(a: int, b: int) -> int:
    """a / b = a * b^-1 in GF(2^8), for non-zero b."""
    _check_element(a, "a")
    _check_element(b, "b")
    if b == 0:
        raise InvalidInputError("division by zero in GF(2^8)", parameter="b")
    return _mul(a, _inv(b))


# --- shares ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Share:
    """One point (x, y) of a split, with the split's threshold ``k`` and integrity ``tag``.

    ``y`` holds one byte per secret byte and is secret material: it is left out of ``repr``.
    """

    x: int
    y: bytes = field(repr=False)
    k: int
    tag: bytes

    def __post_init__(self) -> None:
        if isinstance(self.x, bool) or not 1 <= self.x <= MAX_SHARES:
            raise InvalidInputError(f"x must be in 1..{MAX_SHARES}", parameter="x")
        if not isinstance(self.y, bytes) or not 1 <= len(self.y) <= MAX_SECRET_BYTES:
            raise InvalidInputError(f"y must be 1..{MAX_SECRET_BYTES} bytes", parameter="y")
        if isinstance(self.k, bool) or not MIN_THRESHOLD <= self.k <= MAX_SHARES:
            raise InvalidInputError(f"k must be in {MIN_THRESHOLD}..{MAX_SHARES}", parameter="k")
        if not isinstance(self.tag, bytes) or len(self.tag) != TAG_SIZE:
            raise InvalidInputError(f"tag must be {TAG_SIZE} bytes", parameter="tag")


def _tag(secret: bytes) -> bytes:
    return hashlib.sha256(TAG_DOMAIN + secret).digest()[:TAG_SIZE]


def _check_threshold(k: int, *, maximum: int, name: str = "k") -> None:
    if isinstance(k, bool) or not MIN_THRESHOLD <= k <= maximum:
        raise InvalidInputError(f"{name} must be in {MIN_THRESHOLD}..{maximum}", parameter=name)


# --- split -----------------------------------------------------------------------------------
def split(secret: bytes, k: int, n: int, random_bytes: Callable[[int], bytes]) -> list[Share]:
    """Split ``secret`` into ``n`` shares, any ``k`` of which recombine it (2 <= k <= n <= 255).

    1. Check the secret (1..1024 bytes), ``n`` and ``k``.
    2. Draw the (k - 1) * len(secret) coefficient bytes with one ``random_bytes`` call.
    3. Evaluate each byte's polynomial at x = 1..n (Horner's rule), tagging every share.
    """
    if not isinstance(secret, bytes) or not 1 <= len(secret) <= MAX_SECRET_BYTES:
        raise InvalidInputError(f"secret must be 1..{MAX_SECRET_BYTES} bytes", parameter="secret")
    _check_threshold(n, maximum=MAX_SHARES, name="n")
    _check_threshold(k, maximum=n)
    coefficients = _draw_coefficients(len(secret), k, random_bytes)
    tag = _tag(secret)
    return [Share(x=x, y=_evaluate(secret, coefficients, x), k=k, tag=tag) for x in range(1, n + 1)]


def _draw_coefficients(size: int, k: int, random_bytes: Callable[[int], bytes]) -> list[bytes]:
    wanted = (k - 1) * size
    drawn = random_bytes(wanted)
    if not isinstance(drawn, bytes) or len(drawn) != wanted:
        raise InvalidInputError(
            f"random_bytes({wanted}) must return exactly {wanted} bytes", parameter="random_bytes"
        )
    return [drawn[i * size : (i + 1) * size] for i in range(k - 1)]


def _evaluate(secret: bytes, coefficients: Sequence[bytes], x: int) -> bytes:
    # Horner: (((c_{k-1} x + c_{k-2}) x + ...) x + c_1) x + secret, byte by byte.
    acc = list(coefficients[-1])
    for row in (*reversed(coefficients[:-1]), secret):
        acc = [_mul(a, x) ^ c for a, c in zip(acc, row, strict=True)]
    return bytes(acc)


# --- combine ---------------------------------------------------------------------------------
def combine(shares: Sequence[Share], k: int | None = None) -> bytes:
    """Recombine the secret from ``k`` or more shares of one split, or raise.

    ``k``, when given, is the threshold the caller expects (e.g. from its recorded recovery
    policy); the shares' own ``k`` is untrusted.

    1. ``InvalidInputError`` if there are no shares or two share one x (the same share twice).
    2. ``VerificationError`` if the shares disagree on k, tag or length (different splits),
       differ from the expected ``k``, or are fewer than k.
    3. Interpolate at 0 through all the shares (Lagrange), so every share is checked.
    4. ``VerificationError`` unless the result matches the tag: k - 1 shares with a forged k, a
       corrupted share or a mixed set fail here instead of yielding garbage.
    """
    first = _check_share_set(shares)
    if k is not None:
        _check_threshold(k, maximum=MAX_SHARES)
        if first.k != k:
            raise VerificationError(f"the shares are for a {first.k}-of-n split, expected {k}")
    if len(shares) < first.k:
        raise VerificationError(f"{first.k} shares are needed, got {len(shares)}")
    secret = _interpolate_at_zero(shares)
    if not hmac.compare_digest(_tag(secret), first.tag):
        raise VerificationError("the shares do not recombine to the secret they were split from")
    return secret


def _check_share_set(shares: Sequence[Share]) -> Share:
    if not shares:
        raise InvalidInputError("at least one share is needed", parameter="shares")
    seen: set[int] = set()
    for share in shares:
        if share.x in seen:
            raise InvalidInputError(f"two shares have x = {share.x}", parameter="shares")
        seen.add(share.x)
    first = shares[0]
    for share in shares[1:]:
        if share.k != first.k or len(share.y) != len(first.y):
            raise VerificationError("the shares come from different splits (k or length differ)")
        if not hmac.compare_digest(share.tag, first.tag):
            raise VerificationError("the shares come from different splits (tags differ)")
    return first


def _interpolate_at_zero(shares: Sequence[Share]) -> bytes:
    # f(0) = sum_i y_i * l_i, l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is xor. The
    # weights l_i use only the public x values; x_j - x_i != 0 because the x are distinct.
    weights: list[int] = []
    for share in shares:
        numerator = denominator = 1
        for other in shares:
            if other.x != share.x:
                numerator = _mul(numerator, other.x)
                denominator = _mul(denominator, other.x ^ share.x)
        weights.append(_mul(numerator, _inv(denominator)))
    secret = [0] * len(shares[0].y)
    for weight, share in zip(weights, shares, strict=True):
        secret = [s ^ _mul(weight, y) for s, y in zip(secret, share.y, strict=True)]
    return bytes(secret)


# --- text ------------------------------------------------------------------------------------
def format_share(share: Share) -> str:
    """``medledger-share-v1:<k>:<x>:<base64url(y), unpadded>:<tag, lowercase hex>``."""
    y = base64.urlsafe_b64encode(share.y).rstrip(b"=").decode("ascii")
    return f"{SHARE_TEXT_VERSION}:{share.k}:{share.x}:{y}:{share.tag.hex()}"


def parse_share(text: str) -> Share:
    """Parse ``format_share`` output, accepting exactly one spelling per share.

    Decimals without leading zeroes or signs, base64url (RFC 4648 §5) without padding and with
    zero trailing bits, lowercase hex; no whitespace (trim at the edge). ``InvalidInputError``
    names the failing part: ``share``, ``version``, ``k``, ``x``, ``y`` or ``tag``.
    """
    if len(text) > MAX_SHARE_TEXT_CHARS:
        raise TooLargeError(
            f"a share is at most {MAX_SHARE_TEXT_CHARS} characters", parameter="share"
        )
    parts = text.split(":")
    if len(parts) != 5:
        raise InvalidInputError(
            f"a share is {SHARE_TEXT_VERSION}:<k>:<x>:<y>:<tag>", parameter="share"
        )
    version, k_text, x_text, y_text, tag_text = parts
    if version != SHARE_TEXT_VERSION:
        raise InvalidInputError(
            f"a share must start with {SHARE_TEXT_VERSION}", parameter="version"
        )
    k = _parse_decimal(k_text, name="k")
    x = _parse_decimal(x_text, name="x")
    y = _parse_base64url(y_text)
    if not _HEX_TAG.fullmatch(tag_text):
        raise InvalidInputError(f"tag must be {2 * TAG_SIZE} lowercase hex digits", parameter="tag")
    return Share(x=x, y=y, k=k, tag=bytes.fromhex(tag_text))


def _parse_decimal(text: str, *, name: str) -> int:
    # int() would also take "+3", "0_3", " 3" and non-ASCII digits.
    if not _DECIMAL.fullmatch(text):
        raise InvalidInputError(
            f"{name} must be an ASCII decimal of 1-3 digits without leading zeroes",
            parameter=name,
        )
    return int(text)


def _parse_base64url(text: str) -> bytes:
    # urlsafe_b64decode ignores characters outside the alphabet, so check the alphabet first;
    # a length of 1 mod 4 is never valid, and re-encoding rejects non-zero trailing bits.
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidInputError("y must be unpadded base64url", parameter="y")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise InvalidInputError("y is not canonical base64url", parameter="y")
    return raw
