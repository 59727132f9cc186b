"""The human summary of a records run: store/fetch vs the bare floor, key release, puts with
their anchor, where the time goes, the targets, and how each figure was measured."""

from __future__ import annotations

from benchmarks.markdown import _table
from benchmarks.records_release import WAIT
from benchmarks.records_results import RecordsResult
from benchmarks.records_store import FETCH_STEPS, STORE_STEPS, SizeRun
from benchmarks.records_targets import size_label
from benchmarks.targets import Target


def _x(ratio: float) -> str:
    return f"**{ratio:.2f}x**"


def _header(result: RecordsResult) -> list[str]:
    m, g = result.machine, result.genesis
    quick = " --quick" if result.mode == "quick" else ""
    return [
        "# Off-chain records benchmark",
        "",
        f"`python -m benchmarks.records_bench{quick}` ({result.mode} run), {result.date},"
        f" {result.wall_seconds:.0f} s wall time.",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; Python {m['python']};"
        f" SQLite {m['sqlite']}; cryptography {m.get('cryptography', '?')}"
        f" ({m.get('openssl', '?')}); temp dirs on {m['temp_dir_filesystem']}. Code measured:"
        f" {m.get('medledger_source', '?')}.",
        "",
        f"Contention (load averages 1/5/15 min; PSI avg60): at the start"
        f" {m['contention_at_start']}; at the end {m.get('contention_at_end', '?')}. The run"
        " itself adds about 1 to the load; more, or CPU/IO pressure, means other work shared"
        " the machine and the figures are low.",
        "",
        "Node: the demo network's home (`create_demo_home`: three authority organizations, this"
        " node the hospital), opened with `open_node` and started (block builder thread). Before"
        " any clock starts the hospital registers a practitioner and five patients, and each"
        " patient publishes its X25519 encryption key, so every put wraps its data key twice."
        f" Genesis: block_max_txs {g.get('block_max_txs', '?')}, block_interval_ms"
        f" {g.get('block_interval_ms', '?')}. Record contents are random bytes.",
    ]


def _spread(run: SizeRun, which: int) -> str:
    low, high = run.spread(which)
    return f"{low:.2f}-{high:.2f} ({len(run.round_ratios)})"


def _store_fetch(result: RecordsResult) -> list[str]:
    rows = [
        [size_label(r.size), f"{r.ops:,}",
         f"{r.rate(r.bare_store).per_s:,.0f}", f"{r.rate(r.ours_store).per_s:,.0f}",
         _x(r.store_ratio), _spread(r, 0), f"{r.rate(r.atomic_store).per_s:,.0f}",
         f"{r.rate(r.overlap_store).per_s:,.0f} ({r.bare_store / r.overlap_store:.2f}x)",
         f"{r.rate(r.bare_fetch).per_s:,.0f}", f"{r.rate(r.ours_fetch).per_s:,.0f}",
         _x(r.fetch_ratio), _spread(r, 1)]
        for r in result.sizes
    ]  # fmt: skip
    header = [
        "record", "records", "bare store /s", "medledger store /s", "store: medledger / bare",
        "store ratio, rounds (low-high)", "diagnostic: bare + atomic_write /s",
        "diagnostic: medledger, blob put overlapped /s (/ bare)", "bare fetch /s",
        "medledger fetch /s",
        "fetch: medledger / bare", "fetch ratio, rounds (low-high)",
    ]  # fmt: skip
    return ["## Encrypt+store and fetch+verify+decrypt, interleaved", "", *_table(header, rows)]


def _steps(result: RecordsResult) -> list[str]:
    sizes = result.sizes

    def row(label: str, values: list[float]) -> list[str]:
        return [label, *(f"{v:,.1f}" for v in values)]

    def us(pick: str) -> list[float]:
        return [r.us(getattr(r, pick)) for r in sizes]

    def step(run: SizeRun, table: dict[str, float], name: str) -> float:
        return run.us(table[name])

    rows = [row(f"store: {s}", [step(r, r.store_steps, s) for r in sizes]) for s in STORE_STEPS]
    rows += [
        row("**store: medledger total**", us("ours_store")),
        row("store: bare total (AES-GCM + write + fsync)", us("bare_store")),
        row("store: diagnostic bare + atomic_write", us("atomic_store")),
        row("store: diagnostic medledger, blob put overlapped", us("overlap_store")),
    ]
    rows += [row(f"fetch: {s}", [step(r, r.fetch_steps, s) for r in sizes]) for s in FETCH_STEPS]
    rows += [
        row("**fetch: medledger total**", us("ours_fetch")),
        row("fetch: bare total (read + AES-GCM)", us("bare_fetch")),
        row("diagnostic: one SHA-256 over the record, in memory", us("sha256")),
    ]
    header = ["us per record (in the interleaved run)", *(size_label(r.size) for r in sizes)]
    return ["## Where a store and a fetch spend their time", "", *_table(header, rows)]


