"""`medledger network up|status|down` as a newcomer runs them: real etcd, real nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.consortium.conftest import ensure_etcd, free_ports


def medledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medledger.entrypoints.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_network_up_gives_a_working_three_organization_network_in_one_command(
    tmp_path: Path,
) -> None:
    ensure_etcd()
    home = tmp_path / "net"
    up = medledger(
        "network", "up", "--nodes", "3", "--home", str(home),
        "--base-port", str(free_ports(3)), "--etcd-port", str(free_ports(6)),
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        doc = json.loads((home / "network.json").read_text())
        for node in doc["nodes"]:
            assert node["url"] in up.stdout
            assert httpx.get(f"{node['url']}/healthz", timeout=10).json()["height"] == 0
        status = medledger("network", "status", "--home", str(home))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count(" ok") == 3
    finally:
        down = medledger("network", "down", "--home", str(home))
    assert down.returncode == 0, down.stderr
    doc = json.loads((home / "network.json").read_text())
    pids = [p["pid"] for p in doc["nodes"] + doc["etcd"]]
    assert pids == [None] * 6
    assert "stopped 6 processes" in down.stdout


def test_network_commands_fail_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    for args in (
        ("network", "down", "--home", str(tmp_path / "nothing")),
        ("network", "status", "--home", str(tmp_path / "nothing")),
        ("network", "up", "--nodes", "9", "--home", str(tmp_path / "n9")),
    ):
        result = medledger(*args)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error:")
        assert len(result.stderr.strip().splitlines()) == 1
