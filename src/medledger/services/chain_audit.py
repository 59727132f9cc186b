"""`medledger chain verify`: replay every block from genesis into a fresh state and check it.

For each block, in order, naming the first mismatch (``TamperError``):
1. the stored header bytes are canonical and hash to the stored block hash;
2. height, network and ``prev`` continue the chain (block 0 points at the genesis hash);
3. the proposer is a genesis authority and its Ed25519 signature verifies;
4. every transaction decodes and its signature verifies (one verification each);
5. the contract runtime, replayed on the fresh state, gives the stored outcome of every
   transaction, and the header's tx root, results root, state root, log size and log root;
6. the transparency log holds exactly the block's entries at the positions the header says.
Not handled here: the log's own tiles and checkpoints (``log_audit``).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.core.identity.keys import verify_signature
from medledger.core.ledger.block import BlockHeader, log_entry, rfc9162_root, verify_header_fields
from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.envelope import (
    TxLimits,
    decode_transaction,
    verify_transaction_signature,
)
from medledger.core.ledger.genesis import Genesis, genesis_hash, genesis_writes
from medledger.core.ledger.runtime import BlockContext, Runtime, TxResult
from medledger.core.merkle import CompactRange, leaf_hash
from medledger.errors import MedledgerError, TamperError
from medledger.ports import BlockRecord, TxRecord

Progress = Callable[[int, int], None]


class ChainSource(Protocol):
    def latest(self) -> BlockRecord | None: ...
    def iter_blocks(self, start: int = 0) -> Iterator[BlockRecord]: ...
    def block_txs(self, height: int) -> Sequence[TxRecord]: ...


class ScratchState(Protocol):
    """A fresh, empty state to replay into."""

    def get(self, key: str) -> bytes | None: ...
    def stage(self, writes: dict[str, bytes | None]) -> bytes: ...
    def commit(self) -> None: ...


class LogSource(Protocol):
    def entries(self, start: int, end: int) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class ChainReport:
    height: int
    transactions: int
    state_root: bytes


def verify_chain(
    chain: ChainSource,
    genesis: Genesis,
    runtime: Runtime,
    scratch: ScratchState,
    log: LogSource | None = None,
    *,
    progress: Progress | None = None,
    limits: TxLimits | None = None,
    node_signers: Collection[str] = (),
) -> ChainReport:
    """``node_signers`` (consortium, ADR 0016): authorities whose signature over a header is
    accepted in place of the proposer's (each node stores its own signature over the block it
    built from the submitter's batch), and who may be proposers besides the genesis list."""
    limits = limits or TxLimits()
    authorities = {a.did for a in genesis.authorities} | set(node_signers)
    latest = chain.latest()
    if latest is None:
        raise TamperError("the ledger has no blocks")
    tree = CompactRange()
    prev_hash = genesis_hash(genesis)
    prev_time = 0
    count = 0
    state_root = b""
    for expected_height, block in enumerate(chain.iter_blocks()):
        header = _check_header(
            block, expected_height, genesis.network, prev_hash, authorities, node_signers
        )
        txs = chain.block_txs(block.height)
        if len(txs) != header.tx_count:
            raise TamperError(
                f"block {block.height}: {len(txs)} transactions stored, "
                f"header says {header.tx_count}"
            )
        if block.height > 0 and header.time_ms <= prev_time:
            raise TamperError(f"block {block.height}: time does not advance")
        if block.height == 0:
            if tree.size != header.log_size:
                raise TamperError("block 0: the log was not empty at genesis")
            writes: dict[str, bytes | None] = dict(genesis_writes(genesis))
            results: list[TxResult] = []
        else:
            stxs = [_decode(t, limits) for t in txs]
            ctx = BlockContext(genesis.network, block.height, header.time_ms, header.proposer)
            results, writes = runtime.apply_block(stxs, scratch, ctx)
            _compare_results(block.height, txs, results)
        state_root = scratch.stage(writes)
        scratch.commit()
        entries = [
            log_entry(block.height, t.index, t.wire, r) for t, r in zip(txs, results, strict=True)
        ]
        for entry in entries:
            tree.append(leaf_hash(entry))
        replayed = BlockHeader(
            network=genesis.network,
            height=block.height,
            prev=prev_hash,
            time_ms=header.time_ms,
            tx_count=len(txs),
            tx_root=rfc9162_root([t.wire for t in txs]),
            results_root=rfc9162_root(entries),
            state_root=state_root,
            log_size=tree.size,
            log_root=tree.root(),
            proposer=header.proposer,
        )
        verify_header_fields(header, replayed)
        if log is not None and entries:
            _compare_log(block.height, log, tree.size - len(entries), entries)
        prev_hash, prev_time = block.hash, header.time_ms
        count += len(txs)
        if progress is not None:
            progress(block.height, latest.height)
    return ChainReport(height=latest.height, transactions=count, state_root=state_root)