def _release(result: RecordsResult) -> list[str]:
    r = result.release
    if r is None:
        return []
    pinned = f"CPU {r.cpu}" if r.cpu is not None else "not pinned"
    p = r.pure
    pure = [["pure: evaluate_access (ConsentIndex, DictState) + unwrap_key + wrap_key",
             f"{p.total.count:,}", f"{p.median_per_s:,.0f}", f"{1e6 / p.median_per_s:,.1f}",
             f"{p.total.per_s:,.0f}", " / ".join(f"{x.per_s:,.0f}" for x in p.rates),
             f"{p.median_per_cpu_s:,.0f}"]]  # fmt: skip
    header = ["what", "calls", "per s (median chunk)", "us each", "per s (all calls)",
              "chunks, per s", "per CPU second (median chunk)"]  # fmt: skip
    served = [
        [f"RecordService.release_key, {label}", str(s.threads), f"{s.rate.count:,}",
         f"{s.rate.per_s:,.0f}", f"{s.latency(0.5):,.1f}", f"{s.latency(0.99):,.1f}",
         f"{s.batches}", f"{s.rate.count / s.batches:,.0f}" if s.batches else "-"]
        for label, s in (("one caller (calling thread pinned)", r.sequential),
                         *(("concurrent callers (whole process pinned)", c) for c in r.concurrent))
    ]  # fmt: skip
    served_header = ["served", "threads", "releases", "per s", "median ms", "p99 ms",
                     "event batches", "releases per batch"]  # fmt: skip
    split = [[step, f"{us:,.1f}", f"{r.split_warm_us[step]:,.1f}"]
             for step, us in r.split_us.items()]  # fmt: skip
    cpu = {k: v for k, v in r.split_warm_us.items() if k != WAIT}
    split += [
        ["**sum of the steps**", f"**{sum(r.split_us.values()):,.1f}**",
         f"**{sum(r.split_warm_us.values()):,.1f}**"],
        ["sum without the wait (CPU and I/O of one release)",
         f"{sum(v for k, v in r.split_us.items() if k != WAIT):,.1f}",
         f"{sum(cpu.values()):,.1f} (at most {1e6 / sum(cpu.values()):,.0f}/s on one core)"],
    ]  # fmt: skip
    split += [[f"outside the sums: {k}", "-", f"{us:,.1f}"] for k, us in r.diagnostics_us.items()]
    split_header = ["step", "us each: one caller, as served",
                    "us each: back to back, events waited for at the end"]  # fmt: skip
    return [
        f"## Key release on one core ({pinned}), {r.consents_per_patient} consents per patient",
        "",
        *_table(header, pure),
        "",
        *_table(served_header, served),
        "",
        "The served call's steps, each timed on its own: as one caller sees them (after each"
        " ~100 ms wait for the batch the CPU steps run cold), and back to back:",
        "",
        *_table(split_header, split),
    ]


def _puts(result: RecordsResult) -> list[str]:
    rows = [
        [p.label, size_label(p.size), str(p.threads), f"{p.rate.count:,}", f"{p.rate.per_s:,.1f}",
         f"{sorted(p.latencies_ms)[len(p.latencies_ms) // 2]:,.0f}",
         f"{max(p.latencies_ms):,.0f}"]
        for p in result.puts
    ]  # fmt: skip
    header = ["puts", "record", "threads", "records", "records/s", "median ms", "max ms"]
    return ["## RecordService.put with its ledger anchor", "", *_table(header, rows)]


def _micro(result: RecordsResult) -> list[str]:
    rows = [
        [f"{size_label(size)} blob: {name}", f"{us:,.2f}",
         f"{result.micro_reads_fresh.get(size, {}).get(name, float('nan')):,.2f}"]
        for size, parts in result.micro_reads.items()
        for name, us in parts.items()
    ]  # fmt: skip
    rows += [[name, f"{us:,.2f}", "-"] for name, us in result.micro_wrapping.items()]
    header = ["part", "us per call (this run's process)", "us per call (a fresh process)"]
    return [
        "## Diagnostics: the parts, in hot loops (median of 5 loops)",
        "",
        *_table(header, rows),
    ]


