"""Composition root of a consortium node: a node home plus ``consortium.toml``.

``consortium.toml`` says where the ordering cluster is and how peers reach this node::

    url = "http://127.0.0.1:8101"          # this node's URL, as peers and clients see it
    etcd = ["http://127.0.0.1:23790", ...]  # the etcd cluster's client endpoints
    prefix = "/medledger/<network>"         # key prefix of this network in etcd
    peers = ["http://127.0.0.1:8102", ...]  # the other authority nodes (catch-up, blobs)

The node's SoloOrdering queue becomes the intake queue the submitter cuts batches from; the
solo block builder is not started: blocks come only from the ordered log (ADR 0016).
"""

from __future__ import annotations

import base64
import json
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medledger.adapters.etcd_http import EtcdClient
from medledger.adapters.etcd_ordering import Election, EtcdLog
from medledger.adapters.sqlite_consortium import SqliteConsortium
from medledger.bootstrap import Node, load_genesis, open_node
from medledger.core.identity.keys import encryption_keypair
from medledger.core.ledger.contracts.governance import GovernanceContract, current_authorities
from medledger.errors import AccessDeniedError, ConfigurationError, NetworkError, NotFoundError
from medledger.services.consortium import ConsortiumNode, ConsortiumSettings
from medledger.services.peer_records import PeerRecords

CONSORTIUM_FILE = "consortium.toml"
CONSORTIUM_DB_FILE = Path("data") / "consortium.db"


@dataclass(frozen=True, slots=True)
class ConsortiumConfig:
    url: str
    etcd: tuple[str, ...]
    prefix: str
    peers: tuple[str, ...] = ()
    retain_positions: int = 10_000

    def __post_init__(self) -> None:
        for u in (self.url, *self.etcd, *self.peers):
            if not u.startswith(("http://", "https://")):
                raise ConfigurationError(f"{CONSORTIUM_FILE}: {u!r} is not an http(s) URL")
        if not self.etcd:
            raise ConfigurationError(f"{CONSORTIUM_FILE}: list the etcd endpoints")
        if not self.prefix.startswith("/"):
            raise ConfigurationError(f"{CONSORTIUM_FILE}: prefix must start with '/'")

    def to_toml(self) -> str:
        def arr(xs: Sequence[str]) -> str:
            return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

        return (
            "# medledger consortium settings (ADR 0016)\n"
            f'url = "{self.url}"\n'
            f"etcd = {arr(self.etcd)}\n"
            f'prefix = "{self.prefix}"\n'
            f"peers = {arr(self.peers)}\n"
            f"retain_positions = {self.retain_positions}\n"
        )


def is_consortium_home(home: Path) -> bool:
    return (home / CONSORTIUM_FILE).exists()


def load_consortium_config(home: Path) -> ConsortiumConfig:
    path = home / CONSORTIUM_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return ConsortiumConfig(
            url=str(raw["url"]),
            etcd=tuple(str(e) for e in raw["etcd"]),
            prefix=str(raw["prefix"]),
            peers=tuple(str(p) for p in raw.get("peers", [])),
            retain_positions=int(raw.get("retain_positions", 10_000)),
        )
    except (
        OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError
    ) as e:  # fmt: skip
        raise ConfigurationError(f"{CONSORTIUM_FILE} is missing or invalid: {e}") from e


