"""The human summary of a ledger run: the phases side by side, targets, where the time goes."""

from __future__ import annotations

from benchmarks.ledger_profile import Profiled, ProfileRun
from benchmarks.ledger_results import LedgerResult
from benchmarks.markdown import _table
from benchmarks.targets import Target


def _x(ratio: float) -> str:
    return f"**{ratio:.2f}x**"


def _header(result: LedgerResult) -> list[str]:
    m, c, w = result.machine, result.config, result.workload
    mix = ", ".join(f"{n:,} {t}" for t, n in sorted(w.get("timed_by_type", {}).items()))
    return [
        "# Ledger benchmark",
        "",
        f"`python -m benchmarks{' --quick' if result.mode == 'quick' else ''}` (its ledger part;"
        f" `--only ledger` runs it alone), {result.mode} run, {result.date},"
        f" {result.wall_seconds:.0f} s wall time.",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; Python {m['python']};"
        f" SQLite {m['sqlite']}; cryptography {m.get('cryptography', '?')};"
        f" temp dirs on {m['temp_dir_filesystem']}. Code measured:"
        f" {m.get('medledger_source', '?')}.",
        "",
        f"Contention (load averages 1/5/15 min; PSI avg60): at the start"
        f" {m['contention_at_start']}; at the end {m.get('contention_at_end', '?')}. The run"
        " itself adds 1-2 to the load (the HTTP phase runs a server and its clients).",
        "",
        f"Workload: individually signed transactions from {w.get('senders', '?')} senders in all"
        f" (the genesis authority, {c.organizations} organizations, {c.practitioners_per_org}"
        f" practitioners each), registered with {c.pool_patients_per_org} pool patients per"
        f" organization before any clock starts. Timed mix ({c.patient_registrations}% patient"
        f" registrations, {c.record_anchors}% record anchors, the rest access batches): {mix}."
        f" Wire size {w.get('wire_bytes', 0):.0f} bytes, signed bytes"
        f" {w.get('signed_bytes', 0):.0f} bytes on average. Genesis: block_max_txs"
        f" {c.block_max_txs}, block_interval_ms {c.block_interval_ms}. Ledger and log on disk"
        " (SQLite WAL, synchronous=FULL).",
    ]


def _phase_rows(result: LedgerResult) -> list[list[str]]:
    rows: list[list[str]] = []
    if (b := result.throughput) is not None:
        rows.append([
            "(b) in-process, maximum", f"{b.txs:,}", f"{b.per_s:,.0f}", f"{b.limit_per_s:,.0f}",
            _x(b.ratio), f"{b.blocks / b.seconds:.1f}", f"{b.txs / b.blocks:.0f}",
            b.latency.text(),
        ])  # fmt: skip
    if (c := result.latency) is not None:
        rows.append([
            f"(c) in-process, open loop at {c.offered_per_s:,.0f}/s (half)", f"{c.txs:,}",
            f"{c.per_s:,.0f}", f"{c.limit_per_s:,.0f}", "- (offered)",
            f"{c.blocks / c.seconds:.1f}", f"{c.txs / c.blocks:.0f}", c.latency.text(),
        ])  # fmt: skip
    if (d := result.http) is not None:
        rows.append([
            f"(d) HTTP, {d.clients} clients, maximum", f"{d.txs:,}", f"{d.per_s:,.0f}",
            f"{d.limit_per_s:,.0f}", _x(d.ratio), f"{d.blocks / d.seconds:.1f}",
            f"{d.txs / d.blocks:.0f}", f"request {d.request.text()}",
        ])  # fmt: skip
    if (e := result.replay) is not None:
        r = e.run
        rows.append([
            "(e) `chain verify` replay", f"{r.txs:,}", f"{e.per_s:,.0f}", f"{e.limit_per_s:,.0f}",
            _x(e.ratio), f"{r.blocks / r.replay_seconds:.1f}", f"{r.txs / r.blocks:.0f}", "-",
        ])  # fmt: skip
    return rows


