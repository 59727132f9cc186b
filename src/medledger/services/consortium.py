"""A consortium authority node: submit batches to the ordered log, apply every position,
co-sign every block, and follow finality (ADR 0016).

Threads (started by ``start``, stopped by ``close``):
1. ``submitter``: cuts batches from the node's intake queue (the solo queue's block-cutting
   rule). If this node holds the election it seals the batch with its key and appends it at
   the next position (fenced compare-and-set); otherwise it forwards the envelopes to the
   elected submitter over peer HTTP, and takes them back if that fails.
2. ``campaigner``: keeps the election lease alive, or campaigns when nobody holds it.
3. ``follower``: reads positions in order from the last one applied; for each, checks the
   batch (``verify_batch``), builds the block deterministically (proposer = submitter, time =
   max(prev + 1, batch time)) through ``LedgerNode.build_block`` (which verifies every
   transaction signature it did not check at intake), co-signs it and publishes the vote;
   then counts verified votes: a block whose hash a > 2/3 quorum signed is final. If the
   quorum's hash differs from this node's, the node stops applying and raises an alarm.
4. ``watcher``: an etcd watch that wakes the follower.
Not handled here: etcd and HTTP themselves (ports below), the block and contract rules.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.config import Limits
from medledger.core.checkpoint import parse_checkpoint_body
from medledger.core.consortium.batch import (
    MAX_BATCH_BYTES,
    Batch,
    BatchRejectedError,
    batch_size,
    decode_batch,
    seal_batch,
    verify_batch,
)
from medledger.core.consortium.fence import Fence
from medledger.core.consortium.finality import (
    Vote,
    cast_vote,
    certificate,
    evaluate_finality,
    parse_vote,
    quorum,
    verify_vote,
    vote_verifier,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.block import BlockHeader
from medledger.core.ledger.envelope import TxLimits, decode_transaction
from medledger.core.note import open_note
from medledger.errors import (
    ConflictError,
    MedledgerError,
    NotFoundError,
    StorageError,
    TamperError,
    VerificationError,
)
from medledger.ports import BlockRecord
from medledger.services.ledger import Block, TxStatus

log = logging.getLogger("medledger.consortium")


class OrderedLog(Protocol):
    def append(self, batch_id: str, wire: bytes, fence: Fence) -> int: ...
    def read(self, start: int, limit: int = ...) -> tuple[list[tuple[int, bytes]], int]: ...
    def floor(self) -> int: ...
    def publish_vote(self, height: int, did: str, vote: bytes) -> None: ...
    def votes(self, start_height: int, limit: int = ...) -> list[tuple[int, bytes]]: ...
    def mark_applied(self, did: str, position: int) -> None: ...
    def prune(self, below_position: int, below_height: int) -> int: ...
    def defragment_all(self) -> None: ...
    def watch_changes(
        self, start_revision: int, wake: Callable[[], None], stop: threading.Event
    ) -> None: ...


class ElectionLike(Protocol):
    @property
    def fence(self) -> Fence | None: ...

    def leader(self) -> dict[str, str] | None: ...
    def campaign(self) -> Fence | None: ...
    def keepalive(self) -> bool: ...
    def lost(self) -> None: ...
    def resign(self) -> None: ...


class ConsortiumStore(Protocol):
    def applied_position(self) -> int: ...
    def seen(self, batch_id: str) -> bool: ...
    def position_of(self, height: int) -> int | None: ...
    def record(
        self, position: int, batch_id: str | None, height: int | None, reason: str | None
    ) -> None: ...
    def save_final(
        self, height: int, block_hash: bytes, position: int, certificate: bytes
    ) -> None: ...
    def final_height(self) -> int: ...
    def raise_alarm(self, height: int, message: str) -> None: ...
    def alarm(self) -> tuple[int, str] | None: ...
    def rejected(self, limit: int = ...) -> list[tuple[int, str]]: ...
    def certificate(self, height: int) -> tuple[bytes, int, bytes] | None: ...


class IntakeQueue(Protocol):
    def submit(self, envelope: bytes) -> None: ...
    def next_batch(self, max_items: int, max_wait_s: float) -> list[bytes]: ...


class LedgerLike(Protocol):
    @property
    def network(self) -> str: ...
    def build_block(
        self, batch: Sequence[bytes], now_ms: int, *, proposer: str | None = None
    ) -> Block | None: ...
    def latest_block(self) -> BlockRecord: ...
    def block(self, height: int) -> BlockRecord: ...
    def status(self, tx_id: bytes) -> TxStatus: ...


Forward = Callable[[str, Sequence[bytes]], None]
#: ``fetch_block(peer_url, height)``: the peer's block (``/consortium/blocks/<h>``) or None.
FetchBlock = Callable[[str, int], "dict[str, object] | None"]


@dataclass(frozen=True, slots=True)
class ConsortiumSettings:
    max_batch_txs: int = 500
    batch_interval_s: float = 0.05
    poll_s: float = 0.5
    #: the submitter deletes positions this far below the last final one (0: never prune)
    retain_positions: int = 10_000
    prune_every_s: float = 2.0
    #: a forwarded envelope still pending after this long is forwarded again
    reforward_s: float = 5.0
    #: defragment the members (one at a time) every this many prunes
    defragment_every: int = 100
    #: a node whose next block stays without a quorum of votes this long (they may have been
    #: pruned from etcd before it read them) asks its peers for the block's certificate
    certificate_fallback_s: float = 3.0


class ConsortiumNode:
    def __init__(
        self,
        *,
        key: ParticipantKey,
        url: str,
        ledger: LedgerLike,
        queue: IntakeQueue,
        ordered: OrderedLog,
        election: ElectionLike,
        store: ConsortiumStore,
        authorities: Callable[[], Collection[str]],
        forward: Forward,
        clock_ms: Callable[[], int],
        settings: ConsortiumSettings | None = None,
        peers: Sequence[str] = (),
        fetch_block: FetchBlock | None = None,
    ) -> None:
        self.peers = tuple(peers)
        self.fetch_block = fetch_block
        self.key = key
        self.url = url
        self.ledger = ledger
        self.queue = queue
        self.ordered = ordered
        self.election = election
        self.store = store
        self.authorities = authorities
        self.forward = forward
        self.clock_ms = clock_ms
        self.settings = settings or ConsortiumSettings()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._final = threading.Condition()
        self._final_height = store.final_height()
        self._own: dict[int, bytes] = {}  # height -> own header hash, not yet final
        self._unsent: dict[int, bytes] = {}  # height -> own vote not yet published
        self._verified: dict[tuple[int, str], Vote] = {}
        self._dissent: dict[str, int] = {}  # authority -> first height it signed differently
        self._threads: list[threading.Thread] = []
        self._last_batch_ms = 0
        self._prunes = 0
        self._stuck_since: float | None = None  # since when the next block awaits its quorum
        self._forwarded: dict[bytes, float] = {}
        self._forwarded_lock = threading.Lock()
        self.stats: dict[str, float] = {
            "batches": 0, "forwarded": 0, "rejected": 0, "blocks": 0,
            "append_s": 0.0, "forward_s": 0.0, "apply_s": 0.0, "votes_s": 0.0, "read_s": 0.0,
        }  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.check_store()
        for name, target in (
            ("submitter", self._run_submitter),
            ("campaigner", self._run_campaigner),
            ("follower", self._run_follower),
            ("watcher", self._run_watcher),
        ):
            t = threading.Thread(target=target, name=f"consortium-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._final:
            self._final.notify_all()
        for t in self._threads:
            if t.name != "consortium-watcher":
                t.join(timeout=10)
        self.election.resign()

    def check_store(self) -> None:
        """On start: the stored latest block hashes to its stored hash, and the last final
        block is the one its certificate names; otherwise raise the alarm (tamper)."""
        problem = self._store_problem()
        if problem is not None:
            message = f"the store is tampered with: {problem}"
            log.critical(message)
            self.store.raise_alarm(self._final_height, message)

    def _store_problem(self) -> str | None:
        try:
            latest = self.ledger.latest_block()
            header = BlockHeader.from_json(json.loads(latest.header))
        except (MedledgerError, ValueError) as e:
            return f"the latest block does not parse ({e})"
        if not hmac.compare_digest(header.hash(), latest.hash):
            return f"block {header.height}: the header does not hash to its stored hash"
        final = self.store.final_height()
        cert = self.store.certificate(final) if final else None
        if cert is not None:
            own = self._own_hash(final)
            if own is None or not hmac.compare_digest(own, cert[0]):
                return f"block {final} differs from its final certificate"
        return None

    # --- 1. submitter ------------------------------------------------------------------------
    def _run_submitter(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            envelopes = self.queue.next_batch(s.max_batch_txs, s.batch_interval_s)
            if not envelopes:
                continue
            for chunk in _chunks(envelopes, MAX_BATCH_BYTES - 4096):
                self._submit_chunk(chunk)

    def _submit_chunk(self, envelopes: list[bytes]) -> None:
        try:
            fence = self.election.fence
            if fence is None and self.key.did in self.authorities():
                fence = self.election.campaign()
            t0 = time.monotonic()
            if fence is not None:
                self._append(envelopes, fence)
                self.stats["append_s"] += time.monotonic() - t0
                return
            leader = self.election.leader()
            if leader is None or leader.get("did") == self.key.did:
                raise ConflictError("no submitter elected yet")
            self.forward(leader["url"], envelopes)
            now = time.monotonic()
            with self._forwarded_lock:
                for envelope in envelopes:
                    self._forwarded[envelope] = now
            self.stats["forwarded"] += len(envelopes)
            self.stats["forward_s"] += time.monotonic() - t0
        except MedledgerError as e:
            if isinstance(e, ConflictError):
                self.election.lost()
            log.warning("batch of %d not ordered yet (%s): retrying", len(envelopes), e)
            self._stop.wait(0.1)
            for envelope in envelopes:  # back into the queue, to be ordered or forwarded
                try:
                    self.queue.submit(envelope)
                except MedledgerError:
                    log.error("intake queue full: an envelope stays pending")

    def _append(self, envelopes: list[bytes], fence: Fence) -> None:
        now = max(self.clock_ms(), self._last_batch_ms + 1)
        self._last_batch_ms = now
        batch = Batch(
            network=self.ledger.network,
            batch_id=secrets.token_hex(16),
            submitter=self.key.did,
            time_ms=now,
            txs=tuple(envelopes),
        )
        sealed = seal_batch(batch, self.key.sign)
        self.ordered.append(batch.batch_id, sealed.wire, fence)
        self.stats["batches"] += 1
        self._wake.set()

    # --- 2. campaigner -------------------------------------------------------------------------
    def _run_campaigner(self) -> None:
        last_prune = time.monotonic()
        while not self._stop.is_set():
            self._reforward()
            try:
                if self.election.fence is not None:
                    self.election.keepalive()
                    if time.monotonic() - last_prune > self.settings.prune_every_s:
                        last_prune = time.monotonic()
                        self._prune()
                elif self.election.leader() is None and self.key.did in self.authorities():
                    self.election.campaign()
            except MedledgerError as e:
                log.info("election: %s", e)
            self._stop.wait(0.5)

    def _reforward(self) -> None:
        """Envelopes forwarded more than ``reforward_s`` ago and still pending here go back
        into the queue: the submitter may have crashed before ordering them (its intake
        refuses a second copy of one it still holds)."""
        cutoff = time.monotonic() - self.settings.reforward_s
        with self._forwarded_lock:
            old = [w for w, at in self._forwarded.items() if at < cutoff]
            for wire in old:
                del self._forwarded[wire]
        for wire in old:
            try:
                tx_id = decode_transaction(wire, TxLimits()).tx_id
                status = self.ledger.status(tx_id)
            except MedledgerError:
                continue  # dropped or no longer known here: nothing to retry
            if status.status == "pending":
                self.stats["reforwarded"] = self.stats.get("reforwarded", 0) + 1
                with contextlib.suppress(MedledgerError):
                    self.queue.submit(wire)

    def _prune(self) -> None:
        """The submitter bounds etcd's growth: positions and votes well below the last block
        a quorum signed are deleted (a lagging node then catches up from peers)."""
        retain = self.settings.retain_positions
        if retain <= 0:
            return
        final = self._final_height
        cert = self.store.certificate(final) if final else None
        if cert is None or cert[1] - retain <= 1:
            return
        if self.ordered.prune(cert[1] - retain, max(1, final - retain)):
            self._prunes += 1
            if self._prunes % self.settings.defragment_every == 0:
                self.ordered.defragment_all()  # one member at a time

    # --- 4. watcher --------------------------------------------------------------------------
    def _run_watcher(self) -> None:
        self.ordered.watch_changes(0, self._wake.set, self._stop)

    # --- 3. follower -------------------------------------------------------------------------
    def _run_follower(self) -> None:
        with contextlib.suppress(MedledgerError):
            self._revote()
        while not self._stop.is_set():
            self._wake.clear()
            position = self.store.applied_position()  # again after any error
            try:
                self._flush_votes()
                if self.store.alarm() is None:
                    position = self._apply_available(position)
                t0 = time.monotonic()
                self._follow_votes()
                self.stats["votes_s"] += time.monotonic() - t0
            except (TamperError, StorageError) as e:
                message = f"cannot apply position {position + 1}: {e}"
                log.critical(message)
                self.store.raise_alarm(self._final_height + 1, message)
            except MedledgerError as e:
                log.error("follower: %s", e)
                self._stop.wait(0.2)
            self._wake.wait(self.settings.poll_s)

    def _apply_available(self, position: int) -> int:
        while not self._stop.is_set():
            t0 = time.monotonic()
            items, _ = self.ordered.read(position + 1)
            self.stats["read_s"] += time.monotonic() - t0
            if items and items[0][0] != position + 1:
                position = self._catch_up_from_peers(position, items[0][0])
                continue
            if not items:
                return position
            for p, raw in items:
                if p != position + 1:
                    raise ConflictError(f"position {position + 1} missing from the etcd log")
                t0 = time.monotonic()
                self._apply(p, raw)
                self.stats["apply_s"] += time.monotonic() - t0
                position = p
            self.ordered.mark_applied(self.key.did, position)
        return position

    def _apply(self, position: int, raw: bytes) -> None:
        batch_id: str | None = None
        try:
            sealed = decode_batch(raw)
            batch_id = sealed.batch.batch_id
            verify_batch(
                sealed,
                network=self.ledger.network,
                authorities=self.authorities(),
                seen=self.store.seen,
            )
        except BatchRejectedError as e:
            log.warning("position %d rejected (%s): %s", position, e.reason, e)
            self.stats["rejected"] += 1
            self.store.record(
                position, None if e.reason == "duplicate_batch" else batch_id, None, e.reason
            )
            return
        batch = sealed.batch
        block = self.ledger.build_block(batch.txs, batch.time_ms, proposer=batch.submitter)
        if block is None:
            self.store.record(position, batch_id, None, None)
            return
        header_raw = block.header
        header = BlockHeader.from_json(json.loads(header_raw))
        self.store.record(position, batch_id, header.height, None)
        self.stats["blocks"] += 1
        self._vote(header, position)
        self._flush_votes()

    def _vote(self, header: BlockHeader, position: int) -> None:
        """Co-sign block ``header`` (from ``position``) and queue the vote for publishing;
        a node whose key is not (yet) an authority keeps its own hash only."""
        self._own[header.height] = header.hash()
        if self.key.did not in self.authorities():
            return
        vote = cast_vote(
            self.key,
            network=self.ledger.network,
            height=header.height,
            position=position,
            header_hash=header.hash(),
            log_size=header.log_size,
            log_root=header.log_root,
            time_s=header.time_ms // 1000,
        )
        self._own[header.height] = header.hash()
        self._unsent[header.height] = vote.to_bytes()

    def _flush_votes(self) -> None:
        """Publish queued votes; one that fails (etcd error) stays queued for the next turn."""
        for height in sorted(self._unsent):
            self.ordered.publish_vote(height, self.key.did, self._unsent[height])
            del self._unsent[height]

    def _revote(self) -> None:
        """On start: queue this node's votes again for its blocks not yet final (a crash may
        have come between a block's commit and its vote)."""
        latest = self.ledger.latest_block()
        for height in range(self._final_height + 1, latest.height + 1):
            position = self.store.position_of(height)
            if position is None:
                continue
            record = self.ledger.block(height)
            self._vote(BlockHeader.from_json(json.loads(record.header)), position)

    def _follow_votes(self) -> None:
        """Count votes above the last final height, in order; stop at the first not final."""
        authorities = self.authorities()
        start = self._final_height + 1
        for height, raw in self.ordered.votes(start):
            try:
                vote = parse_vote(raw, self.ledger.network)
                if vote.height != height:
                    continue
                k = (height, vote.signer)
                cached = self._verified.get(k)
                if cached is None or cached.header_hash != vote.header_hash:
                    verify_vote(vote, authorities)
                    self._verified[k] = vote
            except MedledgerError as e:
                log.warning("ignored a vote at height %d: %s", height, e)
        while True:
            h = self._final_height + 1
            votes = [v for (height, _), v in self._verified.items() if height == h]
            result = evaluate_finality(h, votes, authorities)
            if not result.is_final or result.final_hash is None:
                self._maybe_certify_from_peers(h)
                return
            self._stuck_since = None
            own = self._own_hash(h)
            if own is None:
                return
            for signer in result.dissenters:
                self._dissent.setdefault(signer, h)
            if not hmac.compare_digest(result.final_hash, own):
                message = (
                    f"block {h}: this node's header {own.hex()[:16]} differs from the quorum's "
                    f"{result.final_hash.hex()[:16]}: stopped applying"
                )
                log.critical(message)
                self.store.raise_alarm(h, message)
                return
            cert = certificate(votes, result.final_hash)
            position = next(v.position for v in votes if v.header_hash == result.final_hash)
            self.store.save_final(h, result.final_hash, position, cert)
            with self._final:
                self._final_height = h
                self._final.notify_all()
            self._own.pop(h, None)
            for key in [k for k in self._verified if k[0] <= h]:
                del self._verified[key]

    def _maybe_certify_from_peers(self, height: int) -> None:
        """Finality's fallback: a block this node applied has waited ``certificate_fallback_s``
        for a quorum of votes (the submitter prunes old votes from etcd, so a node that read
        its blocks late may never see them): take the certificates of it and the blocks after
        it from a peer instead -- > 2/3 authority cosignatures, each verified, naming this
        node's own block hashes."""
        if self._own_hash(height) is None or self.fetch_block is None or not self.peers:
            self._stuck_since = None
            return
        now = time.monotonic()
        if self._stuck_since is None:
            self._stuck_since = now
        if now - self._stuck_since < self.settings.certificate_fallback_s:
            return
        authorities = self.authorities()
        for peer in self.peers:
            while (own := self._own_hash(height)) is not None and self.store.alarm() is None:
                if not self._certify_from(peer, height, own, authorities):
                    break
                height += 1
        self._stuck_since = None

    def _certify_from(
        self, peer: str, height: int, own: bytes, authorities: Collection[str]
    ) -> bool:
        """Whether ``peer`` gave a valid certificate for our block ``height`` (then final)."""
        assert self.fetch_block is not None
        try:
            data = self.fetch_block(peer, height)
            if data is None:
                return False
            position, block_hash, cert = _verified_certificate(
                data, height, self.ledger.network, authorities
            )
        except MedledgerError as e:
            log.warning("certificate of block %d from %s: %s", height, peer, e)
            return False
        if not hmac.compare_digest(block_hash, own):
            message = (
                f"block {height}: this node's header {own.hex()[:16]} differs from the "
                f"certified {block_hash.hex()[:16]}: stopped applying"
            )
            log.critical(message)
            self.store.raise_alarm(height, message)
            return False
        self.store.save_final(height, block_hash, position, cert)
        with self._final:
            self._final_height = height
            self._final.notify_all()
        self._own.pop(height, None)
        for key in [k for k in self._verified if k[0] <= height]:
            del self._verified[key]
        self.stats["certified_from_peers"] = self.stats.get("certified_from_peers", 0) + 1
        return True

    # --- catch-up from peers -----------------------------------------------------------------
    def _catch_up_from_peers(self, position: int, floor: int) -> int:
        """Positions up to ``floor - 1`` were pruned from etcd: fetch the final blocks from
        peers, verify each certificate (> 2/3 authority cosignatures) and header, replay the
        transactions (every signature verified) and check the same block hash comes out."""
        if self.fetch_block is None or not self.peers:
            raise ConflictError(f"position {position + 1} was pruned and no peer is configured")
        for peer in self.peers:
            try:
                position = self._catch_up_from(peer, position, floor)
            except NotFoundError:
                continue
            except VerificationError as e:
                log.error("peer %s sent a block that does not verify: %s", peer, e)
                continue
            except MedledgerError as e:
                log.warning("catch-up from %s: %s", peer, e)
                continue
            if position >= floor - 1:
                return position
        raise ConflictError(f"no peer could give the blocks for positions {position + 1}..")

    def _catch_up_from(self, peer: str, position: int, floor: int) -> int:
        assert self.fetch_block is not None
        authorities = self.authorities()
        while position < floor - 1:
            latest = self.ledger.latest_block()
            height = latest.height + 1
            data = self.fetch_block(peer, height)
            if data is None:
                raise NotFoundError(f"{peer} has no final block {height}")
            block_position, block_hash, cert = _verified_certificate(
                data, height, self.ledger.network, authorities
            )
            header = BlockHeader.from_json(json.loads(str(data["header"])))
            if not hmac.compare_digest(header.hash(), block_hash):
                raise VerificationError(f"block {height}: header does not match its certificate")
            raw_txs = data.get("txs")
            if not isinstance(raw_txs, list):
                raise VerificationError(f"block {height}: no transaction list")
            txs = [_unb64(t) for t in raw_txs]
            block = self.ledger.build_block(txs, header.time_ms, proposer=header.proposer)
            got = None if block is None else block.hash
            if got is None or not hmac.compare_digest(got, block_hash):
                message = f"block {height} replayed from {peer} differs from its certificate"
                self.store.raise_alarm(height, message)
                raise TamperError(message)
            self.store.record(block_position, None, height, None)
            self.store.save_final(height, block_hash, block_position, cert)
            with self._final:
                self._final_height = max(self._final_height, height)
                self._final.notify_all()
            position = block_position
            self.stats["caught_up"] = self.stats.get("caught_up", 0) + 1
        return position

    def _own_hash(self, height: int) -> bytes | None:
        own = self._own.get(height)
        if own is not None:
            return own
        try:
            block_hash: bytes = self.ledger.block(height).hash
        except MedledgerError:
            return None
        return block_hash

    # --- queries -----------------------------------------------------------------------------
    def final_height(self) -> int:
        return self._final_height

    def wait_final(self, height: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._final:
            while self._final_height < height and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._final.wait(remaining)
            return self._final_height >= height

    def status(self) -> dict[str, object]:
        latest = self.ledger.latest_block()
        header = BlockHeader.from_json(json.loads(latest.header))
        leader = None
        with contextlib.suppress(MedledgerError):
            leader = self.election.leader()
        alarm = self.store.alarm()
        return {
            "did": self.key.did,
            "url": self.url,
            "height": header.height,
            "block_hash": header.hash().hex(),
            "state_root": header.state_root.hex(),
            "applied_position": self.store.applied_position(),
            "final_height": self._final_height,
            "submitter": leader,
            "is_submitter": self.election.fence is not None,
            "alarm": None if alarm is None else {"height": alarm[0], "message": alarm[1]},
            "dissenters": dict(self._dissent),
            "rejected": [{"position": p, "reason": r} for p, r in self.store.rejected()],
            "stats": dict(self.stats),
        }


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise VerificationError("a transaction is not base64")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise VerificationError("a transaction is not base64") from e


def _verified_certificate(
    data: dict[str, object], height: int, network: str, authorities: Collection[str]
) -> tuple[int, bytes, bytes]:
    """Open a peer's final certificate for block ``height``: a C2SP checkpoint note with
    > 2/3 authority cosignatures (each verified), origin and extension lines as ADR 0016
    says. Returns (position, block hash, certificate bytes)."""
    raw = data.get("certificate")
    if not isinstance(raw, str):
        raise NotFoundError(f"block {height} is not final at the peer")
    note = raw.encode()
    verifiers = [vote_verifier(a) for a in authorities]
    opened = open_note(note, verifiers, Limits())
    if len({s.name for s in opened.signatures}) < quorum(len(authorities)):
        raise VerificationError(f"block {height}: fewer than a quorum of authorities signed")
    checkpoint = parse_checkpoint_body(opened.text, Limits())
    ext = checkpoint.extensions
    if checkpoint.origin != f"medledger/{network}/blocks" or len(ext) != 2:
        raise VerificationError(f"block {height}: not a block certificate of this network")
    words, pos = ext[0].split(" "), ext[1].split(" ")
    if len(words) != 3 or words[:2] != ["block", str(height)] or pos[0] != "position":
        raise VerificationError(f"block {height}: the certificate is for another block")
    try:
        return int(pos[1]), bytes.fromhex(words[2]), note
    except (ValueError, IndexError) as e:
        raise VerificationError(f"block {height}: malformed certificate") from e


def _chunks(envelopes: list[bytes], limit: int) -> list[list[bytes]]:
    """Split so each batch's wire form stays under ``limit`` bytes."""
    out: list[list[bytes]] = [[]]
    size = batch_size([])
    for e in envelopes:
        grow = batch_size([e]) - batch_size([])
        if out[-1] and size + grow > limit:
            out.append([])
            size = batch_size([])
        out[-1].append(e)
        size += grow
    return out
