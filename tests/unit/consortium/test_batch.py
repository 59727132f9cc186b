"""Ordered batches (ADR 0016): one wire form, and the rule every node applies to them."""

from __future__ import annotations

import json

import pytest

from medledger.core.consortium.batch import (
    MAX_BATCH_BYTES,
    Batch,
    BatchRejectedError,
    decode_batch,
    seal_batch,
    verify_batch,
)
from medledger.core.identity.keys import ParticipantKey

AUTHORITY = ParticipantKey.from_seed(b"\x01" * 32)
STRANGER = ParticipantKey.from_seed(b"\x02" * 32)
BATCH_ID = "0123456789abcdef0123456789abcdef"


def batch(submitter: ParticipantKey = AUTHORITY, **kw: object) -> Batch:
    fields: dict[str, object] = {
        "network": "net",
        "batch_id": BATCH_ID,
        "submitter": submitter.did,
        "time_ms": 1_700_000_000_000,
        "txs": (b'{"a":1}', b'{"b":2}'),
    }
    fields.update(kw)
    return Batch(**fields)  # type: ignore[arg-type]


def check(raw: bytes, seen: set[str] | None = None) -> None:
    verify_batch(
        decode_batch(raw),
        network="net",
        authorities={AUTHORITY.did},
        seen=(seen or set()).__contains__,
    )


def test_a_sealed_batch_round_trips_and_verifies() -> None:
    sealed = seal_batch(batch(), AUTHORITY.sign)
    decoded = decode_batch(sealed.wire)
    assert decoded.batch == sealed.batch
    assert decoded.signature == sealed.signature
    check(sealed.wire)


def test_a_batch_signed_by_an_unregistered_key_is_rejected() -> None:
    sealed = seal_batch(batch(STRANGER), STRANGER.sign)
    with pytest.raises(BatchRejectedError) as e:
        check(sealed.wire)
    assert e.value.reason == "not_authority"


def test_a_batch_whose_signature_is_not_the_submitters_is_rejected() -> None:
    sealed = seal_batch(batch(AUTHORITY), STRANGER.sign)  # claims the authority, signed by another
    with pytest.raises(BatchRejectedError) as e:
        check(sealed.wire)
    assert e.value.reason == "bad_signature"


def test_a_replayed_batch_id_is_rejected_as_a_duplicate() -> None:
    sealed = seal_batch(batch(), AUTHORITY.sign)
    with pytest.raises(BatchRejectedError) as e:
        check(sealed.wire, seen={BATCH_ID})
    assert e.value.reason == "duplicate_batch"


def test_a_batch_for_another_network_is_rejected() -> None:
    sealed = seal_batch(batch(network="other"), AUTHORITY.sign)
    with pytest.raises(BatchRejectedError) as e:
        check(sealed.wire)
    assert e.value.reason == "wrong_network"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda w: w.replace(b'"v":1', b'"v": 1'),  # whitespace: not canonical
        lambda w: b" " + w,  # garbage prepended
        lambda w: w[:-1],  # truncated
        lambda w: w.replace(b'"time_ms":1700000000000', b'"time_ms":1700000000001'),  # signed field
        lambda w: w.replace(b'"v":1', b'"v":1.0'),  # a float
    ],
)
def test_a_malformed_or_altered_batch_is_rejected(mutate) -> None:  # type: ignore[no-untyped-def]
    wire = mutate(seal_batch(batch(), AUTHORITY.sign).wire)
    with pytest.raises(BatchRejectedError) as e:
        check(wire)
    assert e.value.reason in {"malformed", "bad_signature"}


def test_a_batch_over_one_mebibyte_is_refused_when_sealed() -> None:
    big = batch(txs=(b"x" * MAX_BATCH_BYTES,))
    with pytest.raises(Exception, match="at most"):
        seal_batch(big, AUTHORITY.sign)


def test_the_wire_is_jcs_with_the_batch_id_first() -> None:
    wire = seal_batch(batch(), AUTHORITY.sign).wire
    assert wire.startswith(b'{"batch_id":"' + BATCH_ID.encode())
    assert set(json.loads(wire)) == {
        "v",
        "network",
        "batch_id",
        "submitter",
        "time_ms",
        "txs",
        "sig",
    }
