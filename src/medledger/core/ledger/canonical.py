"""Canonical bytes: RFC 8785 JSON (JCS) with per-object domain-separation prefixes.

Every signed or hashed object is ``DOMAIN || JCS(object)``. JSON here is restricted to what
canonicalises the same everywhere: objects with string keys, arrays, strings, booleans, null,
and integers within ±(2**53 - 1). No floats: consent windows and times are integers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import rfc8785

from medledger.errors import InvalidInputError

DOMAIN_TX = b"medledger/tx/v1\x00"
DOMAIN_BLOCK = b"medledger/block/v1\x00"
DOMAIN_RESULT = b"medledger/tx-result/v1\x00"
DOMAIN_GENESIS = b"medledger/genesis/v1\x00"

MAX_SAFE_INTEGER = 2**53 - 1

JSON = Any  # a value of the restricted JSON data model above


def check_json(value: JSON, *, max_depth: int = 16, parameter: str = "payload") -> None:
    """Raise ``InvalidInputError`` unless ``value`` is in the restricted JSON model."""
    stack: list[tuple[JSON, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise InvalidInputError(
                f"{parameter} is nested deeper than {max_depth}", parameter=parameter
            )
        if item is None or isinstance(item, (bool, str)):
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise InvalidInputError(
                    f"{parameter} has an integer out of range", parameter=parameter
                )
            continue
        if isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
            continue
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise InvalidInputError(f"{parameter} has a non-string key", parameter=parameter)
            stack.extend((v, depth + 1) for v in item.values())
            continue
        raise InvalidInputError(
            f"{parameter} holds a {type(item).__name__}; only integers, strings, booleans, null, "
            "arrays and objects are allowed",
            parameter=parameter,
        )


def canonical(value: JSON) -> bytes:
    """RFC 8785 bytes of a value already checked with ``check_json``.

    For the restricted model, JCS equals ``json.dumps`` with sorted keys and no whitespace
    (same integer form, same escapes: only ``"``, ``\\`` and U+0000-U+001F), except that JCS
    sorts keys by UTF-16 code units, which differs from Python's code-point order only for
    characters above U+D7FF. So the C-accelerated ``json`` serialises, and anything holding
    such a character (or a lone surrogate) goes to the reference ``rfc8785`` implementation.
    A property test checks the two agree.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        return rfc8785.dumps(value)
    if text and not text.isascii() and max(text) > "\ud7ff":
        return rfc8785.dumps(value)
    return text.encode("utf-8")


def domain_hash(domain: bytes, value: Mapping[str, JSON]) -> bytes:
    return hashlib.sha256(domain + canonical(dict(value))).digest()


def canonical_document(value: JSON) -> bytes:
    """RFC 8785 bytes of an off-chain document (a FHIR resource), floats included.

    Ledger objects use the restricted model above; clinical documents carry FHIR decimals,
    which RFC 8785 serialises as ECMAScript numbers. ``InvalidInputError`` for values JSON
    cannot hold (NaN, infinities, lone surrogates).
    """
    try:
        return rfc8785.dumps(value)
    except (TypeError, ValueError, RecursionError, rfc8785.CanonicalizationError) as e:
        raise InvalidInputError("the document cannot be canonicalised", parameter="content") from e
