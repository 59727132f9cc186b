"""The human summary of a run: a few Markdown tables, the targets, and how it was measured."""

from __future__ import annotations

from benchmarks.results import OursRow, PeerRow, SuiteResult
from benchmarks.targets import Target


def _rate(row: PeerRow | None) -> str:
    return f"{row.append.per_s:,.0f}" if row else "not run"


def _ratio(ours: float, peer: PeerRow | None) -> str:
    return f"**{ours / peer.append.per_s:.2f}x**" if peer else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _append_rows(result: SuiteResult) -> list[list[str]]:
    out = []
    for row in result.ours:
        pym, pg = result.peer("pymerkle_sqlite", row.size), result.peer("postgresql", row.size)
        mem = result.peer("pymerkle_inmemory", row.size)
        out.append([
            f"{row.segment_start:,} -> {row.size:,}",
            f"{row.bare.per_s:,.0f}",
            f"{row.ours.per_s:,.0f}",
            f"**{row.ratio_to_bare:.2f}x**",
            _rate(pym),
            _ratio(row.ours.per_s, pym),
            _rate(pg),
            _ratio(row.ours.per_s, pg),
            f"{pym.append_only.per_s:,.0f}" if pym and pym.append_only else "not run",
            _rate(mem),
        ])  # fmt: skip
    return out


def _serving_row(row: OursRow, pym: PeerRow | None) -> list[str]:
    p = row.proofs
    return [
        f"{row.size:,}",
        f"{p.inclusion_served.per_s:,.0f}",
        f"{p.inclusion_verified.per_s:,.0f}",
        f"{p.consistency_served.per_s:,.0f}",
        f"{p.consistency_verified.per_s:,.0f}",
        f"{pym.inclusion.per_s:,.0f}" if pym and pym.inclusion else "not run",
        f"{row.disk_per_entry:,.1f} = entry {row.entry_bytes / row.size:.0f}"
        f" + {row.overhead_per_entry:.1f}",
        f"{row.memory_after_appends['peak_rss_mib']:.0f} / {row.memory['peak_rss_mib']:.0f}",
        "yes" if row.root_matches_bare else "**NO**",
    ]


def _header(result: SuiteResult) -> list[str]:
    m, c = result.machine, result.config
    pg = result.settings.get("postgresql", {})
    avg = result.ours[-1].entry_bytes / result.ours[-1].size
    return [
        "# Transparency log benchmark",
        "",
        f"`python -m benchmarks{' --quick' if result.mode == 'quick' else ''}`"
        f" ({result.mode} run), {result.date}, {result.wall_seconds:.0f} s wall time.",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; Python {m['python']};"
        f" SQLite {m['sqlite']}; pymerkle {m['pymerkle']}; {pg.get('version', 'PostgreSQL')};"
        f" psycopg {m['psycopg']}; temp dirs on {m['temp_dir_filesystem']}.",
        "",
        f"Contention (load averages 1/5/15 min; PSI avg60): at the start"
        f" {m['contention_at_start']}; at the end {m.get('contention_at_end', '?')}. The run"
        " itself adds about 1 to the load; more, or CPU/IO pressure, means other work shared"
        " the machine and the figures are low.",
        "",
        f"Workload: synthetic audit-event JSON entries (average {avg:.0f} bytes), appended in"
        f" batches of {c.batch_entries:,}, every batch one durable commit. Ratios are medledger"
        " divided by the other system over the same segment of the same entries.",
    ]