def _limit_lines(result: LedgerResult) -> list[str]:
    rows = [[s.label, f"{s.rate.count:,}", f"{s.rate.per_s:,.0f}", f"{1e6 / s.rate.per_s:.1f}"]
            for s in result.samples]  # fmt: skip
    return [
        f"## (a) The limit: single-core Ed25519 verifications/s (median {result.limit_median():,.0f})",  # noqa: E501
        "",
        *_table(["sample", "verifications", "per s", "us each"], rows),
    ]


def _detail_lines(result: LedgerResult) -> list[str]:
    lines: list[str] = []
    if (b := result.throughput) is not None:
        lines.append(
            f"- (b) intake took the {b.txs:,} submissions at {b.submitted_per_s:,.0f}/s"
            f" (the builder thread competing for the GIL); the last commit came"
            f" {b.seconds - b.intake_seconds:.2f} s after the last submission. The latency"
            " column of (b) is that of an overloaded node: the queue grows while intake outruns"
            " the builder."
        )
    if (c := result.latency) is not None:
        lines.append(
            f"- (c) offered {c.offered_per_s:,.0f}/s for {c.intake_seconds:.1f} s; the generator"
            f" was at most {c.behind_schedule_ms:.1f} ms behind its schedule; latency is from the"
            " start of `submit` to the commit (block and log entries durable, waiters woken)."
        )
    if (d := result.http) is not None:
        lines.append(
            f"- (d) the clients had every request answered after {d.submit_seconds:.2f} s"
            f" ({d.txs / d.submit_seconds:,.0f} requests/s); HTTP errors: {d.errors or 'none'}."
        )
    if (e := result.replay) is not None:
        r = e.run
        lines.append(
            f"- (e) `verify_chain` {r.replay_seconds:.2f} s, then `verify_live_state`"
            f" {r.live_state_seconds:.2f} s; `medledger chain verify` as a subprocess took"
            f" {r.cli_seconds:.2f} s wall time."
        )
    return lines


def _profile_table(part: Profiled) -> list[str]:
    steps = [[label, f"{f.calls:,}", f"{f.cumulative_us_per_tx:,.1f}"]
             for label, f in part.steps.items()]  # fmt: skip
    top = [[f"`{f.function}`", f"{f.calls:,}", f"{f.own_us_per_tx:,.1f}",
            f"{f.cumulative_us_per_tx:,.1f}"] for f in part.top]  # fmt: skip
    return [
        *_table(["step", "calls", "cumulative us/tx"], steps),
        "",
        *_table(["function (by own time)", "calls", "own us/tx", "cumulative us/tx"], top),
    ]


def _split_rows(p: ProfileRun) -> list[list[str]]:
    splits = [p.fresh] if p.grown is None else [p.fresh, p.grown]

    def row(label: str, values: list[float]) -> list[str]:
        return [label, *(f"{v:,.0f}" for v in values)]

    rows = [
        row("intake (`LedgerNode.submit`)", [s.intake_us for s in splits]),
        row("  of which `decode_transaction`", [p.decode_us]),
        row("  of which `verify_transaction_signature`", [p.verify_tx_signature_us]),
        row("    of which the bare Ed25519 verify (the limit)", [p.ed25519_verify_us]),
        row("block building (`next_batch` + `build_block`)", [s.build_us for s in splits]),
    ]
    rows += [row(f"  {part}", [s.parts_us[part] for s in splits]) for part in p.fresh.parts_us]
    rows.append(row("**total**", [s.intake_us + s.build_us for s in splits]))
    rows.append(row("= tx/s on one core", [s.bound_per_s for s in splits]))
    return [r + [""] * (1 + len(splits) - len(r)) for r in rows]