def _methods(result: RecordsResult) -> list[str]:
    c = result.config
    return [
        "## How each figure was measured",
        "",
        "- **Store / fetch** (`records_store`): per size, rounds of records (4 KB: "
        f"{c.round_ops[0]:,}) stored, then fetched, then deleted untimed; {c.warmup_ops} "
        "warm-up records per size first. Op by op the order alternates (bare first on even "
        "records, medledger first on odd ones); each op is timed alone with "
        "`time.perf_counter`; rate = records / summed time. A fresh random plaintext per round.",
        "- **bare store**: `AESGCM(fresh key).encrypt(fresh nonce, plaintext, None)`, the "
        "ciphertext written to a new file (`open(..., 'xb')`, write, flush, `fsync`). "
        "**bare fetch**: read the file, `AESGCM.decrypt`.",
        "- **medledger store**: `seal_record` (fresh data key, nonce and salt from "
        "`secrets.token_bytes`, `RecordAad`), `salted_commitment`, `FilesystemBlobStore.put` "
        "(SHA-256 CID, temp file, fsync, rename, directory fsync) and `wrap_key` to the node's "
        "and to the patient's X25519 key: `RecordService.put` without the vault and the anchor. "
        "**medledger fetch**: `FilesystemBlobStore.get` (read, CID check), `unwrap_key` of the "
        "node's wrap, `open_record`, `verify_commitment`: `RecordService.read` without the "
        "access decision. Every fetched plaintext is checked equal to the stored one.",
        "- **diagnostic bare + atomic_write**: bare's encryption, then `adapters.files."
        "atomic_write` (the blob store's durability protocol: two fsyncs) into its own "
        "directory, in the same loop; in no ratio. **diagnostic medledger, blob put "
        "overlapped**: the medledger store with `FilesystemBlobStore.put` on a worker thread "
        "while `salted_commitment` and both `wrap_key` run on the caller's (a change "
        "`RecordService.put` could make), into a blob store of its own; in no target.",
        "- Both blob stores have all 1,024 shard directories before the clock starts, as on a "
        "node that has run a while.",
        "- Reads hit the page cache for both contenders: the files were written just before.",
        f"- **Key release** (`records_release`): over the records the sequential puts "
        "anchored, requester a practitioner of the custodian organization (not the custodian "
        "itself, so the patient's consents decide). Each patient holds 100 active consents "
        "granted on the ledger (`records_consents`: the practitioner's `permit_to` grant and "
        "99 others -- grants to other practitioners, organizations and roles, record, label "
        "and custodian denies, expired grants); the practitioner's grant is the one that "
        f"permits (basis `consent`). **Pure**: {c.release_pure_calls:,} calls, the calling "
        f"thread pinned to one CPU after {c.release_warmup_s:.1f} s of untimed pure releases, "
        "in 5 equal chunks, judged on the median chunk (wall clock; the per-CPU-second "
        "figure, from `time.thread_time`, discounts time other tasks held the CPU): "
        "`evaluate_access` with the patient's "
        "`ConsentIndex` (built once, as `AccessService` caches it) over the state keys the "
        "gate reads, copied into a `DictState`, then `unwrap_key` and `wrap_key`. **Served**: "
        f"`RecordService.release_key` on the running node, {c.release_calls:,} calls one "
        f"after another, and for each of {', '.join(map(str, c.release_threads))} threads, "
        f"{c.release_per_thread} calls each, at once, with "
        "every thread of the process (callers, block builder, audit threads) pinned to the "
        "same CPU. Each served call reads the ledger state and vault, decides, hands the "
        "access event to `AuditService.record` and waits until its batch is durable "
        "(`AuditSettings` defaults: sealed every 100 ms, one SQLite transaction, fsync), "
        f"then unwraps and wraps. **Split**: {c.release_split_calls:,} calls, one caller.",
        "- **Puts** (`records_put`): on the running node; a put returns once its anchor "
        "committed, so its time is the block cut (block_interval_ms after the first "
        "transaction) plus the commit. Concurrent puts are of different records (the service "
        "serialises puts per record).",
        "- **Diagnostics** (`records_micro`): `timeit` loops on warm data, outside the run's "
        "interleaving; CPU work after an fsync runs slower in the interleaved run than here. "
        "Access-event ingest (group commit) is measured by `audit_bench` (`audit.md`).",
    ]


def render(result: RecordsResult, targets: list[Target]) -> str:
    target_rows = [[t.goal, t.measured, "met" if t.met else "**not met**"] for t in targets]
    lines = [
        *_header(result),
        "",
        *_store_fetch(result),
        "",
        *_release(result),
        "",
        *_puts(result),
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "result"], target_rows),
        "",
        *_steps(result),
        "",
        *_micro(result),
        "",
        *_methods(result),
    ]
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"
