"""Fixtures shared by the integration tests: the real CLI, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

MedledgerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def medledger_cli() -> MedledgerCli:
    """Run ``medledger ARGS...`` in a subprocess of this interpreter; return what it did."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "medledger.entrypoints.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