def _profile_lines(p: ProfileRun) -> list[str]:
    header = ["us per transaction", f"fresh home ({p.fresh.state_keys:,} state keys)"]
    if p.grown is not None:
        header.append(f"after (b) and (c) ({p.grown.state_keys:,} state keys)")
    return [
        "## Where the time goes (one thread, builder thread not running)",
        "",
        f"{p.fresh.txs:,} transactions submitted, then built into blocks of up to"
        " `block_max_txs`; no profiler; the parts of the build timed by wrapping the node's"
        " own objects (`ledger_split`):",
        "",
        *_table(header, _split_rows(p)),
        "",
        f"cProfile, intake (profiler total {p.intake.total_us_per_tx:,.0f} us/tx, inflated by"
        " the profiler's overhead; compare shares, not absolute times):",
        "",
        *_profile_table(p.intake),
        "",
        f"cProfile, block building (profiler total {p.build.total_us_per_tx:,.0f} us/tx):",
        "",
        *_profile_table(p.build),
    ]


def _methods(result: LedgerResult) -> list[str]:
    c = result.config
    return [
        "## How each figure was measured",
        "",
        "- **(a) limit**: `Ed25519PublicKey.verify` (pyca/cryptography) over the signatures and"
        f" signed bytes (`DOMAIN_TX || JCS(body)`) of the first {c.verify_sample:,} timed"
        " transactions, keys decoded beforehand; only the verify loop is timed. It holds the"
        " GIL, so it is also the limit of one CPython process. Sampled between the phases;"
        " each phase's ratio uses the mean of the samples just before and after it.",
        "- **(b) in-process maximum**: a fresh node home on disk (`init_home`, `open_node`,"
        " `Node.start()`: the block builder on its own thread, as `medledger serve` runs it); the"
        " setup transactions committed first, untimed; then every pre-signed transaction through"
        " `node.ledger.submit(wire, now_s)` back to back. tx/s = committed ok / (last commit -"
        " first submit). A watcher thread stamps commits block by block (`LedgerNode.wait` on"
        " the first uncommitted transaction, then `block_txs` of its block).",
        "- **(c) half load**: the same node (reopened), one submission every 1/rate s on a fixed"
        f" schedule (open loop) for {c.latency_seconds:.0f} s at half of (b)'s rate;"
        " per-transaction latency from the start of `submit` to the commit.",
        "- **(d) HTTP**: a fresh home served by `medledger serve` (a subprocess, uvicorn,"
        f" loopback), the setup committed first; {c.http_clients} client threads in this process,"
        " each with its own keep-alive httpx connection, POST `/ledger/transactions?wait=none`."
        " End = the first `/healthz` poll (every 5 ms) whose log size covers every"
        " transaction; outcomes read from the stopped node's ledger file. Clients and server"
        " share the machine's CPUs.",
        "- **(e) replay**: `verify_chain` over the chain built in (b) (genesis, setup and (b)),"
        " in process and wired as `medledger chain verify` wires it: read-only ledger and log,"
        " one snapshot each, a fresh `ScratchState` on a new SQLite file. tx/s = transactions /"
        " `verify_chain` time; `verify_live_state` is timed apart.",
        "- **Garbage collector**: after signing, the pre-signed transactions are moved out of"
        " the collector's reach (`gc.freeze`): they are the benchmark's, not the node's.",
        "- **Where the time goes**: a fresh home with the setup committed, the builder thread"
        " not started; the same split again on a copy of the home of (b) and (c).",
    ]


def render(result: LedgerResult, targets: list[Target]) -> str:
    header = ["phase", "transactions", "committed tx/s", "Ed25519 limit /s", "ratio",
              "blocks/s", "txs/block", "latency p50 / p99 / max ms"]  # fmt: skip
    target_rows = [[t.goal, t.measured, "met" if t.met else "**not met**"] for t in targets]
    lines = [
        *_header(result),
        "",
        "## Results",
        "",
        *_table(header, _phase_rows(result)),
        "",
        *_detail_lines(result),
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "result"], target_rows),
        "",
        *_limit_lines(result),
    ]
    if result.profile is not None:
        lines += ["", *_profile_lines(result.profile)]
    lines += ["", *_methods(result)]
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result.notes]]
    return "\n".join(lines) + "\n"
