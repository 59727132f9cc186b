"""The ledger node's use cases: intake, block building, commit, recovery and queries.

Handles, in the order a transaction meets them:
1. intake (``submit``): decode the envelope (size, schema, canonical form), check network, type,
   expiry window and signature (one Ed25519 verification per transaction), refuse a nonce or
   transaction id already used or pending; hand the envelope to the ordering port;
2. block building (``build_block``): take an ordered batch, run it through the contract runtime
   on the committed state, stage the state writes (sparse Merkle root), compute the
   transparency-log entries and the log root they will give, sign the header as proposer;
3. commit: block + transactions + state in one ledger transaction, then the log entries in one
   log transaction; waiters are woken with (height, log index);
4. recovery (``start``): the genesis block on a fresh ledger; re-append the last block's log
   entries if a crash came between the two commits.
Not handled here: storage (``LedgerStore``/``LogStore`` ports), the clock (``now`` arguments),
scheduling (the entrypoint runs ``run_builder`` on a thread).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.block import BlockHeader, log_entry, rfc9162_root
from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.envelope import (
    TxLimits,
    check_intake,
    decode_transaction,
    replayed_nonce_error,
    verify_transaction_signature,
)
from medledger.core.ledger.genesis import Genesis, genesis_hash, genesis_writes
from medledger.core.ledger.runtime import BlockContext, Runtime, TxResult, nonce_state_key
from medledger.core.ledger.tx import SignedTransaction
from medledger.core.state.smt import StateProof
from medledger.errors import MedledgerError, NotFoundError, StorageError, TamperError
from medledger.ports import BlockRecord, TxRecord
from medledger.services.log import TransparencyLog

log = logging.getLogger("medledger.ledger")


class StateStore(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def root(self) -> bytes: ...
    def stage(self, writes: dict[str, bytes | None]) -> bytes: ...


class LedgerStore(Protocol):
    """What the ledger service needs from storage."""

    @property
    def state(self) -> StateStore: ...
    def genesis(self) -> bytes | None: ...
    def latest(self) -> BlockRecord | None: ...
    def block(self, height: int) -> BlockRecord | None: ...
    def tx(self, tx_id: bytes) -> TxRecord | None: ...
    def block_txs(self, height: int) -> Sequence[TxRecord]: ...
    def state_get(self, key: str) -> bytes | None: ...
    def prove_state(self, key: str) -> tuple[BlockRecord, bytes | None, StateProof]: ...
    def commit_block(
        self, block: BlockRecord, txs: Sequence[TxRecord], *, genesis: bytes | None = None
    ) -> None: ...


class OrderingLike(Protocol):
    def submit(self, envelope: bytes) -> None: ...
    def next_batch(self, max_items: int, max_wait_s: float) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    hash: bytes
    header: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class CommittedTx:
    tx_id: bytes
    height: int
    index: int
    wire: bytes
    ok: bool
    reason: str | None
    message: str | None
    log_index: int


@dataclass(frozen=True, slots=True)
class TxStatus:
    """Where a transaction is: ``pending``, or ``committed`` with its outcome and position."""

    tx_id: bytes
    status: str
    height: int | None = None
    index: int | None = None
    ok: bool | None = None
    reason: str | None = None
    message: str | None = None
    log_index: int | None = None


class LedgerNode:
    """One node's ledger: a solo proposer over the ordering port."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        store: LedgerStore,
        log: TransparencyLog,
        proposer: ParticipantKey,
        ordering: OrderingLike,
        runtime: Runtime,
        limits: TxLimits | None = None,
    ) -> None:
        self.genesis = genesis
        self._store = store
        self._log = log
        self._proposer = proposer
        self._ordering = ordering
        self._runtime = runtime
        self._limits = limits or TxLimits()
        self._lock = threading.Lock()  # guards the pending maps and waiters
        self._pending: dict[bytes, SignedTransaction] = {}  # by wire bytes
        self._pending_ids: set[bytes] = set()
        self._pending_nonces: set[str] = set()
        self._waiters: dict[bytes, threading.Event] = {}
        self._build_lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def network(self) -> str:
        return self.genesis.network

    @property
    def tx_types(self) -> frozenset[str]:
        return self._runtime.tx_types

    # --- recovery ---------------------------------------------------------------------------
    def start(self, now_ms: int, *, proposer: str | None = None) -> None:
        """Create the genesis block on a fresh ledger; repair a torn block/log commit.

        A consortium (ADR 0016) passes the genesis time and first authority, so that every
        node's block 0 is the same."""
        stored = self._store.genesis()
        if stored is None:
            self._commit_genesis(now_ms, proposer or self._proposer.did)
        elif stored != self.genesis.to_json():
            raise StorageError("the ledger was created from a different genesis")
        self._recover_log()

    def _commit_genesis(self, now_ms: int, proposer: str) -> None:
        writes = genesis_writes(self.genesis)
        state_root = self._store.state.stage(dict(writes))
        size, root = self._log.head()
        header = BlockHeader(
            network=self.network,
            height=0,
            prev=genesis_hash(self.genesis),
            time_ms=max(now_ms, self.genesis.time_ms),
            tx_count=0,
            tx_root=rfc9162_root([]),
            results_root=rfc9162_root([]),
            state_root=state_root,
            log_size=size,
            log_root=root,
            proposer=proposer,
        )
        block = self._sign(header)
        self._store.commit_block(block, [], genesis=self.genesis.to_json())

    def _recover_log(self) -> None:
        latest = self._store.latest()
        if latest is None:
            raise StorageError("the ledger has a genesis but no genesis block")
        header = BlockHeader.from_json(_json(latest.header))
        size, _ = self._log.head()
        if size == header.log_size:
            return
        txs = self._store.block_txs(latest.height)
        first = header.log_size - len(txs)
        if size != first:
            raise TamperError(
                f"the log has {size} entries but block {latest.height} expects {header.log_size}"
            )
        entries = [_entry_of(t) for t in txs]
        log.warning(
            "re-appending %d log entries of block %d after a crash", len(txs), latest.height
        )
        self._log.append(entries)

    # --- intake -----------------------------------------------------------------------------
    def submit(self, raw: bytes, now_s: int) -> TxStatus:
        """Check a transaction and hand it to ordering; ``IntakeError`` says why not."""
        stx = decode_transaction(raw, self._limits)
        check_intake(
            stx, network=self.network, now_s=now_s, known_types=self.tx_types, limits=self._limits
        )
        nonce_key = nonce_state_key(stx.tx.sender, stx.tx.nonce)
        with self._lock:
            # The same transaction again has the same nonce: both are a replay.
            if (
                stx.tx_id in self._pending_ids
                or nonce_key in self._pending_nonces
                or self._store.tx(stx.tx_id) is not None
                or self._store.state_get(nonce_key) is not None
            ):
                raise replayed_nonce_error()
            self._pending[stx.wire] = stx
            self._pending_ids.add(stx.tx_id)
            self._pending_nonces.add(nonce_key)
            self._waiters[stx.tx_id] = threading.Event()
        try:
            self._ordering.submit(stx.wire)
        except MedledgerError:
            self._forget(stx)
            raise
        return TxStatus(stx.tx_id, "pending")

    def _forget(self, stx: SignedTransaction) -> None:
        with self._lock:
            self._pending.pop(stx.wire, None)
            self._pending_ids.discard(stx.tx_id)
            self._pending_nonces.discard(nonce_state_key(stx.tx.sender, stx.tx.nonce))
            event = self._waiters.pop(stx.tx_id, None)
        if event is not None:
            event.set()

    # --- block building ---------------------------------------------------------------------
    def run_builder(self, clock_ms: Callable[[], int]) -> None:
        """Cut and commit blocks until ``stop``; meant for its own thread."""
        max_wait = self.genesis.block_interval_ms / 1000
        while not self._stopping.is_set():
            batch = self._ordering.next_batch(self.genesis.block_max_txs, max_wait)
            if batch:
                try:
                    self.build_block(batch, clock_ms())
                except MedledgerError as e:
                    log.error("block not committed: %s", e)

    def stop(self) -> None:
        self._stopping.set()

    def build_block(
        self, batch: Sequence[bytes], now_ms: int, *, proposer: str | None = None
    ) -> Block | None:
        """Apply an ordered batch, commit the block, append its log entries.

        ``proposer`` (consortium, ADR 0016): the batch's submitter, named in the header so
        every node builds the same block; the stored signature is still this node's own."""
        with self._build_lock:
            taken = [stx for stx in map(self._take, batch) if stx is not None]
            latest = self._store.latest()
            if latest is None:
                raise StorageError("no genesis block: call start() first")
            prev = BlockHeader.from_json(_json(latest.header))
            height = prev.height + 1
            proposer_did = proposer or self._proposer.did
            ctx = BlockContext(self.network, height, max(now_ms, prev.time_ms + 1), proposer_did)
            stxs = self._drop_duplicates(taken)
            if not stxs:
                return None
            results, writes = self._runtime.apply_block(stxs, self._store.state, ctx)
            state_root = self._store.state.stage(writes)
            entries = [
                log_entry(height, i, s.wire, r)
                for i, (s, r) in enumerate(zip(stxs, results, strict=True))
            ]
            log_size, log_root = self._log.preview(entries)
            header = BlockHeader(
                network=self.network,
                height=height,
                prev=latest.hash,
                time_ms=ctx.time_ms,
                tx_count=len(stxs),
                tx_root=rfc9162_root([s.wire for s in stxs]),
                results_root=rfc9162_root(entries),
                state_root=state_root,
                log_size=log_size,
                log_root=log_root,
                proposer=proposer_did,
            )
            block = self._sign(header)
            first_log_index = log_size - len(entries)
            committed = [
                CommittedTx(
                    s.tx_id, height, i, s.wire, r.ok, r.reason, r.message, first_log_index + i
                )
                for i, (s, r) in enumerate(zip(stxs, results, strict=True))
            ]
            self._store.commit_block(block, committed)
            if entries:
                self._log.append(entries)
        for stx in taken:
            self._forget(stx)
        return block

    def _take(self, wire: bytes) -> SignedTransaction | None:
        """The checked transaction for an ordered envelope. One this node did not take in
        itself (another node's, issue 7) is decoded and its signature verified here."""
        with self._lock:
            stx = self._pending.get(wire)
        if stx is not None:
            return stx
        try:
            stx = decode_transaction(wire, self._limits)
            verify_transaction_signature(stx)
        except MedledgerError as e:
            log.warning("dropped an ordered envelope that does not verify: %s", e)
            return None
        return stx

    def _drop_duplicates(self, stxs: Sequence[SignedTransaction]) -> list[SignedTransaction]:
        """A transaction already in the chain, or earlier in the batch, is left out: ordering
        may deliver an envelope twice (issue 7), the chain holds it once."""
        seen: set[bytes] = set()
        fresh: list[SignedTransaction] = []
        for stx in stxs:
            if stx.tx_id in seen or self._store.tx(stx.tx_id) is not None:
                self._forget(stx)
                continue
            seen.add(stx.tx_id)
            fresh.append(stx)
        return fresh

    def _sign(self, header: BlockHeader) -> Block:
        return Block(
            header.height,
            header.hash(),
            canonical(header.to_json()),
            self._proposer.sign(header.signing_bytes()),
        )

    # --- queries ----------------------------------------------------------------------------
    def state_get(self, key: str) -> bytes | None:
        """Committed contract state (not the block being built)."""
        return self._store.state_get(key)

    def prove_state(self, key: str) -> tuple[BlockRecord, bytes | None, StateProof]:
        """The latest block, ``key``'s committed value and its sparse-Merkle proof against
        that block's state root, read consistently (ADR 0024)."""
        return self._store.prove_state(key)

    def genesis_document(self) -> bytes:
        """The genesis as the ledger stores it (canonical JSON): what block 0 builds on."""
        stored = self._store.genesis()
        if stored is None:
            raise NotFoundError("the ledger has no genesis yet")
        return stored

    def state_reader(self) -> _CommittedState:
        return _CommittedState(self._store)

    def status(self, tx_id: bytes) -> TxStatus:
        committed = self._store.tx(tx_id)
        if committed is not None:
            return TxStatus(
                tx_id,
                "committed",
                committed.height,
                committed.index,
                committed.ok,
                committed.reason,
                committed.message,
                committed.log_index,
            )
        with self._lock:
            if tx_id in self._pending_ids:
                return TxStatus(tx_id, "pending")
        raise NotFoundError("no such transaction")

    def wait(self, tx_id: bytes, timeout_s: float) -> TxStatus:
        """Block until the transaction is committed (or ``timeout_s``); return its status."""
        with self._lock:
            event = self._waiters.get(tx_id)
        if event is not None:
            event.wait(timeout_s)
        return self.status(tx_id)

    def latest_block(self) -> BlockRecord:
        latest = self._store.latest()
        if latest is None:
            raise NotFoundError("the ledger has no blocks yet")
        return latest

    def block(self, height: int) -> BlockRecord:
        block = self._store.block(height)
        if block is None:
            raise NotFoundError(f"no block at height {height}")
        return block

    def block_txs(self, height: int) -> Sequence[TxRecord]:
        return self._store.block_txs(height)


class _CommittedState:
    """A StateReader over the committed state, for decisions made outside a block."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    def get(self, key: str) -> bytes | None:
        return self._store.state_get(key)


def _entry_of(t: TxRecord) -> bytes:
    return log_entry(t.height, t.index, t.wire, TxResult(t.tx_id, t.ok, t.reason, t.message))


def _json(raw: bytes) -> dict[str, object]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise TamperError("a stored block header is not a JSON object")
    return value
