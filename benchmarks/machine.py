"""What the figures were measured on: CPU, Python, libraries, and the process's memory."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

import medledger


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """The type of the filesystem that holds ``path`` (from /proc/mounts): tmpfs would cheat."""
    best, fstype = "", "unknown"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1]
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
            best
        ):
            best, fstype = mount, f"{fields[2]} ({fields[0]} on {mount})"
    return fstype


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(temp_dir: Path) -> dict[str, str | int]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "pymerkle": _version("pymerkle"),
        "psycopg": _version("psycopg"),
        "temp_dir_filesystem": filesystem_of(temp_dir),
        "contention_at_start": contention(),
    }


def contention() -> str:
    """Load averages and pressure stall (PSI, % of the last 60 s some task waited for CPU/IO):
    other work on the machine skews every figure, so the report shows how much there was."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    parts = [f"load {load}"]
    for resource in ("cpu", "io"):
        path = Path("/proc/pressure") / resource
        if path.exists():
            some = path.read_text().splitlines()[0].split()
            avg60 = dict(f.split("=") for f in some[1:])["avg60"]
            parts.append(f"{resource} pressure {avg60}%")
    return ", ".join(parts)


def memory_mib() -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident set size of this process, in MiB."""
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"peak_rss_mib": out["VmHWM"], "rss_mib": out["VmRSS"]}


def medledger_source() -> str:
    """The commit of the medledger code measured, and whether its src/ had local changes."""
    checkout = Path(medledger.__file__).resolve().parents[2]
    git = ["git", "--no-optional-locks", "-C", str(checkout)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{checkout} (not a git checkout)"
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")
