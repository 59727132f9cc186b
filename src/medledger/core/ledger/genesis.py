"""The genesis file: a network's fixed starting configuration and the state it begins with.

What this module handles: the ``Genesis`` value (network id, start time, authorities, block
limits), parsing a genesis file strictly (``parse_genesis``: at most ``MAX_GENESIS_BYTES`` of
UTF-8 JSON; no duplicate keys, floats, NaN or unknown fields), its canonical bytes and hash
(``SHA-256(DOMAIN_GENESIS || JCS(genesis))``), and the state writes that register its
authorities as active organizations (``genesis_writes``).

Proof of authority: the authorities are exactly the genesis list. No contract makes or removes
one (the participants contract refuses to deactivate an authority); changing the list is a
governance step, left to a later issue. Not handled here: reading the file from disk, choosing
its time (both at the edge).

Format (canonical JSON)::

    {"network": "...", "time_ms": 0, "block_max_txs": 500, "block_interval_ms": 200,
     "authorities": [{"did": "did:key:z...", "name": "St. Example Hospital",
                      "roles": ["hospital"]}, ...]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import (
    DOMAIN_GENESIS,
    JSON,
    MAX_SAFE_INTEGER,
    canonical,
    check_json,
    domain_hash,
)
from medledger.core.ledger.contracts.common import (
    GENESIS_REGISTRAR,
    ORGANIZATION,
    Participant,
    check_name,
    parse_roles,
    participant_key,
)
from medledger.errors import InvalidInputError, TooLargeError

#: Limits on a genesis file, which an operator hands to every node.
MAX_GENESIS_BYTES: Final = 256 * 1024
MAX_AUTHORITIES: Final = 128
MAX_BLOCK_TXS: Final = 100_000
MIN_BLOCK_INTERVAL_MS: Final = 10
MAX_BLOCK_INTERVAL_MS: Final = 60_000
#: The same network ids a transaction may name (``medledger.core.ledger.tx``).
_NETWORK: Final = re.compile(r"[a-z0-9][a-z0-9.\-]{0,62}")
_FIELDS: Final = frozenset(
    {"network", "time_ms", "authorities", "block_max_txs", "block_interval_ms"}
)
_AUTHORITY_FIELDS: Final = frozenset({"did", "name", "roles"})


@dataclass(frozen=True, slots=True)
class Authority:
    """An authority organization: its node's did:key, display name and organization roles."""

    did: str
    name: str
    roles: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.did, str) or not is_did_key(self.did):
            raise InvalidInputError("did: must be an Ed25519 did:key", parameter="did")
        check_name(self.name)
        object.__setattr__(self, "roles", parse_roles(ORGANIZATION, self.roles))

    def to_json(self) -> dict[str, JSON]:
        return {"did": self.did, "name": self.name, "roles": list(self.roles)}


@dataclass(frozen=True, slots=True)
class Genesis:
    """A network's genesis; one that exists is valid."""

    network: str
    time_ms: int
    authorities: tuple[Authority, ...]
    block_max_txs: int = 500
    block_interval_ms: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not _NETWORK.fullmatch(self.network):
            raise InvalidInputError("network: must be a lowercase id", parameter="network")
        _check_int("time_ms", self.time_ms, 0, MAX_SAFE_INTEGER)
        _check_int("block_max_txs", self.block_max_txs, 1, MAX_BLOCK_TXS)
        _check_int(
            "block_interval_ms",
            self.block_interval_ms,
            MIN_BLOCK_INTERVAL_MS,
            MAX_BLOCK_INTERVAL_MS,
        )
        object.__setattr__(self, "authorities", tuple(self.authorities))
        if not 0 < len(self.authorities) <= MAX_AUTHORITIES:
            raise InvalidInputError(
                f"authorities: must list 1-{MAX_AUTHORITIES} authorities", parameter="authorities"
            )
        if not all(isinstance(a, Authority) for a in self.authorities):
            raise InvalidInputError(
                "authorities: must be Authority values", parameter="authorities"
            )
        if len({a.did for a in self.authorities}) != len(self.authorities):
            raise InvalidInputError("authorities: a did is listed twice", parameter="authorities")

    def to_dict(self) -> dict[str, JSON]:
        return {
            "network": self.network,
            "time_ms": self.time_ms,
            "authorities": [a.to_json() for a in self.authorities],
            "block_max_txs": self.block_max_txs,
            "block_interval_ms": self.block_interval_ms,
        }

    def to_json(self) -> bytes:
        """The canonical (RFC 8785) bytes; ``parse_genesis`` reads them back to an equal value."""
        return canonical(self.to_dict())


