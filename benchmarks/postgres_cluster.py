"""A throw-away PostgreSQL cluster of our own: initdb in a temp dir, loopback only, then gone.

Steps: (1) make sure the server binaries exist (``apt-get install -y postgresql`` if not);
(2) initdb into a fresh temp dir owned by the ``postgres`` user when we run as root (the server
refuses to run as root); (3) start ``postgres`` listening on 127.0.0.1 and a Unix socket in that
dir, on a free port; (4) poll until it accepts connections; (5) on exit -- also on failure --
stop it by PID with SIGINT ("fast shutdown"), wait, and remove the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Cluster:
    socket_dir: Path
    port: int
    user: str = "postgres"
    dbname: str = "postgres"

    def conninfo(self) -> str:
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={self.dbname}"


def ensure_installed() -> Path:
    """Step 1: the Debian PostgreSQL 15 binaries, installed with apt-get if missing."""
    if not (PG_BIN / "postgres").exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "postgresql"]
        if subprocess.run(install, env=env, check=False).returncode:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    if not (PG_BIN / "postgres").exists():
        raise RuntimeError(f"PostgreSQL 15 is not in {PG_BIN} after apt-get install")
    return PG_BIN


def _run_as() -> str | None:
    """The server must not run as root: use the ``postgres`` account when we are root."""
    if os.geteuid() != 0:
        return None
    pwd.getpwnam("postgres")  # KeyError if the account is missing
    return "postgres"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _initdb(root: Path, user: str | None) -> Path:
    """Step 2: a new cluster in ``root/data``; trust auth is safe: loopback and a 0700 dir."""
    if user is not None:
        shutil.chown(root, user, user)
    data = root / "data"
    cmd = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
           "-E", "UTF8", "--locale=C", "--no-instructions"]  # fmt: skip
    done = subprocess.run(cmd, user=user, group=user, extra_groups=[] if user else None,
                          capture_output=True, text=True, cwd=root, check=False)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"initdb failed: {done.stderr.strip()[-2000:]}")
    return data


def _start(root: Path, data: Path, port: int, user: str | None) -> subprocess.Popen[bytes]:
    """Step 3: the postmaster itself is our child, so its PID is the one to signal."""
    cmd = [str(PG_BIN / "postgres"), "-D", str(data), "-k", str(root), "-p", str(port),
           "-c", "listen_addresses=127.0.0.1"]  # fmt: skip
    with (root / "postgres.log").open("wb") as log:
        return subprocess.Popen(cmd, user=user, group=user, extra_groups=[] if user else None,
                                stdout=log, stderr=subprocess.STDOUT, cwd=root)  # fmt: skip


def _wait_ready(proc: subprocess.Popen[bytes], cluster: Cluster, log: Path) -> None:
    """Step 4: poll with a real connection until one succeeds, the server dies, or time out."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            psycopg.connect(cluster.conninfo(), connect_timeout=2).close()
        except psycopg.OperationalError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"postgres not ready after {_READY_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Step 5: SIGINT is PostgreSQL's fast shutdown; kill only if it hangs."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started cluster for the ``with`` body; stopped and deleted afterwards, always."""
    ensure_installed()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="medledger-bench-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        data = _initdb(root, user)
        cluster = Cluster(root, _free_port())
        proc = _start(root, data, cluster.port, user)
        _wait_ready(proc, cluster, root / "postgres.log")
        yield cluster
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def server_version() -> str:
    cmd = [str(PG_BIN / "postgres"), "--version"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
