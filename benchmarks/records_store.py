"""Encrypt+store and fetch+verify+decrypt of one record: medledger vs the bare floor, interleaved.

Per record size, rounds of ``round_ops`` records, each round:

1. **store**, op by op, the contenders' order alternating (bare first on even ops, medledger
   first on odd ones), so both see the same machine state:
   - bare: ``AESGCM(fresh key).encrypt(fresh nonce, plaintext, None)``, the ciphertext written
     to a new file (``open(.., "xb")``, write, ``fsync``, close);
   - medledger: ``seal_record`` (fresh data key, nonce and salt; ``RecordAad``),
     ``salted_commitment``, ``FilesystemBlobStore.put`` (CID, temp file, fsync, rename,
     directory fsync) and ``wrap_key`` to the node and to the patient -- ``RecordService.put``
     without the ledger anchor and the key vault;
   - diagnostics, in no ratio: bare's encryption + ``adapters.files.atomic_write`` (the blob
     store's durability protocol) into a directory of its own; and medledger's store with the
     blob put on a worker thread while the commitment and the wraps run on this one (the
     fsyncs release the GIL), into a blob store of its own;
2. **fetch** every record of the round, interleaved the same way:
   - bare: read the file, ``AESGCM.decrypt``;
   - medledger: ``FilesystemBlobStore.get`` (read, CID check), ``unwrap_key`` (the node's
     wrap), ``open_record``, ``verify_commitment`` -- ``RecordService.read`` without the access
     decision and its state reads;
3. untimed: every plaintext checked equal to the one stored, the round's files deleted.

Each medledger step is timed on its own (their sum is the medledger time), and so, outside
every ratio, is one SHA-256 over a record-sized buffer in memory: what the CID's hash costs
inside a blob put or get (and the commitment's HMAC, within a few percent). Reads come from
the page cache for both contenders (the files were just written).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import shutil
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.records_setup import BenchNode
from benchmarks.timing import Rate
from medledger.adapters.blob_fs import DIR_MODE, FilesystemBlobStore
from medledger.adapters.files import atomic_write
from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, wrap_key
from medledger.core.crypto.record_cipher import (
    RecordAad,
    open_record,
    salted_commitment,
    seal_record,
    verify_commitment,
)

T = TypeVar("T")
RESOURCE_TYPE = "Observation"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # a shard directory is two of these (blob_fs)
STORE_STEPS = ("seal_record", "salted_commitment", "FilesystemBlobStore.put", "wrap_key x2")
FETCH_STEPS = ("FilesystemBlobStore.get", "unwrap_key", "open_record", "verify_commitment")


@dataclass(frozen=True, slots=True)
class _BareRecord:
    path: Path
    key: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class _OursRecord:
    cid: str
    aad: RecordAad
    info: WrapInfo
    salt: bytes
    commitment: bytes
    node_wrap: bytes


@dataclass
class SizeRun:
    """One record size: seconds per contender and per medledger step, over ``ops`` records."""

    size: int
    ops: int = 0
    bare_store: float = 0.0
    ours_store: float = 0.0
    atomic_store: float = 0.0  # diagnostic: bare encryption + atomic_write
    overlap_store: float = 0.0  # diagnostic: medledger store, blob put on a worker thread
    bare_fetch: float = 0.0
    ours_fetch: float = 0.0
    sha256: float = 0.0  # diagnostic: one SHA-256 over a record-sized buffer, per op
    store_steps: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    fetch_steps: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    round_ratios: list[tuple[float, float]] = field(default_factory=list)  # (store, fetch)

    def totals(self) -> tuple[float, float, float, float]:
        return self.bare_store, self.ours_store, self.bare_fetch, self.ours_fetch

    def spread(self, which: int) -> tuple[float, float]:
        """Lowest and highest ratio over the rounds (0: store, 1: fetch)."""
        ratios = [r[which] for r in self.round_ratios]
        return min(ratios), max(ratios)

    def rate(self, seconds: float) -> Rate:
        return Rate(self.ops, seconds)

    @property
    def store_ratio(self) -> float:
        return self.bare_store / self.ours_store

    @property
    def fetch_ratio(self) -> float:
        return self.bare_fetch / self.ours_fetch

    def us(self, seconds: float) -> float:
        return seconds / self.ops * 1e6

    def as_json(self) -> dict[str, object]:
        def steps(d: dict[str, float]) -> dict[str, float]:
            return {k: round(self.us(v), 1) for k, v in d.items()}

        return {
            "size": self.size,
            "ops": self.ops,
            "store_per_s": {
                "bare": round(self.rate(self.bare_store).per_s, 1),
                "medledger": round(self.rate(self.ours_store).per_s, 1),
                "diagnostic_bare_atomic_write": round(self.rate(self.atomic_store).per_s, 1),
                "diagnostic_medledger_put_overlapped": round(
                    self.rate(self.overlap_store).per_s, 1
                ),
            },
            "fetch_per_s": {
                "bare": round(self.rate(self.bare_fetch).per_s, 1),
                "medledger": round(self.rate(self.ours_fetch).per_s, 1),
            },
            "store_ratio": round(self.store_ratio, 3),
            "fetch_ratio": round(self.fetch_ratio, 3),
            "round_ratios": [[round(a, 3), round(b, 3)] for a, b in self.round_ratios],
            "store_steps_us": steps(self.store_steps),
            "fetch_steps_us": steps(self.fetch_steps),
            "sha256_us": round(self.us(self.sha256), 1),
        }


class _Contenders:
    """The three ways to store a record and the two ways to fetch one, each timed."""

    def __init__(self, bench: BenchNode, work: Path, pool: ThreadPoolExecutor) -> None:
        self.blobs = FilesystemBlobStore(work / "blobs")
        self.bare_dir, self.atomic_dir = work / "bare", work / "atomic"
        self.overlap_blobs = FilesystemBlobStore(work / "overlap")
        for d in (self.bare_dir, self.atomic_dir):
            d.mkdir(parents=True, exist_ok=True)
        for store in (self.blobs, self.overlap_blobs):  # as on a node that has run a while
            for shard in itertools.product(BASE32, repeat=2):
                (store.root / "".join(shard)).mkdir(mode=DIR_MODE, exist_ok=True)
        self.pool = pool
        self.node_id = bench.node.key.did
        self.node_enc = bench.node_encryption
        self.patient = bench.patients[0]
        self.patient_public = bench.patient_keys[self.patient]

    def bare_store(self, n: int, plaintext: bytes) -> _BareRecord:
        key, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext, None)
        path = self.bare_dir / str(n)
        with path.open("xb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        return _BareRecord(path, key, nonce)

    def atomic_store(self, n: int, plaintext: bytes) -> None:
        key, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
        atomic_write(self.atomic_dir / str(n), AESGCM(key).encrypt(nonce, plaintext, None))

    def ours_store(self, n: int, plaintext: bytes, run: SizeRun) -> _OursRecord:
        record_id = f"bench-{run.size}-{n}"
        t0 = perf_counter()
        data_key, nonce, salt = (secrets.token_bytes(k) for k in (32, 12, 32))
        aad = RecordAad(record_id, 1, RESOURCE_TYPE, self.patient)
        blob = seal_record(plaintext, data_key, nonce, aad)
        t1 = perf_counter()
        commitment = salted_commitment(salt, plaintext)
        t2 = perf_counter()
        cid = self.blobs.put(blob)
        t3 = perf_counter()
        info = WrapInfo(record_id, 1, self.node_id, "custodian")
        node_wrap = wrap_key(data_key, self.node_enc.public_key, info)
        patient_info = WrapInfo(record_id, 1, self.patient, "patient")
        wrap_key(data_key, self.patient_public, patient_info)
        t4 = perf_counter()
        for step, seconds in zip(STORE_STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            run.store_steps[step] += seconds
        run.ours_store += t4 - t0
        return _OursRecord(cid, aad, info, salt, commitment, node_wrap)

    def overlap_store(self, n: int, plaintext: bytes) -> str:
        record_id = f"bench-overlap-{n}"
        data_key, nonce, salt = (secrets.token_bytes(k) for k in (32, 12, 32))
        aad = RecordAad(record_id, 1, RESOURCE_TYPE, self.patient)
        put = self.pool.submit(self.overlap_blobs.put, seal_record(plaintext, data_key, nonce, aad))
        salted_commitment(salt, plaintext)
        wrap_key(
            data_key, self.node_enc.public_key, WrapInfo(record_id, 1, self.node_id, "custodian")
        )
        wrap_key(data_key, self.patient_public, WrapInfo(record_id, 1, self.patient, "patient"))
        return put.result()

    def bare_fetch(self, record: _BareRecord) -> bytes:
        with record.path.open("rb") as f:
            sealed = f.read()
        return AESGCM(record.key).decrypt(record.nonce, sealed, None)

    def ours_fetch(self, record: _OursRecord, run: SizeRun) -> bytes:
        t0 = perf_counter()
        blob = self.blobs.get(record.cid)
        t1 = perf_counter()
        data_key = unwrap_key(record.node_wrap, self.node_enc.private_key, record.info)
        t2 = perf_counter()
        plaintext = open_record(blob, data_key, record.aad)
        t3 = perf_counter()
        verify_commitment(record.salt, plaintext, record.commitment)
        t4 = perf_counter()
        for step, seconds in zip(FETCH_STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            run.fetch_steps[step] += seconds
        run.ours_fetch += t4 - t0
        return plaintext


def _timed(call: Callable[..., T], *args: object) -> tuple[float, T]:
    """``call(*args)``, and the seconds it took."""
    start = perf_counter()
    value = call(*args)
    return perf_counter() - start, value


def _alternate(i: int, bare: Callable[[], None], ours: Callable[[], None]) -> None:
    """Bare first on even ops, medledger first on odd ones."""
    for call in (bare, ours) if i % 2 == 0 else (ours, bare):
        call()


def _round(c: _Contenders, into: SizeRun, first: int, count: int) -> None:
    plaintext = secrets.token_bytes(into.size)
    before = into.totals()
    bare: list[_BareRecord] = []
    ours: list[_OursRecord] = []
    overlapped: list[str] = []
    for i in range(first, first + count):

        def store_bare(n: int = i) -> None:
            seconds, record = _timed(c.bare_store, n, plaintext)
            into.bare_store += seconds
            bare.append(record)

        def store_ours(n: int = i) -> None:
            ours.append(c.ours_store(n, plaintext, into))

        _alternate(i, store_bare, store_ours)
        into.atomic_store += _timed(c.atomic_store, i, plaintext)[0]
        seconds, cid = _timed(c.overlap_store, i, plaintext)
        into.overlap_store += seconds
        overlapped.append(cid)
        into.sha256 += _timed(hashlib.sha256, plaintext)[0]
    got: list[bytes] = []  # one op's two plaintexts, checked untimed
    for i, (b, o) in enumerate(zip(bare, ours, strict=True)):
        got.clear()

        def fetch_bare(record: _BareRecord = b) -> None:
            seconds, plain = _timed(c.bare_fetch, record)
            into.bare_fetch += seconds
            got.append(plain)

        def fetch_ours(record: _OursRecord = o) -> None:
            got.append(c.ours_fetch(record, into))

        _alternate(i, fetch_bare, fetch_ours)
        if got != [plaintext, plaintext]:
            raise RuntimeError("a fetched record is not the plaintext stored")
    into.ops += count
    bare_s, ours_s, bare_f, ours_f = (b - a for a, b in zip(before, into.totals(), strict=True))
    into.round_ratios.append((bare_s / ours_s, bare_f / ours_f))
    for o in ours:  # untimed clean-up: the disk holds one round at a time
        c.blobs.delete(o.cid)
    for cid in overlapped:
        c.overlap_blobs.delete(cid)
    for d in (c.bare_dir, c.atomic_dir):
        shutil.rmtree(d)
        d.mkdir()


def measure_size(
    bench: BenchNode, work: Path, size: int, ops: int, round_ops: int, warmup: int
) -> SizeRun:
    """``ops`` records of ``size`` bytes, stored then fetched by every contender."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-put") as pool:
        c = _Contenders(bench, work, pool)
        _round(c, SizeRun(size), 0, warmup)  # warm-up: its figures are dropped
        run = SizeRun(size)
        done = 0
        while done < ops:
            count = min(round_ops, ops - done)
            _round(c, run, warmup + done, count)
            done += count
    return run
