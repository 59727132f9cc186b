"""Test helpers: sign and submit transactions to real nodes over HTTP; read their status."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medledger.adapters.keystore import generate_key, read_key_file
from medledger.client import new_transaction
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.tx import SignedTransaction
from medledger.devnet import DEMO_PASSPHRASE, load_network


@dataclass
class Net:
    base: Path
    urls: list[str]
    names: list[str]
    network: str
    authority: ParticipantKey  # node1's key: may register patients

    @classmethod
    def of(cls, base: Path) -> Net:
        doc = load_network(base)
        key = read_key_file(base / "node1" / "keys" / "node.key", DEMO_PASSPHRASE)
        return cls(
            base,
            [n["url"] for n in doc["nodes"]],
            [n["name"] for n in doc["nodes"]],
            doc["network"],
            key,
        )

    def register_tx(self) -> SignedTransaction:
        patient = generate_key()
        return new_transaction(
            self.authority,
            network=self.network,
            tx_type="participant.register",
            payload={"did": patient.did, "kind": "patient", "roles": []},
            now_s=int(time.time()),
            ttl_s=600,
        )

    def status(self, url: str) -> dict[str, Any]:
        r = httpx.get(f"{url}/consortium/status", timeout=5)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def tx_status(self, url: str, tx_id: str) -> dict[str, Any] | None:
        r = httpx.get(f"{url}/ledger/transactions/{tx_id}", timeout=5)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def wait_same_height(self, urls: list[str] | None = None, timeout_s: float = 120) -> int:
        """Until the nodes are at the same height with every block final; return it."""
        urls = urls or self.urls
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = [self.status(u) for u in urls]
            heights = {s["height"] for s in statuses}
            finals = {s["final_height"] for s in statuses}
            if len(heights) == 1 and finals == heights:
                return heights.pop()
            assert time.monotonic() < deadline, f"nodes did not converge: {statuses}"
            time.sleep(0.1)


def submit(
    client: httpx.Client, url: str, stx: SignedTransaction, wait: str = "final"
) -> dict[str, Any]:
    r = client.post(
        f"{url}/ledger/transactions",
        content=stx.wire,
        params={"wait": wait, "timeout": 30},
        headers={"content-type": "application/json"},
        timeout=40,
    )
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def submit_many(
    net: Net, count: int, *, urls: list[str] | None = None, wait: str = "final", threads: int = 24
) -> list[dict[str, Any]]:
    urls = urls or net.urls
    txs = [net.register_tx() for _ in range(count)]
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(i: int) -> dict[str, Any]:
        if not hasattr(local, "client"):
            local.client = httpx.Client()
            clients.append(local.client)
        return submit(local.client, urls[i % len(urls)], txs[i], wait)

    try:
        with ThreadPoolExecutor(threads) as ex:
            return list(ex.map(one, range(count)))
    finally:
        for c in clients:
            c.close()


class LoadGenerator:
    """Clients that keep submitting with ``wait=final`` and record what was acknowledged."""

    def __init__(self, net: Net, *, clients: int = 12) -> None:
        self.net = net
        self.clients = clients
        self.acknowledged: list[tuple[float, str]] = []  # (time acknowledged final, tx id)
        self.latencies: list[tuple[float, float]] = []  # (submitted at, acknowledged at)
        self.sent: list[str] = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _run(self, k: int) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                stx = self.net.register_tx()
                with self._lock:
                    self.sent.append(stx.tx_id.hex())
                sent_at = time.monotonic()
                try:
                    body = submit(client, self.net.urls[k % len(self.net.urls)], stx)
                except httpx.HTTPError:
                    with self._lock:
                        self.errors += 1
                    continue
                if body.get("final"):
                    with self._lock:
                        now = time.monotonic()
                        self.acknowledged.append((now, stx.tx_id.hex()))
                        self.latencies.append((sent_at, now))

    def __enter__(self) -> LoadGenerator:
        for k in range(self.clients):
            t = threading.Thread(target=self._run, args=(k,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_acknowledged(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} acknowledged"
            time.sleep(0.05)


def blocks(url: str, start: int, end: int) -> Iterator[dict[str, Any]]:
    with httpx.Client() as c:
        for h in range(start, end + 1):
            yield json.loads(c.get(f"{url}/ledger/blocks/{h}").text)
