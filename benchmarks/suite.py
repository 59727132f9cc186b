"""One benchmark run, phase by phase, each phase growing its trees through ``config.sizes``.

1. medledger ``SqliteLog`` and the bare hashlib limit, interleaved batch by batch; at each size:
   roots compared, proofs/s, disk bytes, peak RSS (measured before any peer runs, so the
   process's high-water mark is ours). Then the same appends into fresh logs at other batch
   sizes (the per-commit fsync is a fixed cost per batch).
2. pymerkle ``SqliteTree`` (append + root per batch), with its own inclusion proofs/s.
3. PostgreSQL 15, an own cluster, ``COPY`` per batch.
4. pymerkle ``InmemoryTree`` (small sizes only: one Python object per node).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from rich.progress import Progress

from benchmarks import machine
from benchmarks.bare import BareTree
from benchmarks.build import grow
from benchmarks.config import BenchConfig
from benchmarks.ours import OursAppender
from benchmarks.peer_postgres import PostgresAppender
from benchmarks.peer_pymerkle import PymerkleInmemoryAppender, PymerkleSqliteAppender
from benchmarks.postgres_cluster import running_cluster, server_version
from benchmarks.proofs import measure_proofs
from benchmarks.results import OursRow, PeerRow, SuiteResult, SweepRow
from benchmarks.timing import Rate

Advance = Callable[[int], object]


def _advancer(progress: Progress, description: str, total: int) -> Advance:
    task = progress.add_task(description, total=total)
    return lambda n: progress.advance(task, n)


def _segments(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    return list(zip((0, *sizes[:-1]), sizes, strict=True))


def phase_ours(config: BenchConfig, progress: Progress, work: Path) -> list[OursRow]:
    """Phase 1: medledger beside the bare limit, then proofs, disk and memory at each size."""
    ours, bare = OursAppender(work / "medledger.db"), BareTree()
    rng = random.Random(config.seed)
    rows: list[OursRow] = []
    entry_bytes = 0
    advance = _advancer(progress, "medledger + bare hashlib: append", config.sizes[-1])
    try:
        for start, size in _segments(config.sizes):
            seg = grow({"ours": ours, "bare": bare}, start, size, config.batch_entries, advance)
            entry_bytes += seg.entry_bytes
            after_appends = machine.memory_mib()
            counts = (config.inclusion_proofs, config.consistency_proofs)
            proof_advance = _advancer(progress, f"medledger: proofs at {size:,}", 3 * sum(counts))
            proofs = measure_proofs(ours.service, size, counts, rng, proof_advance)
            rows.append(
                OursRow(
                    size=size,
                    segment_start=start,
                    bare=seg.rates["bare"],
                    ours=seg.rates["ours"],
                    proofs=proofs,
                    disk_bytes=ours.disk_bytes(),
                    entry_bytes=entry_bytes,
                    memory_after_appends=after_appends,
                    memory=machine.memory_mib(),
                    bare_root=bare.root(),
                    root_matches_bare=ours.root() == bare.root(),
                )
            )
    finally:
        ours.close()
    return rows


def phase_batch_sweep(config: BenchConfig, progress: Progress, work: Path) -> list[SweepRow]:
    """Phase 1b: the same append workload into fresh logs at other batch sizes."""
    rows: list[SweepRow] = []
    total = config.sweep_entries * len(config.sweep_batches)
    advance = _advancer(progress, "medledger + bare hashlib: batch sizes", total)
    for batch in config.sweep_batches:
        ours, bare = OursAppender(work / f"sweep-{batch}.db"), BareTree()
        try:
            seg = grow({"ours": ours, "bare": bare}, 0, config.sweep_entries, batch, advance)
        finally:
            ours.close()
        rows.append(SweepRow(batch, bare=seg.rates["bare"], ours=seg.rates["ours"]))
    return rows


def phase_pymerkle(
    config: BenchConfig, progress: Progress, work: Path, bare_roots: dict[int, bytes]
) -> tuple[list[PeerRow], dict[str, str]]:
    """Phase 2: pymerkle's SQLite-backed tree, append + root per batch, and its proofs."""
    sizes = config.peer_sizes(config.peer_max_size)
    peer = PymerkleSqliteAppender(work / "pymerkle.db")
    rng = random.Random(config.seed)
    rows: list[PeerRow] = []
    advance = _advancer(progress, "pymerkle SqliteTree: append", sizes[-1])
    try:
        settings = peer.sqlite_settings()
        for start, size in _segments(sizes):
            root_before = peer.root_seconds
            seg = grow({"peer": peer}, start, size, config.batch_entries, advance)
            rate = seg.rates["peer"]
            append_only = Rate(rate.count, rate.seconds - (peer.root_seconds - root_before))
            proof_advance = _advancer(progress, f"pymerkle: proofs at {size:,}", config.peer_proofs)
            inclusion = peer.inclusion_proofs(size, config.peer_proofs, rng, proof_advance)
            rows.append(
                PeerRow(
                    "pymerkle_sqlite",
                    size,
                    start,
                    append=rate,
                    append_only=append_only,
                    inclusion=inclusion,
                    disk_bytes=peer.disk_bytes(),
                    root_matches_bare=peer.root() == bare_roots[size],
                )
            )
    finally:
        peer.close()
    return rows, settings


