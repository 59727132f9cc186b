"""A local etcd cluster of real ``etcd`` processes on loopback, started and stopped by PID.

For the dev network (``medledger network up``) and the tests: each member gets a data
directory, a client port and a peer port on 127.0.0.1; the cluster is bootstrapped with a
static ``--initial-cluster``. Members run with a low ``--snapshot-count`` (memory stays flat)
and an auto-compaction retention, so a long run's revision history does not grow without
bound. Stopping is by PID only (SIGTERM, then SIGKILL after a grace period); ``kill`` sends
SIGKILL to one member, for fault tests.

Not handled here: TLS and authentication (a production topology runs one member per site
with both, see docs/network.md), talking to the cluster (``medledger.adapters.etcd_http``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from medledger.errors import ConfigurationError, NetworkError

ETCD_BINARY = "/usr/bin/etcd"
#: Raft snapshots every N applied entries: low keeps each member's memory in check.
SNAPSHOT_COUNT = 2000


#: Processes this interpreter started, by PID: reaped when stopped (no zombies, no warnings).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(args: Sequence[str], log_path: Path) -> int:
    """Start a detached process (its own session) logging to ``log_path``; return its PID."""
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603 - fixed binaries and arguments we built
            list(args),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def reap(pid: int, timeout_s: float = 10.0) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _CHILDREN[pid] = proc


@dataclass(frozen=True, slots=True)
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


def plan_members(base_dir: Path, count: int, first_port: int) -> tuple[EtcdMember, ...]:
    """``count`` members, client ports ``first_port + 2i``, peer ports one above."""
    if not 1 <= count <= 9:
        raise ConfigurationError("an etcd cluster has 1-9 members")
    return tuple(
        EtcdMember(
            f"etcd{i + 1}", first_port + 2 * i, first_port + 2 * i + 1, base_dir / f"etcd{i + 1}"
        )
        for i in range(count)
    )


def etcd_command(member: EtcdMember, members: Sequence[EtcdMember], token: str) -> list[str]:
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    return [
        find_etcd(),
        "--name", member.name,
        "--data-dir", str(member.data_dir),
        "--listen-client-urls", member.client_url,
        "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url,
        "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", initial,
        "--initial-cluster-token", token,
        "--initial-cluster-state", "new",
        "--snapshot-count", str(SNAPSHOT_COUNT),
        "--auto-compaction-mode", "revision",
        "--auto-compaction-retention", "10000",
        "--heartbeat-interval", "100",
        "--election-timeout", "1000",
        "--quota-backend-bytes", str(2 * 1024**3),
        "--max-request-bytes", str(3 * 512 * 1024),
        "--logger", "zap",
        "--log-outputs", "stderr",
        "--log-level", "warn",
    ]  # fmt: skip


def find_etcd() -> str:
    found = shutil.which("etcd") or (ETCD_BINARY if Path(ETCD_BINARY).exists() else None)
    if found is None:
        raise ConfigurationError(
            "etcd is not installed: apt-get install -y etcd-server (Debian) or `make etcd`"
        )
    return found


class EtcdCluster:
    """Real etcd member processes; ``pids`` is what ``stop`` (and ``network down``) kills."""

    def __init__(
        self,
        members: Sequence[EtcdMember],
        *,
        token: str = "medledger-dev",  # noqa: S107 - a cluster name, not a secret
    ) -> None:
        self.members = tuple(members)
        self.token = token
        self.pids: dict[str, int] = {}

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, *, timeout_s: float = 30.0) -> None:
        for member in self.members:
            self.start_member(member.name, wait=False)
        self.wait_healthy(timeout_s=timeout_s)

    def start_member(self, name: str, *, wait: bool = True) -> None:
        """Start (or restart, on its existing data directory) one member."""
        member = self._member(name)
        member.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path = member.data_dir.parent / f"{name}.log"
        self.pids[name] = spawn(etcd_command(member, self.members, self.token), log_path)
        if wait:
            self.wait_healthy()

    def _member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise ConfigurationError(f"no etcd member {name}")

    def wait_healthy(self, *, timeout_s: float = 30.0) -> None:
        """Until a quorum of members answers ``/health`` with a leader elected."""
        deadline = time.monotonic() + timeout_s
        while True:
            healthy = sum(1 for m in self.members if self.pids.get(m.name) and _healthy(m))
            if healthy > len(self.members) // 2:
                return
            if time.monotonic() > deadline:
                raise NetworkError(f"etcd cluster not healthy after {timeout_s} s")
            time.sleep(0.1)

    def leader(self) -> str:
        """The name of the member that is the Raft leader now."""
        ids: dict[int, str] = {}
        leader_id = None
        for m in self.members:
            if m.name not in self.pids:
                continue
            try:
                r = httpx.post(f"{m.client_url}/v3/maintenance/status", json={}, timeout=2.0)
                body = r.json()
            except (httpx.HTTPError, ValueError):
                continue
            ids[int(body["header"]["member_id"])] = m.name
            leader_id = int(body["leader"])
        if leader_id is None or leader_id not in ids:
            raise NetworkError("no etcd leader found")
        return ids[leader_id]

    def kill(self, name: str) -> None:
        """SIGKILL one member (a crash), by its PID."""
        pid = self.pids.pop(name)
        kill_pid(pid, signal.SIGKILL)
        reap(pid)

    def stop(self) -> None:
        for name in list(self.pids):
            stop_pid(self.pids.pop(name))

    def to_json(self) -> dict[str, object]:
        return {
            "token": self.token,
            "members": [
                {
                    "name": m.name,
                    "client_port": m.client_port,
                    "peer_port": m.peer_port,
                    "data_dir": str(m.data_dir),
                    "pid": self.pids.get(m.name),
                }
                for m in self.members
            ],
        }


def _healthy(member: EtcdMember) -> bool:
    try:
        r = httpx.get(f"{member.client_url}/health", timeout=1.0)
        return r.status_code == 200 and json.loads(r.text).get("health") == "true"
    except (httpx.HTTPError, ValueError):
        return False


def kill_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child is dead for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def stop_pid(pid: int, *, grace_s: float = 5.0) -> None:
    """SIGTERM the process, then SIGKILL it if it is still alive after ``grace_s``."""
    kill_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            kill_pid(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    reap(pid)
