"""The access-event log: record every decision, batch them KSI-style, anchor, serve receipts.

Handles, in the order an event meets them (ADR 0014):

1. intake (``record``): the event joins the open batch in memory and the caller gets an
   ``EventTicket`` at once -- the request path never waits for a block. The queue is
   bounded (``OverloadedError`` when full).
2. sealing (the ``audit-sealer`` thread): every ``batch_interval_ms``, or as soon as
   ``max_batch_events`` are waiting, or ``min_batch_gap_ms`` after the last seal when a
   caller waits for its event to be durable (group commit), the open batch is sealed --
   each event hashed once, one RFC 9162 root -- and its ``access.batch`` anchor
   transaction signed by the node key;
3. storing (the ``audit-writer`` thread, overlapping the next sealing): the batch and all
   its events in ONE durable SQLite transaction. Its tickets are then durable
   (``EventTicket.wait_durable``: no access without durable evidence), and the anchor goes
   to ``LedgerNode.submit``; nothing waits for it to commit.
4. anchoring (the ``audit-anchor`` thread): waits for each anchor transaction in turn,
   stores its log index, and has a checkpoint signed over it at once, so the batch's
   receipts are available within one block interval.
5. receipts (``receipt``/``wait_receipt``): the event, its batch inclusion proof, and the
   tlog-proof of the anchor's log entry -- verifiable offline (``verify_event_receipt``).
6. queries: one event, a patient's events (filters, cursor), break-glass events for review.
7. recovery (``start``): a stored batch whose anchor never committed is found on the ledger
   (``access-batch/<id>``) or anchored again.

Not handled here: deciding access (``core.access``), storage (``AuditStore`` port), the
clock and randomness (constructor parameters), who may list what (the HTTP edge).
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from medledger.core.audit.batch import SealedBatch, new_batch_id, proof_from_levels, seal_batch
from medledger.core.audit.batch import tree_levels as build_levels
from medledger.core.audit.event import EVENT_ID, AccessEvent
from medledger.core.audit.query import (
    MAX_LIST_LIMIT,
    OLDEST,
    EventQuery,
    check_limit,
    check_paging,
)
from medledger.core.audit.receipt import EventReceipt, format_event_receipt
from medledger.core.audit.stats import AccessStats, StatsWindow, tally
from medledger.core.identity.did_key import is_did_key
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.contracts.access_batch import ACCESS_BATCH, batch_key
from medledger.core.ledger.envelope import TxLimits, decode_transaction, sign_transaction
from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.core.merkle import leaf_hash
from medledger.errors import (
    ConfigurationError,
    InvalidInputError,
    MedledgerError,
    NotFoundError,
    OverloadedError,
    StorageError,
    TamperError,
)
from medledger.ports import SignedCheckpoint, TxRecord
from medledger.services.ledger import TxStatus

log = logging.getLogger("medledger.audit")

_LEVELS_CACHE: Final = 8


# --- ports ------------------------------------------------------------------------------------
class StoredBatchLike(Protocol):
    @property
    def batch_id(self) -> str: ...
    @property
    def root(self) -> bytes: ...
    @property
    def count(self) -> int: ...
    @property
    def first_time_ms(self) -> int: ...
    @property
    def last_time_ms(self) -> int: ...
    @property
    def leaves(self) -> tuple[bytes, ...]: ...
    @property
    def tx_id(self) -> bytes | None: ...
    @property
    def log_index(self) -> int | None: ...
    @property
    def state(self) -> str: ...


class StoredEventLike(Protocol):
    @property
    def event(self) -> AccessEvent: ...
    @property
    def batch_id(self) -> str: ...
    @property
    def index(self) -> int: ...


class AuditStore(Protocol):
    """What the audit service needs from storage (``adapters.sqlite_audit``)."""

    def save_batch(self, batch: SealedBatch, tx_id: bytes) -> int: ...
    def set_anchor_tx(self, batch_id: str, tx_id: bytes) -> None: ...
    def mark_anchored(self, batch_id: str, tx_id: bytes, log_index: int) -> None: ...
    def mark_failed(self, batch_id: str, tx_id: bytes, reason: str) -> None: ...
    def batch(self, batch_id: str) -> StoredBatchLike | None: ...
    def unanchored(self) -> Sequence[StoredBatchLike]: ...
    def event(self, event_id: str) -> StoredEventLike | None: ...
    def position(self, event_id: str) -> tuple[int, int] | None: ...
    def list_events(self, query: EventQuery) -> Sequence[AccessEvent]: ...
    def break_glass_events(
        self, org: str, *, after: tuple[int, int] | None, limit: int
    ) -> Sequence[AccessEvent]: ...
    def events_between(self, since_ms: int, until_ms: int) -> Iterable[AccessEvent]: ...


class LedgerLike(Protocol):
    """What the audit service needs of the ledger (``services.ledger.LedgerNode``)."""

    @property
    def network(self) -> str: ...
    def submit(self, raw: bytes, now_s: int) -> TxStatus: ...
    def wait(self, tx_id: bytes, timeout_s: float) -> TxStatus: ...
    def state_get(self, key: str) -> bytes | None: ...
    def block_txs(self, height: int) -> Sequence[TxRecord]: ...


class LogLike(Protocol):
    """What the audit service needs of the transparency log (``services.log``)."""

    def checkpoint_if_grown(self) -> SignedCheckpoint | None: ...
    def latest_checkpoint(self) -> SignedCheckpoint: ...
    def receipt(self, index: int) -> bytes: ...


# --- settings and tickets ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The aggregator's tunables (defaults: receipts within 1 s, ADR 0014)."""

    batch_interval_ms: int = 100
    max_batch_events: int = 20_000
    max_queued_events: int = 200_000
    tx_ttl_s: int = 120
    #: How long ``close`` waits for outstanding anchors before leaving them to recovery.
    close_wait_s: float = 5.0
    #: A caller waiting for its event to be durable (a permitted read) has the open batch
    #: sealed early -- but never sooner than this after the last seal: group commit, so a
    #: lone reader waits milliseconds, not a whole interval, and anchors stay few.
    min_batch_gap_ms: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.batch_interval_ms <= 60_000:
            raise ConfigurationError("batch_interval_ms must be in 1..60000")
        if not 0 <= self.min_batch_gap_ms <= self.batch_interval_ms:
            raise ConfigurationError("min_batch_gap_ms must be in 0..batch_interval_ms")
        if not 1 <= self.max_batch_events <= 1_000_000:
            raise ConfigurationError("max_batch_events must be in 1..1000000")
        if self.max_queued_events < self.max_batch_events:
            raise ConfigurationError("max_queued_events must be >= max_batch_events")