def genesis_hash(genesis: Genesis) -> bytes:
    """``SHA-256(DOMAIN_GENESIS || JCS(genesis))``: what every block of the network builds on."""
    return domain_hash(DOMAIN_GENESIS, genesis.to_dict())


def genesis_writes(genesis: Genesis) -> dict[str, bytes]:
    """The state at height 0: each authority registered as an active authority organization."""
    writes: dict[str, bytes] = {}
    for authority in genesis.authorities:
        record = Participant(
            did=authority.did,
            kind=ORGANIZATION,
            roles=authority.roles,
            organization=None,
            name=authority.name,
            authority=True,
            active=True,
            registered_by=GENESIS_REGISTRAR,
            registered_at=0,
        )
        writes[participant_key(authority.did)] = record.to_state()
    return writes


def parse_genesis(raw: bytes) -> Genesis:
    """Parse a genesis file; ``InvalidInputError`` (``TooLargeError``) naming the culprit."""
    obj = _object(_loads_strict(raw), _FIELDS, "genesis")
    for name in ("network", "time_ms", "authorities"):
        if name not in obj:
            raise InvalidInputError(f"{name}: missing", parameter=name)
    authorities = obj["authorities"]
    if not isinstance(authorities, list) or len(authorities) > MAX_AUTHORITIES:
        raise InvalidInputError(
            f"authorities: must be a list of 1-{MAX_AUTHORITIES} authorities",
            parameter="authorities",
        )
    return Genesis(
        network=obj["network"],
        time_ms=obj["time_ms"],
        authorities=tuple(_authority(a) for a in authorities),
        block_max_txs=obj.get("block_max_txs", 500),
        block_interval_ms=obj.get("block_interval_ms", 200),
    )


def _authority(value: JSON) -> Authority:
    obj = _object(value, _AUTHORITY_FIELDS, "authorities")
    if set(obj) != _AUTHORITY_FIELDS:
        raise InvalidInputError(
            "authorities: each has did, name and roles", parameter="authorities"
        )
    if not isinstance(obj["roles"], list):
        raise InvalidInputError("roles: must be a list of roles", parameter="roles")
    return Authority(did=obj["did"], name=obj["name"], roles=tuple(obj["roles"]))


def _object(value: JSON, fields: frozenset[str], parameter: str) -> Mapping[str, JSON]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{parameter}: must be a JSON object", parameter=parameter)
    unknown = sorted(set(value) - fields)
    if unknown:
        raise InvalidInputError(
            f"{parameter}: unknown field {unknown[0][:40]!r}", parameter=parameter
        )
    return value


def _loads_strict(raw: bytes) -> JSON:
    """UTF-8 JSON with no duplicate keys, floats or NaN, in the restricted model."""
    if len(raw) > MAX_GENESIS_BYTES:
        raise TooLargeError(f"genesis: larger than {MAX_GENESIS_BYTES} bytes", parameter="genesis")
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidInputError(f"genesis: not valid JSON ({e})", parameter="genesis") from e
    check_json(value, parameter="genesis")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, JSON]]) -> dict[str, JSON]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidInputError("genesis: a key is repeated in an object", parameter="genesis")
    return obj


def _no_float(token: str) -> JSON:
    raise InvalidInputError(f"genesis: {token[:20]!r} is not an integer", parameter="genesis")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name}: must be an integer in {low}..{high}", parameter=name)