def phase_postgres(config: BenchConfig, progress: Progress) -> tuple[list[PeerRow], dict[str, str]]:
    """Phase 3: an append-only PostgreSQL table on a cluster started (and removed) here."""
    sizes = config.peer_sizes(config.peer_max_size)
    rows: list[PeerRow] = []
    with running_cluster() as cluster:
        peer = PostgresAppender(cluster)
        try:
            settings = {"version": server_version(), **peer.settings()}
            advance = _advancer(progress, "PostgreSQL COPY: append", sizes[-1])
            for start, size in _segments(sizes):
                seg = grow({"pg": peer}, start, size, config.batch_entries, advance)
                rows.append(
                    PeerRow(
                        "postgresql", size, start, seg.rates["pg"], disk_bytes=peer.disk_bytes()
                    )
                )
        finally:
            peer.close()
    return rows, settings


def phase_inmemory(
    config: BenchConfig, progress: Progress, bare_roots: dict[int, bytes]
) -> list[PeerRow]:
    """Phase 4: pymerkle's in-memory tree, for context against the bare limit."""
    sizes = config.peer_sizes(config.inmemory_max_size)
    peer = PymerkleInmemoryAppender()
    rows: list[PeerRow] = []
    advance = _advancer(progress, "pymerkle InmemoryTree: append", sizes[-1])
    for start, size in _segments(sizes):
        seg = grow({"peer": peer}, start, size, config.batch_entries, advance)
        rows.append(
            PeerRow(
                "pymerkle_inmemory",
                size,
                start,
                append=seg.rates["peer"],
                root_matches_bare=peer.root() == bare_roots[size],
            )
        )
    peer.close()
    return rows


def run_suite(result: SuiteResult, progress: Progress, work: Path) -> SuiteResult:
    """Run every phase, filling ``result``; a failure propagates (the cluster is still removed)."""
    config = result.config
    result.ours = phase_ours(config, progress, work)
    result.sweep = phase_batch_sweep(config, progress, work)
    bare_roots = {row.size: row.bare_root for row in result.ours}
    pymerkle_rows, result.settings["pymerkle_sqlite"] = phase_pymerkle(
        config, progress, work, bare_roots
    )
    result.peers.extend(pymerkle_rows)
    postgres_rows, result.settings["postgresql"] = phase_postgres(config, progress)
    result.peers.extend(postgres_rows)
    result.peers.extend(phase_inmemory(config, progress, bare_roots))
    result.notes.extend(_notes(config))
    return result


def _notes(config: BenchConfig) -> list[str]:
    first_batches = config.sizes[0] // config.batch_entries
    peer_sizes = ", ".join(f"{s:,}" for s in config.peer_sizes(config.peer_max_size))
    mem_sizes = ", ".join(f"{s:,}" for s in config.peer_sizes(config.inmemory_max_size))
    return [
        f"pymerkle SqliteTree and PostgreSQL ran at {peer_sizes} entries; pymerkle InmemoryTree"
        f" (not durable, one Python object per node) at {mem_sizes} only.",
        f"The first segment is only {first_batches} batches: its rates are the noisiest.",
    ]
