"""The `medledger` CLI as a user runs it: real processes, real files, exit codes and messages."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from medledger.bootstrap import SIGNER_KEY_FILE, init_home, open_node
from medledger.core.note import format_verifier_key

from .conftest import MEDLEDGER, PASSPHRASE, free_port, start, stop

ORIGIN = "cli.medledger.test/log"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEDLEDGER, *args],
        env={**os.environ, "MEDLEDGER_PASSPHRASE": PASSPHRASE},
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(scope="module")
def home_with_receipts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    home = tmp_path_factory.mktemp("cli") / "home"
    assert run("init", "--home", str(home), "--origin", ORIGIN).returncode == 0
    node = open_node(home, passphrase=PASSPHRASE)
    entries = [f"audit line {i}".encode() for i in range(70)]
    node.log.append(entries)
    node.log.sign_current()
    receipts = tmp_path_factory.mktemp("receipts")
    for index in (0, 42, 69):
        (receipts / f"{index}.txt").write_bytes(node.log.receipt(index))
    (receipts / "key").write_text(format_verifier_key(node.log.verifier))
    node.close()
    return home, receipts, entries


def test_init_writes_an_owner_only_key_and_refuses_to_overwrite(tmp_path: Path):
    home = tmp_path / "n"
    assert run("init", "--home", str(home), "--origin", ORIGIN).returncode == 0
    mode = stat.S_IMODE((home / SIGNER_KEY_FILE).stat().st_mode)
    assert mode == 0o600
    before = (home / SIGNER_KEY_FILE).read_bytes()
    assert_clean_failure(run("init", "--home", str(home)), "already initialised")
    assert (home / SIGNER_KEY_FILE).read_bytes() == before


def test_init_rejects_a_malformed_origin(tmp_path: Path):
    assert_clean_failure(
        run("init", "--home", str(tmp_path / "x"), "--origin", "bad origin"), "origin"
    )
    assert not (tmp_path / "x" / "node.toml").exists()


def test_log_verify_passes_on_an_intact_log(home_with_receipts: tuple[Path, Path, list[bytes]]):
    home, _, _ = home_with_receipts
    result = run("log", "verify", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert "70 entries" in result.stdout


def test_log_verify_on_a_missing_home_names_the_problem(tmp_path: Path):
    assert_clean_failure(run("log", "verify", "--home", str(tmp_path / "nope")), "not a node home")


def test_receipt_verifies_offline_with_key_string_or_file(
    home_with_receipts: tuple[Path, Path, list[bytes]],
):
    _, receipts, entries = home_with_receipts
    key = (receipts / "key").read_text()
    ok = run("receipt", "verify", str(receipts / "42.txt"), "--key", key)
    assert ok.returncode == 0, ok.stderr
    assert "entry 42" in ok.stdout
    entry_file = receipts / "entry42"
    entry_file.write_bytes(entries[42])
    with_file = run(
        "receipt",
        "verify",
        str(receipts / "42.txt"),
        "--key",
        str(receipts / "key"),
        "--entry",
        str(entry_file),
    )
    assert with_file.returncode == 0, with_file.stderr


def test_receipt_for_an_altered_entry_is_rejected(
    home_with_receipts: tuple[Path, Path, list[bytes]], tmp_path: Path
):
    _, receipts, _ = home_with_receipts
    altered = tmp_path / "altered"
    altered.write_bytes(b"audit line 43")
    result = run(
        "receipt",
        "verify",
        str(receipts / "42.txt"),
        "--key",
        str(receipts / "key"),
        "--entry",
        str(altered),
    )
    assert_clean_failure(result, "different entry")


def test_receipt_with_a_flipped_proof_hash_is_rejected(
    home_with_receipts: tuple[Path, Path, list[bytes]], tmp_path: Path
):
    _, receipts, _ = home_with_receipts
    lines = (receipts / "42.txt").read_bytes().split(b"\n")
    index_line = next(i for i, line in enumerate(lines) if line.startswith(b"index "))
    proof_line = lines[index_line + 1]
    lines[index_line + 1] = (b"A" if proof_line[:1] != b"A" else b"B") + proof_line[1:]
    forged = tmp_path / "forged.txt"
    forged.write_bytes(b"\n".join(lines))
    assert_clean_failure(
        run("receipt", "verify", str(forged), "--key", str(receipts / "key")), "does not verify"
    )


def test_receipt_under_another_logs_key_is_rejected(
    home_with_receipts: tuple[Path, Path, list[bytes]], tmp_path: Path
):
    _, receipts, _ = home_with_receipts
    other = tmp_path / "other"
    init_home(other, origin=ORIGIN, passphrase=PASSPHRASE)
    node = open_node(other, passphrase=PASSPHRASE)
    other_key = format_verifier_key(node.log.verifier)
    node.close()
    assert_clean_failure(
        run("receipt", "verify", str(receipts / "0.txt"), "--key", other_key), "does not verify"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ("does not verify",)),
        (b"not a receipt\n", ("does not verify",)),
        (b"c2sp.org/tlog-proof@v1\nindex 01\n\nx\n", ("does not verify",)),
        (b"\xff\xfe" * 100, ("does not verify",)),
        (b"A" * (2 * 1024 * 1024), ("larger than",)),
    ],
)
def test_malformed_receipt_files_get_a_message_not_a_traceback(
    home_with_receipts: tuple[Path, Path, list[bytes]],
    tmp_path: Path,
    content: bytes,
    words: tuple[str, ...],
):
    _, receipts, _ = home_with_receipts
    bad = tmp_path / "bad"
    bad.write_bytes(content)
    assert_clean_failure(run("receipt", "verify", str(bad), "--key", str(receipts / "key")), *words)


def test_receipt_verify_with_a_malformed_key_names_it(
    home_with_receipts: tuple[Path, Path, list[bytes]],
):
    _, receipts, _ = home_with_receipts
    assert_clean_failure(
        run("receipt", "verify", str(receipts / "0.txt"), "--key", "name+zz+!!"), "does not verify"
    )


def test_serve_on_an_uninitialised_home_says_so(tmp_path: Path):
    assert_clean_failure(run("serve", "--home", str(tmp_path / "empty")), "medledger init")


def test_demo_serves_a_live_ledger_and_growing_log(tmp_path: Path):
    """What `make run` starts: the demo network with transactions flowing into blocks, every
    one a log leaf, and checkpoints every second; afterwards chain and log both verify."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    home = tmp_path / "demo"
    process = start(["demo", "--home", str(home), "--port", str(port)], url)
    try:
        sizes: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(sizes)) < 3:
            note = httpx.get(url + "log/checkpoint", timeout=5)
            assert note.status_code == 200
            sizes.append(int(note.text.split("\n")[1]))
            time.sleep(0.3)
        assert len(set(sizes)) >= 3, f"checkpoints did not advance: {sizes}"
        assert sizes == sorted(sizes)
        latest = httpx.get(url + "ledger/blocks/latest", timeout=5).json()
        assert latest["height"] >= 2
        entry = httpx.get(url + "log/entries/0", timeout=5).content
        assert b'"kind":"tx"' in entry
    finally:
        output = stop(process)
    assert url in output
    for command in (["chain", "verify"], ["log", "verify"]):
        result = run(*command, "--home", str(home))
        assert result.returncode == 0, result.stderr
