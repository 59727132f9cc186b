"""The dev network: N authority nodes and a 3-member etcd cluster on loopback, by PID.

``create_network`` writes, under one directory::

    network.json       what runs: etcd members and nodes with their ports, URLs and PIDs
    genesis.json       the shared genesis listing every node's authority key
    etcd/etcdK/        each etcd member's data directory (and etcdK.log)
    nodeK/             each node's home (node.toml, consortium.toml, keys, data, node.log)

``start_network`` starts what is not running (etcd first, then the nodes, each detached in
its own session) and waits until every node answers; ``stop_network`` stops them by PID;
``network_status`` asks every node for its status. Homes are demo homes (the key passphrase
is kept next to the key): for development on one machine only (docs/network.md).
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medledger.adapters.etcd_cluster import (
    EtcdCluster,
    EtcdMember,
    pid_alive,
    plan_members,
    spawn,
    stop_pid,
)
from medledger.adapters.files import atomic_write
from medledger.adapters.keystore import generate_key
from medledger.bootstrap import init_home, load_genesis
from medledger.bootstrap_consortium import (
    CONSORTIUM_FILE,
    ConsortiumConfig,
    load_consortium_config,
)
from medledger.core.ledger.genesis import Authority, Genesis
from medledger.errors import ConfigurationError, NetworkError

NETWORK_FILE = "network.json"
DEMO_PASSPHRASE = "medledger-network-dev"  # noqa: S105 - dev homes keep their passphrase
ORGANIZATIONS = (
    ("St. Example Hospital", "hospital"),
    ("Riverside Clinic", "clinic"),
    ("Central Lab", "lab"),
    ("Northside Hospital", "hospital"),
    ("Harbor Clinic", "clinic"),
)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    home: Path
    url: str
    port: int
    did: str


def create_network(
    base: Path,
    *,
    nodes: int = 3,
    base_port: int = 8101,
    etcd_port: int = 23790,
    network: str = "medledger-net",
    etcd_members: int = 3,
    block_interval_ms: int = 50,
    retain_positions: int = 10_000,
) -> None:
    """Write the homes, genesis and network.json of a new dev network (nothing started)."""
    if (base / NETWORK_FILE).exists():
        raise ConfigurationError(f"{base} already holds a network")
    if not 1 <= nodes <= len(ORGANIZATIONS):
        raise ConfigurationError(f"--nodes must be 1-{len(ORGANIZATIONS)}")
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = [generate_key() for _ in range(nodes)]
    genesis = Genesis(
        network=network,
        time_ms=int(time.time() * 1000),
        authorities=tuple(
            Authority(did=k.did, name=ORGANIZATIONS[i][0], roles=(ORGANIZATIONS[i][1],))
            for i, k in enumerate(keys)
        ),
        block_interval_ms=block_interval_ms,
    )
    atomic_write(base / "genesis.json", genesis.to_json(), mode=0o644)
    members = plan_members(base / "etcd", etcd_members, etcd_port)
    infos = []
    for i, key in enumerate(keys):
        name = f"node{i + 1}"
        port = base_port + i
        url = f"http://127.0.0.1:{port}"
        home = base / name
        init_home(
            home,
            passphrase=DEMO_PASSPHRASE,
            origin=f"{name}.{network}.local/log",
            port=port,
            genesis=genesis,
            node_key=key,
            store_passphrase=True,
        )
        peers = [f"http://127.0.0.1:{base_port + j}" for j in range(nodes) if j != i]
        config = ConsortiumConfig(
            url=url,
            etcd=tuple(m.client_url for m in members),
            prefix=f"/medledger/{network}",
            peers=tuple(peers),
            retain_positions=retain_positions,
        )
        atomic_write(home / CONSORTIUM_FILE, config.to_toml().encode(), mode=0o644)
        infos.append(
            {"name": name, "home": str(home), "url": url, "port": port, "did": key.did, "pid": None}
        )
    doc = {
        "network": network,
        "token": f"medledger-{secrets.token_hex(4)}",
        "etcd": [
            {"name": m.name, "client_port": m.client_port, "peer_port": m.peer_port,
             "data_dir": str(m.data_dir), "pid": None}
            for m in members
        ],
        "nodes": infos,
    }  # fmt: skip
    _save(base, doc)


def add_node(base: Path, *, port: int | None = None) -> NodeInfo:
    """A new node home in the network, with a fresh key that is no authority yet: the
    authorities add it by a governance transaction (``authority.propose``/``approve``). It
    is started by the next ``start_network``; its peers are the existing nodes."""
    doc = load_network(base)
    index = len(doc["nodes"]) + 1
    name = f"node{index}"
    port = port or max(n["port"] for n in doc["nodes"]) + 1
    url = f"http://127.0.0.1:{port}"
    genesis = load_genesis(base / doc["nodes"][0]["home"])
    key = generate_key()
    home = base / name
    init_home(
        home,
        passphrase=DEMO_PASSPHRASE,
        origin=f"{name}.{doc['network']}.local/log",
        port=port,
        genesis=genesis,
        node_key=key,
        store_passphrase=True,
    )
    first = load_consortium_config(Path(doc["nodes"][0]["home"]))
    config = ConsortiumConfig(
        url=url,
        etcd=first.etcd,
        prefix=first.prefix,
        peers=tuple(n["url"] for n in doc["nodes"]),
        retain_positions=first.retain_positions,
    )
    atomic_write(home / CONSORTIUM_FILE, config.to_toml().encode(), mode=0o644)
    doc["nodes"].append(
        {"name": name, "home": str(home), "url": url, "port": port, "did": key.did, "pid": None}
    )
    _save(base, doc)
    return NodeInfo(name, home, url, port, key.did)


def _save(base: Path, doc: dict[str, Any]) -> None:
    atomic_write(base / NETWORK_FILE, json.dumps(doc, indent=2).encode(), mode=0o644)


def load_network(base: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((base / NETWORK_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"{base} holds no network: run `medledger network up`") from e
    return doc


def etcd_cluster(base: Path) -> EtcdCluster:
    doc = load_network(base)
    members = [
        EtcdMember(m["name"], m["client_port"], m["peer_port"], Path(m["data_dir"]))
        for m in doc["etcd"]
    ]
    cluster = EtcdCluster(members, token=doc["token"])
    for m in doc["etcd"]:
        if m["pid"] and pid_alive(m["pid"]):
            cluster.pids[m["name"]] = m["pid"]
    return cluster


def nodes(base: Path) -> list[NodeInfo]:
    return [
        NodeInfo(n["name"], Path(n["home"]), n["url"], n["port"], n["did"])
        for n in load_network(base)["nodes"]
    ]


def start_network(base: Path, *, timeout_s: float = 60.0) -> list[NodeInfo]:
    """Start every etcd member and node that is not running; wait until all answer."""
    doc = load_network(base)
    cluster = etcd_cluster(base)
    for m in cluster.members:
        if m.name not in cluster.pids:
            cluster.start_member(m.name, wait=False)
    cluster.wait_healthy(timeout_s=timeout_s)
    for m in doc["etcd"]:
        m["pid"] = cluster.pids.get(m["name"])
    for n in doc["nodes"]:
        if not (n["pid"] and pid_alive(n["pid"])):
            n["pid"] = start_node(Path(n["home"]))
    _save(base, doc)
    for n in doc["nodes"]:
        wait_node(n["url"], timeout_s=timeout_s, pid=n["pid"])
    return nodes(base)


def start_node(home: Path) -> int:
    """Start ``medledger serve`` on a node home, detached; return its PID."""
    return spawn(
        [sys.executable, "-m", "medledger.entrypoints.cli", "serve", "--home", str(home)],
        home / "node.log",
    )


def set_node_pid(base: Path, name: str, pid: int | None) -> None:
    doc = load_network(base)
    for n in doc["nodes"]:
        if n["name"] == name:
            n["pid"] = pid
    _save(base, doc)


def set_etcd_pids(base: Path, pids: dict[str, int]) -> None:
    doc = load_network(base)
    for m in doc["etcd"]:
        m["pid"] = pids.get(m["name"])
    _save(base, doc)


def node_pid(base: Path, name: str) -> int | None:
    for n in load_network(base)["nodes"]:
        if n["name"] == name:
            pid: int | None = n["pid"]
            return pid
    return None


def wait_node(url: str, *, timeout_s: float = 60.0, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/consortium/status", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if pid is not None and not pid_alive(pid):
            raise NetworkError(f"the node at {url} exited: see its node.log")
        if time.monotonic() > deadline:
            raise NetworkError(f"the node at {url} did not start within {timeout_s} s")
        time.sleep(0.1)


def stop_network(base: Path) -> int:
    """Stop nodes, then etcd members, by the PIDs in network.json; return how many."""
    doc = load_network(base)
    stopped = 0
    for group in (doc["nodes"], doc["etcd"]):
        for p in group:
            if p["pid"] and pid_alive(p["pid"]):
                stop_pid(p["pid"])
                stopped += 1
            p["pid"] = None
    _save(base, doc)
    return stopped


def network_status(base: Path) -> list[dict[str, Any]]:
    """Every node's status (or its error), and which nodes diverged from the quorum."""
    out: list[dict[str, Any]] = []
    for n in nodes(base):
        try:
            r = httpx.get(f"{n.url}/consortium/status", timeout=3.0)
            status: dict[str, Any] = (
                r.json() if r.status_code == 200 else {"error": f"HTTP {r.status_code}"}
            )
        except (httpx.HTTPError, ValueError) as e:
            status = {"error": f"unreachable ({type(e).__name__})"}
        out.append({"name": n.name, "url": n.url, "did": n.did, **status})
    return out


def diverged(statuses: list[dict[str, Any]]) -> dict[str, str]:
    """Node name -> why it is named as diverged: its own alarm, or the others' dissent."""
    by_did = {s["did"]: s["name"] for s in statuses}
    named: dict[str, str] = {}
    for s in statuses:
        if s.get("alarm"):
            named[s["name"]] = s["alarm"]["message"]
        for did, height in (s.get("dissenters") or {}).items():
            if did in by_did and by_did[did] not in named:
                named[by_did[did]] = f"signed a different block {height} than the quorum"
    return named
