"""The FHIR benchmark's Markdown report (``benchmarks.fhir_bench``'s results)."""

from __future__ import annotations

from typing import Any


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def render(result: dict[str, Any]) -> str:
    c, m = result["config"], result["machine"]
    lines = [
        "# FHIR API benchmark (issue 6)",
        "",
        f"`python -m benchmarks.fhir_bench{' --quick' if result['quick'] else ''}`, "
        f"{result['when']}, {result['wall_seconds']:.0f} s wall time. Code measured: "
        f"{result['code']}.",
        "",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}; Python {m['python']}; SQLite "
        f"{m['sqlite']}; temp dirs on {m['temp_dir_filesystem']}.",
        "",
        f"Contention (load averages 1/5/15 min; PSI avg60): at the start "
        f"{m['contention_at_start']}; at the end {m.get('contention_at_end', '?')}. The run "
        "itself adds about 2 to the load (a server and the load generator busy); more, or CPU "
        "pressure, means other work shared the machine and the wall-clock figures are low.",
        "",
        "Each server is a uvicorn process on 127.0.0.1; the load generator (asyncio + aiohttp, "
        "keep-alive) a third process. medledger: a real SMART bearer token (private_key_jwt) "
        "checked on every request, scopes, the consent gate per resource, an access event per "
        "decision (a permit waits until its event is durable), key unwrap, AES-GCM decryption, "
        "CID and commitment checks. plain: the same routes over SQLite rows in the clear (no "
        "token, consent, audit or encryption). Data: demo-like synthetic Observations, "
        f"{c['patients']} patients x {c['per_patient']}; search = "
        "`Observation?patient=..&_count=20`. Rounds interleaved "
        f"({c['rounds']}, {c['seconds']:g} s per measurement), medians shown.",
        "",
        f"## Saturation: {c['connections']} clients back to back",
        "",
        "| workload | medledger req/s | plain req/s | ratio (rounds) | target | medledger p50 / "
        "p99 ms | plain p50 / p99 ms | server CPU ms per request: medledger / plain | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"].values():
        s = r["saturation"]
        rounds = ", ".join(f"{x:.2f}" for x in s["ratio_rounds"])
        lines.append(
            f"| {r['workload']} | {s['medledger_per_s']:,.0f} | {s['plain_per_s']:,.0f} | "
            f"**{s['ratio']:.2f}x** ({rounds}) | >= {result['target']} "
            f"{'met' if r['target_met'] else '**not met**'} | {ms(s['medledger_p50_ms'])} / "
            f"{ms(s['medledger_p99_ms'])} | {ms(s['plain_p50_ms'])} / {ms(s['plain_p99_ms'])} "
            f"| {ms(s['medledger_cpu_ms_per_request'])} / {ms(s['plain_cpu_ms_per_request'])} "
            f"| {s['errors']['medledger']} / {s['errors']['plain']} |"
        )
    lines += [
        "",
        "## Fixed rate (open loop): requests sent on schedule whatever the answers do",
        "",
        "Latency from each request's scheduled send time, so queueing in the server counts.",
        "",
        "| workload | rate /s | medledger achieved /s | medledger p50 / p99 ms | plain achieved "
        "/s | plain p50 / p99 ms | server CPU ms per request: medledger / plain | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["results"].values():
        f = r["fixed_rate"]
        lines.append(
            f"| {r['workload']} | {f['rate_per_s']:g} | {ms(f['medledger_achieved_per_s'])} | "
            f"{ms(f['medledger_p50_ms'])} / {ms(f['medledger_p99_ms'])} | "
            f"{ms(f['plain_achieved_per_s'])} | {ms(f['plain_p50_ms'])} / "
            f"{ms(f['plain_p99_ms'])} | {ms(f['medledger_cpu_ms_per_request'])} / "
            f"{ms(f['plain_cpu_ms_per_request'])} | {f['errors']['medledger']} / "
            f"{f['errors']['plain']} |"
        )
    if result.get("baseline_src"):
        lines += [
            "",
            "## Before/after: the same node served by the code of "
            f"{result.get('baseline_label') or result['baseline_src']}",
            "",
            "A third server in the same run, interleaved with the other two (a copy of the "
            "node, its own token).",
            "",
            "| workload | before req/s | after req/s | before / plain | after / plain | server "
            "CPU ms per request: before / after | fixed rate p50 / p99 ms: before / after |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["results"].values():
            s, f = r["saturation"], r["fixed_rate"]
            lines.append(
                f"| {r['workload']} | {s['baseline_per_s']:,.0f} | {s['medledger_per_s']:,.0f} | "
                f"{s['baseline_ratio']:.2f}x | {s['ratio']:.2f}x | "
                f"{ms(s['baseline_cpu_ms_per_request'])} / {ms(s['medledger_cpu_ms_per_request'])} "
                f"| {ms(f['baseline_p50_ms'])} / {ms(f['baseline_p99_ms'])} ; "
                f"{ms(f['medledger_p50_ms'])} / {ms(f['medledger_p99_ms'])} |"
            )
    lines += [
        "",
        "Where medledger's time goes (cProfile by CPU time in every server thread: "
        "`FHIR_BENCH_PROFILE=FILE`, see `benchmarks/fhir_servers.py`): per resource the gate's "
        "decision and its access event, the record's ledger and vault rows, the blob read with "
        "its CID check, decryption and the commitment check, JSON; per sealed batch of access "
        "events (at most one per 20 ms while readers wait: group commit) its anchor transaction "
        "through the ledger (sign, intake, block, checkpoint), a few ms of CPU whatever its size. "
        "At a fixed, moderate rate batches hold few events, so that per-batch cost dominates "
        "the CPU per request; at saturation it is shared by many. A search decides every "
        f"candidate ({c['per_patient']} here) and opens the page (at most 20).",
        "",
        f"Target (saturation ratio >= {result['target']} for read and search): "
        f"{'met' if result['target_met'] else 'not met'}.",
        "",
    ]
    return "\n".join(lines)