def _methods(result: SuiteResult) -> list[str]:
    c = result.config
    pym = result.settings.get("pymerkle_sqlite", {})
    pg = result.settings.get("postgresql", {})
    return [
        "## How each figure was measured",
        "",
        "- Entries are generated before the clock starts; only the `append` call is timed "
        "(`time.perf_counter`), summed per system over each segment; rate = entries / time.",
        "- **bare hashlib**: `hashlib.sha256` over the same leaves in memory: SHA-256(0x00||entry) "
        "per leaf, the compact-range node hashes SHA-256(0x01||l||r), and the root per batch. No "
        "storage: the floor for any RFC 9162 log in CPython. Interleaved batch by batch with "
        "medledger, so both see the same machine state.",
        "- **medledger**: `SqliteLog.append(batch)` on disk (WAL, `synchronous=FULL`, one "
        "transaction per batch: entries, tlog-tiles hash tiles, compact range); the new tree head "
        "is computed before it returns. Its root is checked equal to the bare root at every size.",
        "- **pymerkle SqliteTree**: `append_entries(batch)` (one transaction, "
        f"journal_mode={pym.get('journal_mode', '?')}, synchronous={pym.get('synchronous', '?')}) "
        "then `get_root()`, since pymerkle builds no tree on append; `append_entries` alone is in "
        "the 'append only' column. Its root is checked equal to ours. InmemoryTree: "
        f"`append_entries` + `get_root`, not durable, run to {c.inmemory_max_size:,} only.",
        "- **PostgreSQL**: own cluster (initdb in a temp dir, 127.0.0.1 + Unix socket, defaults: "
        f"synchronous_commit={pg.get('synchronous_commit', '?')}, fsync={pg.get('fsync', '?')}, "
        f"wal_sync_method={pg.get('wal_sync_method', '?')}); table "
        "`audit(id bigserial primary key, data bytea not null)`; per batch one transaction with "
        "`COPY ... FROM STDIN (FORMAT BINARY)` via psycopg 3 over the Unix socket.",
        f"- **Proofs** at each size: {c.inclusion_proofs:,} inclusion proofs at uniform random "
        f"indices and {c.consistency_proofs:,} consistency proofs from uniform random older sizes, "
        "served by `TransparencyLog.inclusion_proof` / `consistency_proof` (plan, "
        "`SqliteLog.node_hashes` from the tile cache or SQLite, assemble); 'served + verified' "
        "adds `verify_inclusion` / `verify_consistency` with leaf hashes and old roots prepared "
        f"beforehand. pymerkle: {c.peer_proofs:,} `prove_inclusion` calls at random indices.",
        "- **Disk**: database file + WAL after `PRAGMA wal_checkpoint(TRUNCATE)` on a separate "
        "connection, divided by the entries; 'entry + n' is the average entry size plus the "
        "overhead per entry (hash tiles, row headers, page slack).",
        "- **Peak RSS**: VmHWM of the benchmark process (/proc/self/status) after the appends to "
        "each size and again after its proofs (which fill the tile cache, bounded at 1,024 full "
        "tiles); measured in the medledger phase before any peer ran; entries are generated batch "
        "by batch, never held.",
        "- **Batch size**: the same entries and timing into a fresh log (and a fresh bare tree) "
        "per batch size; one durable commit per batch whatever its size.",
    ]


def render(result: SuiteResult, targets: list[Target]) -> str:
    append_header = [
        "entries", "bare hashlib /s", "medledger /s", "medledger / bare",
        "pymerkle SqliteTree (append + root) /s", "medledger / pymerkle",
        "PostgreSQL (COPY) /s", "medledger / PostgreSQL", "pymerkle append only /s",
        "pymerkle InmemoryTree /s",
    ]  # fmt: skip
    serving_header = [
        "size", "inclusion served /s", "inclusion served + verified /s", "consistency served /s",
        "consistency served + verified /s", "pymerkle inclusion /s", "disk B/entry",
        "peak RSS MiB (after appends / proofs)", "root = bare",
    ]  # fmt: skip
    serving = [_serving_row(r, result.peer("pymerkle_sqlite", r.size)) for r in result.ours]
    sweep_rows = [
        [f"{r.batch_entries:,}", f"{r.bare.per_s:,.0f}", f"{r.ours.per_s:,.0f}",
         f"**{r.ratio_to_bare:.2f}x**"]
        for r in result.sweep
    ]  # fmt: skip
    target_rows = [[t.goal, t.measured, "met" if t.met else "**not met**"] for t in targets]
    lines = [
        *_header(result),
        "",
        "## Appends: entries/s over each segment",
        "",
        *_table(append_header, _append_rows(result)),
        "",
        "## Proofs, disk and memory (medledger SqliteLog)",
        "",
        *_table(serving_header, serving),
        "",
        f"## Batch size: fresh logs of {result.config.sweep_entries:,} entries",
        "",
        *_table(
            ["entries per batch", "bare hashlib /s", "medledger /s", "medledger / bare"], sweep_rows
        ),
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "result"], target_rows),
        "",
        *_methods(result),
    ]
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"
