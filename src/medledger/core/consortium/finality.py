"""Finality: authorities co-sign each block, and a block is final at a > 2/3 quorum (ADR 0016).

After applying the batch at one log position, each authority node co-signs a C2SP
``tlog-checkpoint`` of the network's block log (c2sp.org/tlog-cosignature, cosignature/v1)::

    medledger/<network>/blocks        origin
    <log size after the block>        the transparency log's size ...
    <base64 log root>                 ... and root (RFC 9162) after the block
    block <height> <header hash hex>  extension line: the block header it commits to
    position <n>                      extension line: the etcd log position it came from

The cosigner's key name is its did:key and its key is the did:key's Ed25519 key; the
timestamp is the block time in seconds, so every node builds the same checkpoint and the same
certificate. Such a cosignature is a vote. What this module handles: building and signing a
vote (``cast_vote``), its wire form (``Vote.to_bytes`` / ``parse_vote``), verifying one
(``verify_vote``), the quorum rule (``quorum``) and counting votes (``evaluate_finality``),
and the final certificate as a C2SP note any witness tooling can check.
Not handled here: publishing and collecting votes (etcd), alarms (the consortium service).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from medledger.core.checkpoint import Checkpoint
from medledger.core.cosignature import (
    COSIGNATURE_SIZE,
    TIMESTAMP_SIZE,
    Cosignature,
    CosignatureVerifier,
    Cosigner,
)
from medledger.core.identity.did_key import is_did_key, public_key_from_did
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical
from medledger.errors import InvalidInputError, SignatureError

VOTE_VERSION: Final = 1
MAX_VOTE_BYTES: Final = 4096
_HEX32: Final = re.compile(r"[0-9a-f]{64}")
_FIELDS: Final = frozenset(
    {"v", "height", "position", "hash", "log_size", "log_root", "signer", "time_s", "sig"}
)


def quorum(authorities: int) -> int:
    """The smallest number of signers that is more than two thirds of ``authorities``."""
    if authorities < 1:
        raise InvalidInputError("a network has at least one authority", parameter="authorities")
    return 2 * authorities // 3 + 1


def block_checkpoint(  # noqa: PLR0917 - the checkpoint's fields, in order
    network: str, height: int, position: int, header_hash: bytes, log_size: int, log_root: bytes
) -> Checkpoint:
    return Checkpoint(
        origin=f"medledger/{network}/blocks",
        size=log_size,
        root_hash=log_root,
        extensions=(f"block {height} {header_hash.hex()}", f"position {position}"),
    )


@dataclass(frozen=True, slots=True)
class Vote:
    """One authority's cosignature on block ``height`` (from log ``position``)."""

    network: str
    height: int
    position: int
    header_hash: bytes
    log_size: int
    log_root: bytes
    signer: str
    time_s: int
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("height", "position", "log_size", "time_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_SAFE_INTEGER
            ):
                raise InvalidInputError(f"{name} out of range", parameter=name)
        if len(self.header_hash) != 32 or len(self.log_root) != 32:
            raise InvalidInputError("hashes are 32 bytes", parameter="hash")
        if not is_did_key(self.signer):
            raise InvalidInputError("signer must be a did:key", parameter="signer")
        if len(self.signature) != COSIGNATURE_SIZE - TIMESTAMP_SIZE:
            raise InvalidInputError("a cosignature is 64 bytes", parameter="sig")

    def checkpoint(self) -> Checkpoint:
        return block_checkpoint(
            self.network, self.height, self.position, self.header_hash, self.log_size, self.log_root
        )

    def cosignature(self) -> Cosignature:
        verifier = vote_verifier(self.signer)
        return Cosignature(self.signer, verifier.key_id, self.time_s, self.signature)

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "v": VOTE_VERSION,
                "height": self.height,
                "position": self.position,
                "hash": self.header_hash.hex(),
                "log_size": self.log_size,
                "log_root": self.log_root.hex(),
                "signer": self.signer,
                "time_s": self.time_s,
                "sig": base64.b64encode(self.signature).decode("ascii"),
            }
        )


def vote_verifier(did: str) -> CosignatureVerifier:
    return CosignatureVerifier(did, public_key_from_did(did))