class _OpenBatch:
    """Events waiting to be sealed together, and what their tickets wait on."""

    __slots__ = ("anchored", "batch_id", "durable", "error", "events")

    def __init__(self) -> None:
        self.events: list[AccessEvent] = []
        self.durable = threading.Event()
        self.anchored = threading.Event()
        self.error: MedledgerError | None = None
        self.batch_id: str | None = None


class EventTicket:
    """What ``record`` returns: a handle on the recorded event's durability."""

    __slots__ = ("_batch", "_hurry", "event_id")

    def __init__(
        self, event_id: str, batch: _OpenBatch, hurry: Callable[[], None] = lambda: None
    ) -> None:
        self.event_id = event_id
        self._batch = batch
        self._hurry = hurry

    @property
    def durable(self) -> bool:
        """Whether the event's batch is on disk (and did not fail to be stored)."""
        return self._batch.durable.is_set() and self._batch.error is None

    @property
    def batch_id(self) -> str | None:
        """The event's batch, once sealed."""
        return self._batch.batch_id

    def wait_durable(self, timeout_s: float) -> None:
        """Return once the event's batch is stored durably; else raise.

        ``StorageError`` if the batch could not be stored (the event is lost: the caller must
        not grant the access it records), ``OverloadedError`` if ``timeout_s`` passed first.
        """
        if not self._batch.durable.is_set():
            self._hurry()  # someone waits: seal soon (group commit), not at the interval
        if not self._batch.durable.wait(timeout_s):
            raise OverloadedError(f"the access event was not stored within {timeout_s} s")
        if self._batch.error is not None:
            raise StorageError("the access event could not be stored") from self._batch.error

    def wait_anchored(self, timeout_s: float) -> bool:
        """Whether the event's batch was anchored on the ledger within ``timeout_s``."""
        return self._batch.anchored.wait(timeout_s)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A stored batch whose anchor transaction is on its way."""

    batch_id: str
    stx: SignedTransaction
    slot: _OpenBatch | None


_Sealed = tuple[_OpenBatch, SealedBatch, SignedTransaction] | tuple[()]
#: Wakes the writer when there is nothing to store, to retry refused anchors.
_TICK: Final[tuple[()]] = ()


# --- the service ------------------------------------------------------------------------------
class AuditService:
    def __init__(
        self,
        *,
        store: AuditStore,
        ledger: LedgerLike,
        log: LogLike,
        node_key: ParticipantKey,
        random_bytes: Callable[[int], bytes],
        clock_ms: Callable[[], int],
        settings: AuditSettings | None = None,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._log = log
        self._key = node_key
        self._random = random_bytes
        self._clock_ms = clock_ms
        self._settings = settings or AuditSettings()
        # read on every record(): plain attributes
        self._did = node_key.did
        self._max_queued = self._settings.max_queued_events
        self._max_batch = self._settings.max_batch_events
        # guards the open batch, the ready list, flags (a plain lock: record() takes it)
        self._cond = threading.Condition(threading.Lock())
        self._open = _OpenBatch()
        self._ready: list[_OpenBatch] = []
        self._queued = 0
        self._stopping = False
        self._hurried = False  # a caller waits for durability (see ``_hurry``)
        self._closed = False
        self._unsubmitted: collections.deque[_Pending] = collections.deque()
        #: Sealed batches on their way to the writer; two at most, so sealing cannot run far
        #: ahead of the disk (the events stay counted in ``_queued`` until stored).
        self._writing: queue.Queue[_Sealed | None] = queue.Queue(maxsize=2)
        self._tracking: queue.Queue[_Pending | None] = queue.Queue()
        self._anchored = threading.Condition()  # notified whenever a batch is anchored
        self._anchored_count = 0
        self._levels: collections.OrderedDict[str, tuple[tuple[bytes, ...], ...]] = (
            collections.OrderedDict()
        )
        self._levels_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def node(self) -> str:
        return self._key.did

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Recover batches whose anchor never committed, then start the three threads."""
        self._recover()
        for name, target in (("audit-sealer", self._run_sealer),
                             ("audit-writer", self._run_writer),
                             ("audit-anchor", self._run_tracker)):  # fmt: skip
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Seal and store every event recorded so far, submit the anchors, wait a little for
        them to commit (``close_wait_s``), then stop. Anchors still pending are redone on the
        next ``start``."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
        if not self._threads:  # never started: seal here, anchors wait for the next start
            self._seal_ready(self._take_work())
        for thread in self._threads:
            thread.join(timeout=self._settings.close_wait_s + 30)
        self._threads.clear()

    # --- 1. intake ----------------------------------------------------------------------------
    def record(self, event: AccessEvent) -> EventTicket:
        """Queue an event for the next batch; never waits for disk or a block.

        ``InvalidInputError`` if another node decided the event (a batch is signed by this
        node), ``OverloadedError`` if the queue is full, ``StorageError`` once closed."""
        if event.node != self._did:
            raise InvalidInputError("node: the event was decided by another node", parameter="node")
        with self._cond:
            if self._closed:
                raise StorageError("the access-event log is closed")
            if self._queued >= self._max_queued:
                raise OverloadedError("too many access events waiting to be stored: retry")
            batch = self._open
            events = batch.events
            events.append(event)
            self._queued += 1
            if len(events) >= self._max_batch:
                self._ready.append(batch)
                self._open = _OpenBatch()
                self._cond.notify_all()
        return EventTicket(event.event_id, batch, self._hurry)

    def _hurry(self) -> None:
        """A caller waits for durability: wake the sealer (it keeps ``min_batch_gap_ms``)."""
        with self._cond:
            if not self._hurried:
                self._hurried = True
                self._cond.notify_all()

    def pending_events(self) -> int:
        """Events recorded but not yet stored."""
        with self._cond:
            return self._queued

    # --- 2.-3. sealing and storing ------------------------------------------------------------
    def _take_work(self) -> list[_OpenBatch]:
        """Under ``_cond``: the full batches, and the open one if it has events."""
        if self._open.events:
            self._ready.append(self._open)
            self._open = _OpenBatch()
        work, self._ready = self._ready, []
        return work

    def _run_sealer(self) -> None:
        """Seal on time or when a batch is full; hand sealed batches to the writer.

        Hashing (here) and storing (the writer) overlap: SQLite runs its inserts and fsync
        with the GIL released, so the next batch is hashed while the last one is written."""
        interval = self._settings.batch_interval_ms / 1000
        gap = self._settings.min_batch_gap_ms / 1000
        last_seal = 0.0
        while True:
            with self._cond:
                deadline = time.monotonic() + interval
                while not (self._ready or self._stopping):
                    if self._hurried:
                        deadline = min(deadline, last_seal + gap)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._hurried = False
                work = self._take_work()
                stopping = self._stopping
            last_seal = time.monotonic()
            for slot in work:
                sealed = self._seal(slot)
                if sealed is not None:
                    self._writing.put(sealed)
            self._writing.put(_TICK)
            if stopping:
                self._writing.put(None)  # the writer stores what is queued, then stops
                return

    def _run_writer(self) -> None:
        while (item := self._writing.get()) is not None:
            if item:  # not a _TICK
                self._store_sealed(*item)
            self._submit_unsubmitted()
        self._tracking.put(None)  # the anchor thread finishes what is pending, then stops

    def _seal_ready(self, work: list[_OpenBatch]) -> None:
        """Seal and store in this thread (``close`` of a service never started)."""
        for slot in work:
            sealed = self._seal(slot)
            if sealed is not None:
                self._store_sealed(*sealed)

    def _seal(self, slot: _OpenBatch) -> tuple[_OpenBatch, SealedBatch, SignedTransaction] | None:
        """Hash the batch once and sign its anchor transaction."""
        try:
            batch = seal_batch(new_batch_id(self._random(16)), slot.events)
            return slot, batch, self._anchor_tx(batch.batch_id, batch.anchor_payload())
        except MedledgerError as e:
            self._failed(slot, e)
            return None

    def _failed(self, slot: _OpenBatch, error: MedledgerError) -> None:
        log.error("an access-event batch of %d events was not stored: %s", len(slot.events), error)
        slot.error = error
        slot.durable.set()
        with self._cond:
            self._queued -= len(slot.events)

    def _store_sealed(self, slot: _OpenBatch, batch: SealedBatch, stx: SignedTransaction) -> None:
        """Store the batch and its events in one transaction, then hand its anchor to the
        ledger (sealing never waits for the anchor to commit)."""
        try:
            new = self._store.save_batch(batch, stx.tx_id)
        except MedledgerError as e:
            self._failed(slot, e)
            return
        if new != batch.count:
            log.warning("%d access events were recorded twice", batch.count - new)
        slot.batch_id = batch.batch_id
        slot.durable.set()
        with self._cond:
            self._queued -= batch.count
        self._cache_levels(batch.batch_id, batch.levels)
        self._submit(_Pending(batch.batch_id, stx, slot))

    def _anchor_tx(self, batch_id: str, payload: dict[str, object]) -> SignedTransaction:
        now_s = self._clock_ms() // 1000
        tx = Transaction(
            network=self._ledger.network,
            type=ACCESS_BATCH,
            payload=payload,
            sender=self._key.did,
            nonce=f"ab-{batch_id}-{self._random(6).hex()}",
            expires=now_s + self._settings.tx_ttl_s,
        )
        return sign_transaction(tx, self._key.sign)

    def _submit(self, pending: _Pending) -> None:
        try:
            self._ledger.submit(pending.stx.wire, self._clock_ms() // 1000)
        except MedledgerError as e:
            log.warning("anchor of batch %s not submitted, will retry: %s", pending.batch_id, e)
            self._unsubmitted.append(pending)
            return
        self._tracking.put(pending)

    def _submit_unsubmitted(self) -> None:
        """Retry anchors the ledger refused (overloaded), each with a fresh transaction."""
        for _ in range(len(self._unsubmitted)):
            old = self._unsubmitted.popleft()
            try:
                stx = self._anchor_tx(old.batch_id, dict(old.stx.tx.payload))
                self._store.set_anchor_tx(old.batch_id, stx.tx_id)
            except MedledgerError as e:
                log.error("anchor of batch %s not re-signed: %s", old.batch_id, e)
                self._unsubmitted.append(old)
                continue
            self._submit(_Pending(old.batch_id, stx, old.slot))

    # --- 4. anchoring -------------------------------------------------------------------------
    def _run_tracker(self) -> None:
        stop_at: float | None = None
        while True:
            item = self._tracking.get()
            if item is None:
                stop_at = time.monotonic() + self._settings.close_wait_s
                if self._tracking.empty():
                    return
                self._tracking.put(None)
                continue
            try:
                self._track(item, stop_at)
            except MedledgerError as e:
                log.error("anchor of batch %s not settled: %s", item.batch_id, e)

    def _track(self, pending: _Pending, stop_at: float | None) -> None:
        """Wait for one anchor transaction and settle its batch."""
        while True:
            wait_s = 1.0 if stop_at is None else max(0.0, stop_at - time.monotonic())
            try:
                status = self._ledger.wait(pending.stx.tx_id, wait_s)
            except NotFoundError:  # the ledger dropped it: anchor again
                self._unsubmitted.append(pending)
                return
            if status.status == "committed":
                break
            if stop_at is not None and time.monotonic() >= stop_at:
                return  # left to recovery on the next start
        if status.ok and status.log_index is not None:
            self._anchored_at(pending.batch_id, pending.stx.tx_id, status.log_index, pending.slot)
            return
        if self._adopt(pending.batch_id, pending.slot):
            return
        reason = status.reason or "unknown"
        log.error("anchor of batch %s failed: %s (retried on restart)", pending.batch_id, reason)
        self._store.mark_failed(pending.batch_id, pending.stx.tx_id, reason)

    def _anchored_at(
        self, batch_id: str, tx_id: bytes, log_index: int, slot: _OpenBatch | None
    ) -> None:
        self._store.mark_anchored(batch_id, tx_id, log_index)
        try:
            self._log.checkpoint_if_grown()
        except MedledgerError as e:
            log.error("checkpoint after batch %s not signed: %s", batch_id, e)
        if slot is not None:
            slot.anchored.set()
        with self._anchored:
            self._anchored_count += 1
            self._anchored.notify_all()

    # --- 7. recovery --------------------------------------------------------------------------
    def _recover(self) -> None:
        """Settle stored batches whose anchor did not commit before the last stop."""
        for stored in self._store.unanchored():
            if self._adopt(stored.batch_id, None):
                continue
            stx = self._anchor_tx(stored.batch_id, _payload_of(stored))
            self._store.set_anchor_tx(stored.batch_id, stx.tx_id)
            log.warning("re-anchoring access-event batch %s", stored.batch_id)
            self._submit(_Pending(stored.batch_id, stx, None))

    def _adopt(self, batch_id: str, slot: _OpenBatch | None) -> bool:
        """If the batch is anchored on the ledger already, record where; else False."""
        raw = self._ledger.state_get(batch_key(batch_id))
        if raw is None:
            return False
        stored = self._store.batch(batch_id)
        state = json.loads(raw)
        if (
            stored is None
            or state.get("root") != stored.root.hex()
            or state.get("org") != self._key.did
        ):
            raise TamperError(f"batch {batch_id} is anchored on the ledger with another root")
        found = self._find_anchor(batch_id, int(state["height"]))
        if found is None:
            raise TamperError(f"batch {batch_id} is anchored but its transaction is missing")
        self._anchored_at(batch_id, found.tx_id, found.log_index, slot)
        return True

    def _find_anchor(self, batch_id: str, height: int) -> TxRecord | None:
        for record in self._ledger.block_txs(height):
            if not record.ok:
                continue
            try:
                stx = decode_transaction(record.wire, TxLimits())
            except MedledgerError:
                continue
            if stx.tx.type == ACCESS_BATCH and stx.tx.payload.get("batch_id") == batch_id:
                return record
        return None

    # --- 5. receipts --------------------------------------------------------------------------
    def receipt(self, event_id: str) -> bytes:
        """The event's receipt (``core.audit.receipt``).

        ``NotFoundError`` until the event's batch is anchored and a signed checkpoint covers
        the anchor; ``TamperError`` if the stored batch does not match what was anchored."""
        stored = self._event(event_id)
        batch = self._store.batch(stored.batch_id)
        if batch is None:
            raise TamperError("a stored access event's batch is missing")
        if batch.state != "anchored" or batch.log_index is None:
            raise NotFoundError("the event's batch is not anchored yet")
        if self._log.latest_checkpoint().size <= batch.log_index:
            raise NotFoundError("no signed checkpoint covers the event's batch yet")
        levels = self._batch_levels(batch)
        index = stored.index
        if levels[0][index] != leaf_hash(stored.event.leaf_bytes()):
            raise TamperError("a stored access event does not match its batch")
        return format_event_receipt(
            EventReceipt(
                event=stored.event,
                batch_id=batch.batch_id,
                index=index,
                size=batch.count,
                proof=tuple(proof_from_levels(levels, index)),
                anchor=self._log.receipt(batch.log_index),
            )
        )

    def wait_receipt(self, event_id: str, timeout_s: float) -> bytes:
        """``receipt``, waiting up to ``timeout_s`` for the batch to be anchored."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._anchored:
                seen = self._anchored_count
            try:
                return self.receipt(event_id)  # outside the lock: waiters do not queue
            except NotFoundError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
            with self._anchored:
                if self._anchored_count == seen:  # nothing anchored since the last try
                    self._anchored.wait(min(remaining, 0.5))

    def _batch_levels(self, batch: StoredBatchLike) -> tuple[tuple[bytes, ...], ...]:
        """The batch's tree, from its stored leaf hashes, checked against its stored root and
        the root anchored on the ledger."""
        with self._levels_lock:
            levels = self._levels.get(batch.batch_id)
        if levels is None:
            levels = build_levels(batch.leaves)
        if levels[-1][0] != batch.root:
            raise TamperError("a stored access-event batch does not match its root")
        raw = self._ledger.state_get(batch_key(batch.batch_id))
        if raw is None or json.loads(raw).get("root") != batch.root.hex():
            raise TamperError("a stored access-event batch is not the one anchored")
        self._cache_levels(batch.batch_id, levels)
        return levels

    def _cache_levels(self, batch_id: str, levels: tuple[tuple[bytes, ...], ...]) -> None:
        with self._levels_lock:
            self._levels[batch_id] = levels
            self._levels.move_to_end(batch_id)
            while len(self._levels) > _LEVELS_CACHE:
                self._levels.popitem(last=False)

    # --- 6. queries ---------------------------------------------------------------------------
    def _event(self, event_id: str) -> StoredEventLike:
        if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
            raise InvalidInputError(
                "event_id: 26 lowercase base32 characters", parameter="event_id"
            )
        stored = self._store.event(event_id)
        if stored is None:
            raise NotFoundError("no such access event (or it is not stored yet)")
        return stored

    def event(self, event_id: str) -> AccessEvent:
        """One event by id; ``NotFoundError`` if unknown or not stored yet."""
        return self._event(event_id).event

    def _cursor(
        self, event_id: str | None, patient: str | None, name: str = "after_event_id"
    ) -> tuple[int, int] | None:
        """The position of the cursor event (of ``patient``, when given)."""
        if event_id is None:
            return None
        cursor = self._event(event_id).event
        if patient is not None and cursor.patient != patient:
            raise InvalidInputError(f"{name}: not an event of this patient", parameter=name)
        position = self._store.position(event_id)
        if position is None:
            raise NotFoundError("no such access event")
        return position

    def list_events(
        self,
        patient: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        actor: str | None = None,
        decision: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after_event_id: str | None = None,
        order: str = OLDEST,
        before_event_id: str | None = None,
        others_only: bool = False,
    ) -> list[AccessEvent]:
        """A page of the patient's events (``core.audit.query.EventQuery``), oldest first --
        the next page starts after the last event's id (``after_event_id``) -- or, with
        ``order="newest"``, newest first -- the next page starts before the last event's id
        (``before_event_id``)."""
        check_paging(order, after_event_id, before_event_id)  # before looking the cursor up
        query = EventQuery(
            patient=patient,
            since_ms=since_ms,
            until_ms=until_ms,
            actor=actor,
            decision=decision,
            purpose=purpose,
            after=self._cursor(after_event_id, patient),
            limit=limit,
            order=order,
            before=self._cursor(before_event_id, patient, "before_event_id"),
            others_only=others_only,
        )
        return list(self._store.list_events(query))

    def break_glass_events(
        self,
        org_did: str,
        *,
        unreviewed_only: bool = False,
        is_reviewed: Callable[[str], bool] | None = None,
        limit: int = 100,
        after_event_id: str | None = None,
    ) -> list[AccessEvent]:
        """Break-glass events for ``org_did``'s privacy officers to review, oldest first:
        those its node decided and those its practitioners made. With ``unreviewed_only``,
        those ``is_reviewed(event_id)`` says are not reviewed yet."""
        if not isinstance(org_did, str) or not is_did_key(org_did):
            raise InvalidInputError("org_did: must be a did:key", parameter="org_did")
        check_limit(limit)
        if unreviewed_only and is_reviewed is None:
            raise InvalidInputError(
                "is_reviewed: needed to list unreviewed events", parameter="is_reviewed"
            )
        after = self._cursor(after_event_id, None)
        found: list[AccessEvent] = []
        while len(found) < limit:
            page = self._store.break_glass_events(org_did, after=after, limit=MAX_LIST_LIMIT)
            for event in page:
                if not unreviewed_only or (
                    is_reviewed is not None and not is_reviewed(event.event_id)
                ):
                    found.append(event)
                    if len(found) == limit:
                        break
            if len(page) < MAX_LIST_LIMIT:
                break
            after = self._store.position(page[-1].event_id)
        return found

    def access_stats(self, window: StatsWindow) -> AccessStats:
        """Decisions per day and denials by actor over this node's events in ``window``
        (``core.audit.stats``; at most ``MAX_EVENTS`` tallied)."""
        return tally(self._store.events_between(window.since_ms, window.until_ms), window,
                     node=self._did)  # fmt: skip


def _payload_of(stored: StoredBatchLike) -> dict[str, object]:
    return {
        "batch_id": stored.batch_id,
        "root": stored.root.hex(),
        "count": stored.count,
        "first_time_ms": stored.first_time_ms,
        "last_time_ms": stored.last_time_ms,
    }
