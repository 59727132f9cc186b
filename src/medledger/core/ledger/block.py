"""Block headers: what a proposer signs about one block, and how anyone checks it.

A header is a JSON object, signed as ``DOMAIN_BLOCK || JCS(header)`` by the proposer's
did:key; the block hash is SHA-256 of those signed bytes. It commits to:

- ``prev``: the previous block's hash (for height 0, the genesis hash): a hash chain;
- ``tx_root``: the RFC 9162 root over the block's transactions' wire bytes, in order;
- ``results_root``: the RFC 9162 root over the block's transparency-log entries (each entry is
  one transaction with its outcome, see ``log_entry``);
- ``state_root``: the sparse Merkle root over all contract state after the block;
- ``log_size`` / ``log_root``: the transparency log after every entry of the block was appended.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import DOMAIN_BLOCK, JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.runtime import TxResult
from medledger.core.merkle import CompactRange, leaf_hash
from medledger.errors import InvalidInputError, TamperError

BLOCK_VERSION = 1
_HEX32 = re.compile(r"[0-9a-f]{64}")
_FIELDS = (
    "v", "network", "height", "prev", "time_ms", "tx_count", "tx_root", "results_root",
    "state_root", "log_size", "log_root", "proposer",
)  # fmt: skip


def _hex32(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise InvalidInputError(f"{name} must be 64 lowercase hex digits", parameter=name)
    return bytes.fromhex(value)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INTEGER:
        raise InvalidInputError(f"{name} must be a non-negative integer", parameter=name)
    return value


@dataclass(frozen=True, slots=True)
class BlockHeader:
    network: str
    height: int
    prev: bytes
    time_ms: int
    tx_count: int
    tx_root: bytes
    results_root: bytes
    state_root: bytes
    log_size: int
    log_root: bytes
    proposer: str

    def __post_init__(self) -> None:
        for name in ("height", "time_ms", "tx_count", "log_size"):
            _count(getattr(self, name), name)
        for name in ("prev", "tx_root", "results_root", "state_root", "log_root"):
            if len(getattr(self, name)) != 32:
                raise InvalidInputError(f"{name} must be 32 bytes", parameter=name)
        if not is_did_key(self.proposer):
            raise InvalidInputError("proposer must be a did:key", parameter="proposer")

    def to_json(self) -> dict[str, JSON]:
        return {
            "v": BLOCK_VERSION,
            "network": self.network,
            "height": self.height,
            "prev": self.prev.hex(),
            "time_ms": self.time_ms,
            "tx_count": self.tx_count,
            "tx_root": self.tx_root.hex(),
            "results_root": self.results_root.hex(),
            "state_root": self.state_root.hex(),
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "proposer": self.proposer,
        }

    def signing_bytes(self) -> bytes:
        return DOMAIN_BLOCK + canonical(self.to_json())

    def hash(self) -> bytes:
        return hashlib.sha256(self.signing_bytes()).digest()

    @classmethod
    def from_json(cls, obj: Mapping[str, JSON]) -> BlockHeader:
        if set(obj) != set(_FIELDS):
            raise InvalidInputError(
                "block header has missing or unknown fields", parameter="header"
            )
        if obj["v"] != BLOCK_VERSION:
            raise InvalidInputError("unsupported block version", parameter="v")
        network = obj["network"]
        proposer = obj["proposer"]
        if not isinstance(network, str) or not isinstance(proposer, str):
            raise InvalidInputError("network and proposer must be strings", parameter="header")
        return cls(
            network=network,
            height=_count(obj["height"], "height"),
            prev=_hex32(obj["prev"], "prev"),
            time_ms=_count(obj["time_ms"], "time_ms"),
            tx_count=_count(obj["tx_count"], "tx_count"),
            tx_root=_hex32(obj["tx_root"], "tx_root"),
            results_root=_hex32(obj["results_root"], "results_root"),
            state_root=_hex32(obj["state_root"], "state_root"),
            log_size=_count(obj["log_size"], "log_size"),
            log_root=_hex32(obj["log_root"], "log_root"),
            proposer=proposer,
        )


def log_entry(height: int, index: int, wire: bytes, result: TxResult) -> bytes:
    """The transparency-log entry of one transaction: the transaction, where, and its outcome.

    ``{"kind":"tx","height":h,"index":i,"tx_id":hex,"tx":<wire bytes as JSON>,"ok":bool,
    "reason":code|null}`` — canonical JSON; the embedded ``tx`` is the exact wire object.
    """
    head = canonical(
        {
            "height": height,
            "index": index,
            "kind": "tx",
            "ok": result.ok,
            "reason": result.reason,
            "tx_id": result.tx_id.hex(),
        }
    )
    # JCS sorts keys and "tx" < "tx_id": splice the (already canonical) wire bytes in there,
    # rather than parsing and re-serialising them. A test checks the result is canonical.
    marker = b',"tx_id":'
    at = head.index(marker)
    return head[:at] + b',"tx":' + wire + head[at:]


def rfc9162_root(items: Sequence[bytes]) -> bytes:
    tree = CompactRange()
    for item in items:
        tree.append(leaf_hash(item))
    return tree.root()


def verify_header_fields(header: BlockHeader, expected: BlockHeader) -> None:
    """Raise ``TamperError`` naming the first field where a replayed header differs."""
    got, want = header.to_json(), expected.to_json()
    for name in _FIELDS:
        a, b = canonical(got[name]), canonical(want[name])
        if not hmac.compare_digest(a, b):
            raise TamperError(f"block {expected.height}: {name} does not match the replay")