class HttpForwarder:
    """Forwards envelopes to the elected submitter's ``/consortium/forward``."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._http = httpx.Client(timeout=timeout_s)

    def __call__(self, url: str, envelopes: Sequence[bytes]) -> None:
        body = {"txs": [base64.b64encode(e).decode("ascii") for e in envelopes]}
        try:
            r = self._http.post(f"{url.rstrip('/')}/consortium/forward", json=body)
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot forward to the submitter {url}: {type(e).__name__}") from e
        if r.status_code != 200:
            raise NetworkError(f"the submitter {url} refused the forward: HTTP {r.status_code}")

    def fetch_block(self, url: str, height: int) -> dict[str, object] | None:
        """A peer's block with its transactions and certificate; None if it has none."""
        try:
            r = self._http.get(f"{url.rstrip('/')}/consortium/blocks/{height}")
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the peer {url}: {type(e).__name__}") from e
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise NetworkError(f"the peer {url} answered HTTP {r.status_code}")
        try:
            body: dict[str, object] = r.json()
        except ValueError as e:
            raise NetworkError(f"the peer {url} sent no JSON") from e
        return body

    # --- cross-organization records (``PeerRecordsPort``) ----------------------------------
    def peer_did(self, url: str) -> str:
        body = self._get_json(f"{url.rstrip('/')}/consortium/status")
        did = body.get("did")
        if not isinstance(did, str):
            raise NetworkError(f"the peer {url} did not say who it is")
        return did

    def key_release(self, url: str, request: bytes) -> dict[str, Any]:
        try:
            r = self._http.post(
                f"{url.rstrip('/')}/records/key-release",
                content=request,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the custodian {url}: {type(e).__name__}") from e
        if r.status_code == 403:
            raise AccessDeniedError("the custodian refused the key release")
        if r.status_code == 404:
            raise NotFoundError("the custodian does not hold that record version")
        if r.status_code != 200:
            raise NetworkError(f"the custodian {url} answered HTTP {r.status_code}: {r.text[:200]}")
        try:
            body: dict[str, Any] = r.json()
        except ValueError as e:
            raise NetworkError(f"the custodian {url} sent no JSON") from e
        return body

    def blob(self, url: str, cid: str) -> bytes:
        try:
            r = self._http.get(f"{url.rstrip('/')}/blobs/{cid}")
        except httpx.HTTPError as e:
            raise NetworkError(f"cannot reach the peer {url}: {type(e).__name__}") from e
        if r.status_code == 404:
            raise NotFoundError(f"{url} does not hold {cid}")
        if r.status_code != 200:
            raise NetworkError(f"the peer {url} answered HTTP {r.status_code}")
        return r.content

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            r = self._http.get(url)
            r.raise_for_status()
            body: dict[str, Any] = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise NetworkError(f"cannot read {url}: {type(e).__name__}") from e
        return body

    def close(self) -> None:
        self._http.close()


@dataclass
class ConsortiumRuntime:
    node: Node
    config: ConsortiumConfig
    consortium: ConsortiumNode
    etcd: EtcdClient
    store: SqliteConsortium
    forwarder: HttpForwarder
    peer_records: PeerRecords

    def start(self) -> None:
        genesis = self.node.genesis  # block 0 is the same on every node
        self.node.ledger.start(genesis.time_ms, proposer=genesis.authorities[0].did)
        self.consortium.start()
        self.node.audit.start()  # the access-event log anchors its batches through the ledger

    def close(self) -> None:
        self.node.audit.close()  # first: its anchors commit while blocks are still applied
        self.consortium.close()
        self.node.close()
        self.store.close()
        self.forwarder.close()
        self.etcd.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def open_consortium_node(home: Path, *, passphrase: str | None = None) -> ConsortiumRuntime:
    config = load_consortium_config(home)
    genesis_dids = [a.did for a in load_genesis(home).authorities]
    node = open_node(
        home,
        passphrase=passphrase,
        extra_contracts=[GovernanceContract(genesis_dids)],
        genesis_authority=False,
    )
    etcd = EtcdClient(config.etcd, timeout_s=1.0)  # an error is no failure: read back (ADR 0016)
    ordered = EtcdLog(etcd, config.prefix)
    election = Election(ordered, json.dumps({"did": node.key.did, "url": config.url}).encode())
    (home / CONSORTIUM_DB_FILE).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = SqliteConsortium(home / CONSORTIUM_DB_FILE)
    forwarder = HttpForwarder()
    state = node.ledger.state_reader()

    def authorities() -> frozenset[str]:
        """The set in force: committed state, i.e. after the last block applied."""
        return frozenset(current_authorities(state, genesis_dids))

    consortium = ConsortiumNode(
        key=node.key,
        url=config.url,
        ledger=node.ledger,
        queue=node.ordering,
        ordered=ordered,
        election=election,
        store=store,
        authorities=authorities,
        forward=forwarder,
        clock_ms=_now_ms,
        settings=ConsortiumSettings(
            max_batch_txs=node.genesis.block_max_txs,
            batch_interval_s=node.genesis.block_interval_ms / 1000,
            retain_positions=config.retain_positions,
        ),
        peers=config.peers,
        fetch_block=forwarder.fetch_block,
    )
    peer_records = PeerRecords(
        state_get=node.ledger.state_get,
        node_encryption=encryption_keypair(node.key),
        blobs=node.blobs,
        peers=config.peers,
        port=forwarder,
    )
    return ConsortiumRuntime(node, config, consortium, etcd, store, forwarder, peer_records)
