"""Synthetic, clearly fake audit entries that keep the demo log growing.

Until the consent and audit issues give the log real access events, `medledger demo` appends
entries like these. They name no person and carry no clinical content: every one says it is
synthetic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.concurrency import run_in_threadpool

from medledger.bootstrap import Node
from medledger.errors import MedledgerError

log = logging.getLogger("medledger.demo")

_ACTIONS = ("read", "search", "create", "update")
_DECISIONS = ("permit", "permit", "permit", "deny")
_PURPOSES = ("TREAT", "TREAT", "ETREAT", "HRESCH", "PUBHLTH")


def synthetic_entry(seq: int, now: float, rng: random.Random) -> bytes:
    """One fake audit line, canonical JSON (sorted keys, no spaces)."""
    event = {
        "synthetic": "DEMO ENTRY - NOT A REAL ACCESS EVENT",
        "seq": seq,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "actor": f"did:example:demo-practitioner-{rng.randint(1, 12)}",
        "patient": f"did:example:demo-patient-{rng.randint(1, 40)}",
        "action": rng.choice(_ACTIONS),
        "purpose": rng.choice(_PURPOSES),
        "decision": rng.choice(_DECISIONS),
    }
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def demo_feed(
    node: Node, *, every_s: float = 0.25, seed: int | None = None
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A background task appending a small random batch every ``every_s`` seconds."""
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not cryptography

    async def run() -> None:
        while True:
            start = node.log.size()
            batch = [synthetic_entry(start + i, time.time(), rng) for i in range(rng.randint(1, 8))]
            try:
                await run_in_threadpool(node.log.append, batch)
            except MedledgerError as e:
                log.error("demo append failed: %s", e)
            await asyncio.sleep(every_s)

    return run
