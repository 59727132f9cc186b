"""Real etcd members and real nodes for the consortium tests, started here, stopped by PID.

etcd comes from Debian's ``etcd-server`` (installed on first use when missing and root, as
``make etcd`` does). Ports are taken from a free range found at start-up.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medledger.adapters.etcd_cluster import EtcdCluster, plan_members
from medledger.devnet import create_network, start_network, stop_network


def ensure_etcd() -> None:
    if shutil.which("etcd") or Path("/usr/bin/etcd").exists():
        return
    if os.geteuid() != 0:
        pytest.fail("etcd is missing: apt-get install -y etcd-server (or `make etcd`)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "etcd-server"], check=True, env=env, timeout=600
    )


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(200):
        first = random.randrange(20000, 40000)
        if all(_free(first + i) for i in range(count)):
            return first
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    ensure_etcd()
    base = tmp_path_factory.mktemp("etcd")
    cluster = EtcdCluster(plan_members(base, 3, free_ports(6)), token=base.name)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 3-node, 3-etcd-member dev network (``medledger network up``), stopped by PID."""
    ensure_etcd()
    base = tmp_path_factory.mktemp("net")
    create_network(
        base, nodes=3, base_port=free_ports(3), etcd_port=free_ports(6), retain_positions=20
    )
    try:
        start_network(base)
        yield base
    finally:
        stop_network(base)