def _check_header(  # noqa: PLR0917 - the chain's running values
    block: BlockRecord,
    height: int,
    network: str,
    prev_hash: bytes,
    authorities: set[str],
    node_signers: Collection[str] = (),
) -> BlockHeader:
    if block.height != height:
        raise TamperError(f"block {height} is missing (found {block.height})")
    try:
        obj = json.loads(block.header)
        header = BlockHeader.from_json(obj)
    except (ValueError, MedledgerError) as e:
        raise TamperError(f"block {height}: the header does not parse") from e
    if canonical(header.to_json()) != block.header:
        raise TamperError(f"block {height}: the stored header is not canonical")
    if not hmac.compare_digest(header.hash(), block.hash):
        raise TamperError(f"block {height}: the header does not hash to the block hash")
    if header.height != height or header.network != network:
        raise TamperError(f"block {height}: wrong height or network in the header")
    if not hmac.compare_digest(header.prev, prev_hash):
        raise TamperError(f"block {height}: prev does not point at block {height - 1}")
    if header.proposer not in authorities:
        raise TamperError(f"block {height}: the proposer is not a genesis authority")
    for signer in (header.proposer, *node_signers):
        try:
            verify_signature(signer, header.signing_bytes(), block.signature)
        except MedledgerError:
            continue
        return header
    raise TamperError(f"block {height}: the proposer's signature does not verify")


def _decode(t: TxRecord, limits: TxLimits):  # type: ignore[no-untyped-def]
    try:
        stx = decode_transaction(t.wire, limits)
        verify_transaction_signature(stx)
    except MedledgerError as e:
        raise TamperError(f"block {t.height} transaction {t.index}: {e}") from e
    if stx.tx_id != t.tx_id:
        raise TamperError(f"block {t.height} transaction {t.index}: stored id does not match")
    return stx


def _compare_results(height: int, txs: Sequence[TxRecord], results: Sequence[TxResult]) -> None:
    for t, r in zip(txs, results, strict=True):
        if (t.ok, t.reason) != (r.ok, r.reason):
            raise TamperError(
                f"block {height} transaction {t.index}: stored outcome "
                f"{'ok' if t.ok else t.reason} but the replay gives {'ok' if r.ok else r.reason}"
            )


def _compare_log(height: int, log: LogSource, first: int, entries: Sequence[bytes]) -> None:
    try:
        stored = log.entries(first, first + len(entries))
    except MedledgerError as e:
        raise TamperError(f"block {height}: its log entries are missing") from e
    for i, (a, b) in enumerate(zip(stored, entries, strict=True)):
        if not hmac.compare_digest(a, b):
            raise TamperError(f"block {height}: log entry {first + i} differs from the block")


def verify_live_state(
    live_root: bytes,
    live: Iterator[tuple[str, bytes]],
    replayed_root: bytes,
    replayed: Iterator[tuple[str, bytes]],
) -> None:
    """Step 7: the node's own state (its root and every key and value) equals the replay's.

    Both iterators yield (key, value) in key order; memory stays flat.
    """
    if not hmac.compare_digest(live_root, replayed_root):
        raise TamperError("the node's state root differs from the replayed one")
    sentinel = ("\U0010ffff" * 2, b"")
    a, b = next(live, sentinel), next(replayed, sentinel)
    while a != sentinel or b != sentinel:
        if a[0] != b[0]:
            missing = min(a[0], b[0])
            raise TamperError(f"state key {missing!r} is in one state but not the other")
        if not hmac.compare_digest(a[1], b[1]):
            raise TamperError(f"state value of {a[0]!r} differs from the replay")
        a, b = next(live, sentinel), next(replayed, sentinel)