def cast_vote(
    key: ParticipantKey,
    *,
    network: str,
    height: int,
    position: int,
    header_hash: bytes,
    log_size: int,
    log_root: bytes,
    time_s: int,
) -> Vote:
    """Co-sign the block checkpoint with the node's authority key (cosignature/v1)."""
    checkpoint = block_checkpoint(network, height, position, header_hash, log_size, log_root)
    cosigner = Cosigner(key.did, key.export_seed())
    cosig = cosigner.sign_body(checkpoint.body(), time_s)
    return Vote(
        network, height, position, header_hash, log_size, log_root, key.did, time_s, cosig.signature
    )


def parse_vote(raw: bytes, network: str) -> Vote:
    """A vote's wire bytes, strictly (``InvalidInputError``); the signature is not checked."""
    if len(raw) > MAX_VOTE_BYTES:
        raise InvalidInputError("vote too large", parameter="vote")
    try:
        obj: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInputError("vote is not JSON", parameter="vote") from e
    if not isinstance(obj, dict) or set(obj) != _FIELDS or obj["v"] != VOTE_VERSION:
        raise InvalidInputError("vote has missing or unknown fields", parameter="vote")
    for name in ("hash", "log_root"):
        if not isinstance(obj[name], str) or not _HEX32.fullmatch(obj[name]):
            raise InvalidInputError(f"{name} must be 64 hex digits", parameter=name)
    if not isinstance(obj["signer"], str) or not isinstance(obj["sig"], str):
        raise InvalidInputError("signer and sig are strings", parameter="vote")
    try:
        signature = base64.b64decode(obj["sig"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInputError("sig is not base64", parameter="sig") from e
    vote = Vote(
        network,
        obj["height"],
        obj["position"],
        bytes.fromhex(obj["hash"]),
        obj["log_size"],
        bytes.fromhex(obj["log_root"]),
        obj["signer"],
        obj["time_s"],
        signature,
    )
    if vote.to_bytes() != raw:
        raise InvalidInputError("vote is not in canonical form", parameter="vote")
    return vote


def verify_vote(vote: Vote, authorities: Collection[str]) -> None:
    """The signer is an authority and its cosignature/v1 verifies on the vote's checkpoint."""
    if vote.signer not in authorities:
        raise SignatureError(f"vote by {vote.signer[:24]}..., not an authority")
    raw = vote.time_s.to_bytes(TIMESTAMP_SIZE, "big") + vote.signature
    vote_verifier(vote.signer).verify(vote.checkpoint().body(), raw)


@dataclass(frozen=True, slots=True)
class Finality:
    """What verified votes say about one height."""

    height: int
    quorum: int
    final_hash: bytes | None
    signers: tuple[str, ...]  # of the final hash (or of the leading hash if not final)
    dissenters: Mapping[str, bytes]  # authorities that signed another hash than the final one

    @property
    def is_final(self) -> bool:
        return self.final_hash is not None


def evaluate_finality(height: int, votes: Iterable[Vote], authorities: Collection[str]) -> Finality:
    """Count verified votes for ``height`` by distinct authorities; final when a hash has a
    > 2/3 quorum. ``votes`` must already have passed ``verify_vote``; an authority that
    signed two different hashes (equivocation) counts for neither."""
    q = quorum(len(authorities))
    by_signer: dict[str, set[bytes]] = {}
    for v in votes:
        if v.height == height and v.signer in authorities:
            by_signer.setdefault(v.signer, set()).add(v.header_hash)
    counts: dict[bytes, list[str]] = {}
    for signer, hashes in by_signer.items():
        if len(hashes) == 1:
            counts.setdefault(next(iter(hashes)), []).append(signer)
    best = max(counts.items(), key=lambda kv: len(kv[1]), default=None)
    if best is None:
        return Finality(height, q, None, (), {})
    final = best[0] if len(best[1]) >= q else None
    dissent = {}
    if final is not None:
        dissent = {s: h for s, hs in by_signer.items() for h in hs if h != final}
    return Finality(height, q, final, tuple(sorted(best[1])), dissent)


def certificate(votes: Iterable[Vote], final_hash: bytes) -> bytes:
    """The final block's checkpoint as a C2SP signed note carrying the quorum's cosignatures;
    ``medledger.core.cosignature.open_cosignatures`` checks it offline."""
    chosen = sorted((v for v in votes if v.header_hash == final_hash), key=lambda v: v.signer)
    if not chosen:
        raise InvalidInputError("no votes for the final hash", parameter="votes")
    body = chosen[0].checkpoint().body()
    lines = b"".join(v.cosignature().line() for v in chosen)
    return body + b"\n" + lines
