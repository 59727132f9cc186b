"""``python -m benchmarks.fhir_load SPEC_JSON``: an HTTP load generator, run as a process of its
own so it never shares a GIL with the server it drives (issue 6's FHIR benchmark).

asyncio + aiohttp over keep-alive connections on loopback, GETs only, two modes:
- ``closed``: ``connections`` clients, each sending its next request when the last answer
  arrived, for ``duration_s``: the saturation throughput;
- ``open``: requests scheduled at a fixed ``rate`` per second, request ``i`` at ``t0 + i/rate``,
  sent on time whatever the earlier answers do (up to ``max_in_flight`` connections; a request
  waiting for a free connection is late, and that lateness counts). Latency is measured from
  the *scheduled* send time, so a slow server cannot slow the generator down and hide its own
  queueing (no coordinated omission).
Every answer must be a 200 with a body; anything else (status, timeout, reset) is an error,
counted by kind. Prints one JSON object: requests, ok, errors, achieved rate, latency
percentiles (ms), how late the generator itself started requests, and its own CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

TIMEOUT_S = 10.0


def _percentile(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Tally:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.late_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.sent = 0

    async def get(self, session: aiohttp.ClientSession, path: str, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        self.late_ms.append((loop.time() - scheduled) * 1000)
        self.sent += 1
        try:
            async with session.get(path) as response:
                body = await response.read()
                if response.status != 200 or not body:
                    self.errors[f"status {response.status}"] += 1
                    return
        except (aiohttp.ClientError, TimeoutError) as e:
            self.errors[type(e).__name__] += 1
            return
        self.latencies_ms.append((loop.time() - scheduled) * 1000)

    def summary(self, elapsed_s: float, cpu_s: float) -> dict[str, Any]:
        ms = sorted(self.latencies_ms)
        late = sorted(self.late_ms)
        return {
            "requests": self.sent,
            "ok": len(ms),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "elapsed_s": round(elapsed_s, 3),
            "achieved_per_s": round(len(ms) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "p50_ms": _percentile(ms, 0.50),
            "p90_ms": _percentile(ms, 0.90),
            "p99_ms": _percentile(ms, 0.99),
            "max_ms": ms[-1] if ms else None,
            "generator_late_p99_ms": _percentile(late, 0.99),
            "generator_cpu_s": round(cpu_s, 3),
        }


def _session(spec: dict[str, Any], connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        spec["base"],
        headers=spec["headers"],
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
    )


async def closed_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``connections`` clients back to back for ``duration_s``."""
    paths: list[str] = spec["paths"]
    connections = int(spec["connections"])
    tally = _Tally()
    loop = asyncio.get_running_loop()
    async with _session(spec, connections) as session:
        cpu0, began = _cpu_s(), loop.time()
        stop = began + float(spec["duration_s"])

        async def client(k: int) -> None:
            i = k
            while loop.time() < stop:
                await tally.get(session, paths[i % len(paths)], loop.time())
                i += connections

        await asyncio.gather(*(client(k) for k in range(connections)))
        return tally.summary(loop.time() - began, _cpu_s() - cpu0)


async def open_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Requests at ``rate`` per second for ``duration_s``, each sent at its scheduled time."""
    paths: list[str] = spec["paths"]
    rate = float(spec["rate"])
    total = int(rate * float(spec["duration_s"]))
    tally = _Tally()
    loop = asyncio.get_running_loop()
    async with _session(spec, int(spec["max_in_flight"])) as session:
        cpu0 = _cpu_s()
        began = loop.time() + 0.01
        tasks = []
        for i in range(total):
            scheduled = began + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(tally.get(session, paths[i % len(paths)], scheduled)))
        await asyncio.gather(*tasks)
        # the achieved rate is over the schedule's span (answers to the last requests included)
        return tally.summary(loop.time() - began, _cpu_s() - cpu0)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    mode = spec["mode"]
    if mode == "closed":
        return asyncio.run(closed_loop(spec))
    if mode == "open":
        return asyncio.run(open_loop(spec))
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    spec = json.loads(sys.stdin.read())
    started = time.time()
    result = run(spec)
    result["wall_s"] = round(time.time() - started, 3)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
