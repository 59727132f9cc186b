"""The genesis file (medledger.core.ledger.genesis): strict parsing, canonical bytes, state."""

from __future__ import annotations

import hashlib
import json

import pytest

from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.canonical import DOMAIN_GENESIS, canonical
from medledger.core.ledger.contracts.common import Participant, participant_key
from medledger.core.ledger.genesis import (
    MAX_AUTHORITIES,
    MAX_GENESIS_BYTES,
    Authority,
    Genesis,
    genesis_hash,
    genesis_writes,
    parse_genesis,
)
from medledger.errors import InvalidInputError, TooLargeError


def did(n: int) -> str:
    return did_from_public_key(bytes([n]) * 32)


AUTHORITIES = (
    Authority(did(1), "St. Example Hospital", ("regulator", "hospital")),
    Authority(did(2), "Example Identity Provider", ("identity-provider",)),
)
GENESIS = Genesis("medledger-test", 1_700_000_000_000, AUTHORITIES, 250, 100)


def raw(**changes: object) -> bytes:
    """The genesis file as JSON, with top-level fields replaced (or removed when ``...``)."""
    obj = json.loads(GENESIS.to_json())
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def authority(**changes: object) -> dict[str, object]:
    obj: dict[str, object] = {"did": did(1), "name": "Hospital", "roles": ["hospital"]}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def test_round_trip() -> None:
    assert parse_genesis(GENESIS.to_json()) == GENESIS


def test_to_json_is_canonical_and_sorts_roles() -> None:
    data = GENESIS.to_json()
    assert data == canonical(json.loads(data))
    assert json.loads(data)["authorities"][0]["roles"] == ["hospital", "regulator"]
    assert AUTHORITIES[0].roles == ("hospital", "regulator")


def test_block_limits_default() -> None:
    g = parse_genesis(raw(block_max_txs=..., block_interval_ms=...))
    assert (g.block_max_txs, g.block_interval_ms) == (500, 200)


def test_genesis_hash_is_domain_separated_sha256_of_the_canonical_bytes() -> None:
    expected = hashlib.sha256(DOMAIN_GENESIS + GENESIS.to_json()).digest()
    assert genesis_hash(GENESIS) == expected
    assert genesis_hash(parse_genesis(raw(network="other-net"))) != expected


def test_genesis_writes_register_the_authorities() -> None:
    writes = genesis_writes(GENESIS)
    assert set(writes) == {participant_key(did(1)), participant_key(did(2))}
    record = Participant.from_state(writes[participant_key(did(1))])
    assert record == Participant(
        did=did(1),
        kind="organization",
        roles=("hospital", "regulator"),
        organization=None,
        name="St. Example Hospital",
        authority=True,
        active=True,
        registered_by="genesis",
        registered_at=0,
    )
    for value in writes.values():
        assert value == canonical(json.loads(value))


def test_name_of_200_characters_is_accepted() -> None:
    g = parse_genesis(raw(authorities=[authority(name="n" * 200)]))
    assert g.authorities[0].name == "n" * 200


@pytest.mark.parametrize(
    ("data", "parameter"),
    [
        pytest.param(b"\xff{}", "genesis", id="not-utf8"),
        pytest.param(b"{", "genesis", id="not-json"),
        pytest.param(b"[]", "genesis", id="not-an-object"),
        pytest.param(raw()[:-1] + b',"network":"x"}', "genesis", id="duplicate-key"),
        pytest.param(raw(time_ms=1.5), "genesis", id="float"),
        pytest.param(raw()[:-1] + b',"x":NaN}', "genesis", id="nan"),
        pytest.param(raw()[:-1] + b',"x":-Infinity}', "genesis", id="infinity"),
        pytest.param(raw(time_ms=2**53), "genesis", id="integer-out-of-range"),
        pytest.param(raw(extra=1), "genesis", id="unknown-field"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "genesis", id="deep-nesting"),
        pytest.param(raw(network=...), "network", id="missing-network"),
        pytest.param(raw(network="Bad Net"), "network", id="bad-network"),
        pytest.param(raw(time_ms=-1), "time_ms", id="negative-time"),
        pytest.param(raw(time_ms=True), "time_ms", id="bool-time"),
        pytest.param(raw(authorities=...), "authorities", id="missing-authorities"),
        pytest.param(raw(authorities=[]), "authorities", id="no-authority"),
        pytest.param(raw(authorities={}), "authorities", id="authorities-not-a-list"),
        pytest.param(
            raw(authorities=[authority(did=did(n)) for n in range(MAX_AUTHORITIES + 1)]),
            "authorities",
            id="too-many-authorities",
        ),
        pytest.param(raw(authorities=[authority(), authority()]), "authorities", id="dup-did"),
        pytest.param(raw(authorities=[authority(x=1)]), "authorities", id="authority-extra"),
        pytest.param(raw(authorities=[authority(roles=...)]), "authorities", id="no-roles"),
        pytest.param(raw(authorities=["x"]), "authorities", id="authority-not-object"),
        pytest.param(raw(authorities=[authority(did="did:web:x")]), "did", id="not-did-key"),
        pytest.param(raw(authorities=[authority(name="n" * 201)]), "name", id="long-name"),
        pytest.param(raw(authorities=[authority(name="")]), "name", id="empty-name"),
        pytest.param(raw(authorities=[authority(name="a\nb")]), "name", id="control-char"),
        pytest.param(raw(authorities=[authority(name=" a")]), "name", id="untrimmed-name"),
        pytest.param(raw(authorities=[authority(name=7)]), "name", id="name-not-string"),
        pytest.param(raw(authorities=[authority(roles=["nurse"])]), "roles", id="unknown-role"),
        pytest.param(raw(authorities=[authority(roles=[])]), "roles", id="empty-roles"),
        pytest.param(raw(authorities=[authority(roles="lab")]), "roles", id="roles-not-list"),
        pytest.param(
            raw(authorities=[authority(roles=["lab", "lab"])]), "roles", id="duplicate-role"
        ),
        pytest.param(raw(block_max_txs=0), "block_max_txs", id="zero-block"),
        pytest.param(raw(block_interval_ms=10**6), "block_interval_ms", id="slow-blocks"),
    ],
)
def test_malformed_genesis_is_refused(data: bytes, parameter: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_genesis(data)
    assert e.value.parameter == parameter


def test_oversized_genesis_is_refused() -> None:
    with pytest.raises(TooLargeError):
        parse_genesis(b" " * (MAX_GENESIS_BYTES + 1))


def test_constructor_enforces_the_same_invariants() -> None:
    with pytest.raises(InvalidInputError):
        Genesis("medledger-test", 0, ())
    with pytest.raises(InvalidInputError):
        Genesis("medledger-test", 0, (AUTHORITIES[0], AUTHORITIES[0]))
    with pytest.raises(InvalidInputError):
        Authority(did(1), "Lab", ("lab", "physician"))
