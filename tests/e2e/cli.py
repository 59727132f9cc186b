"""Running the real `medledger` CLI against a served node, as the e2e tests do."""

from __future__ import annotations

import os
import subprocess

from .conftest import MEDLEDGER

DEMO_PASSPHRASE = "medledger-demo"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`medledger ARGS`, signing with demo keys (their published passphrase)."""
    return subprocess.run(
        [*MEDLEDGER, *args],
        env={**os.environ, "MEDLEDGER_PASSPHRASE": DEMO_PASSPHRASE, "COLUMNS": "240"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    """A one-line refusal naming ``words``, never a traceback."""
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
