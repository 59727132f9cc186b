"""`medledger keys split` / `keys recover` as a user runs them: real processes and files.

A key split 3-of-5 comes back from any 3 shares as the same, working key; 2 shares, a share
with one flipped character, shares of two splits and an unexpected did recover nothing and
write nothing; no file is ever overwritten; no failure prints a traceback.
"""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from medledger.adapters.keystore import read_key_file
from medledger.core.identity.keys import verify_signature
from medledger.core.recovery.shamir import parse_share

from .conftest import MEDLEDGER, PASSPHRASE

RECOVERY_FAILED = "the shares do not recover a key"


def run(*args: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEDLEDGER, *args],
        env={**os.environ, "MEDLEDGER_PASSPHRASE": passphrase},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@dataclass(frozen=True)
class SplitKey:
    key_file: Path
    did: str
    shares: dict[int, Path]  # x -> share file, 3-of-5


def new_key(path: Path) -> str:
    result = run("keys", "new", "--out", str(path))
    assert_ok(result)
    return result.stdout.strip()


def split_key(key_file: Path, out_dir: Path, k: int = 3, n: int = 5) -> dict[int, Path]:
    result = run(
        "keys", "split", "--key", str(key_file), "--threshold", str(k), "--shares", str(n),
        "--out-dir", str(out_dir), "--name", "patient",
    )  # fmt: skip
    assert_ok(result)
    return {x: out_dir / f"patient-share-{x}-of-{n}.txt" for x in range(1, n + 1)}


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> SplitKey:
    """One patient key, split 3-of-5. Tests copy a share before changing it."""
    base = tmp_path_factory.mktemp("recovery")
    key_file = base / "patient.key"
    did = new_key(key_file)
    return SplitKey(key_file, did, split_key(key_file, base / "shares"))


def recover(shares: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("keys", "recover", *map(str, shares), "--out", str(out), *extra)


# --- split -----------------------------------------------------------------------------------
def test_split_writes_n_owner_only_share_files_each_naming_the_key(split: SplitKey):
    assert sorted(p.name for p in split.shares[1].parent.iterdir()) == sorted(
        f"patient-share-{x}-of-5.txt" for x in range(1, 6)
    )
    for x, path in split.shares.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        header, line = path.read_text().splitlines()
        assert header == f"# medledger key share {x} of 5, threshold 3, for {split.did}"
        share = parse_share(line)
        assert (share.x, share.k) == (x, 3)


def test_split_prints_the_did_and_every_file_written(tmp_path: Path, split: SplitKey):
    result = run(
        "keys", "split", "--key", str(split.key_file), "--threshold", "2", "--shares", "3",
        "--out-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert_ok(result)
    assert result.stdout.splitlines()[0] == split.did
    for x in range(1, 4):  # the default label is the key file's stem
        assert str(tmp_path / "out" / f"patient-share-{x}-of-3.txt") in result.stdout


def test_the_seed_appears_in_no_share_file(split: SplitKey):
    seed = read_key_file(split.key_file, PASSPHRASE).export_seed()
    for path in split.shares.values():
        share = parse_share(path.read_text().splitlines()[1])
        assert share.y != seed
        assert seed.hex() not in path.read_text()


@pytest.mark.parametrize(
    ("k", "n", "message"),
    [
        ("1", "5", "--threshold must be at least 2"),
        ("0", "5", "--threshold must be at least 2"),
        ("-3", "5", "--threshold must be at least 2"),
        ("6", "5", "--threshold (6) cannot be larger than --shares (5)"),
        ("2", "1", "--threshold (2) cannot be larger than --shares (1)"),
        ("3", "256", "--shares must be at most 255"),
    ],
)
def test_split_rejects_a_bad_threshold_or_share_count(
    tmp_path: Path, split: SplitKey, k: str, n: str, message: str
):
    out_dir = tmp_path / "out"
    result = run(
        "keys", "split", "--key", str(split.key_file), "--threshold", k, "--shares", n,
        "--out-dir", str(out_dir),
    )  # fmt: skip
    assert_clean_failure(result, message)
    assert not out_dir.exists()


def test_split_refuses_to_overwrite_any_share_file(split: SplitKey):
    before = {x: p.read_bytes() for x, p in split.shares.items()}
    result = run(
        "keys", "split", "--key", str(split.key_file), "--threshold", "3", "--shares", "5",
        "--out-dir", str(split.shares[1].parent), "--name", "patient",
    )  # fmt: skip
    assert_clean_failure(result, "exists: refusing to overwrite")
    assert {x: p.read_bytes() for x, p in split.shares.items()} == before


def test_split_with_a_wrong_passphrase_writes_nothing(tmp_path: Path, split: SplitKey):
    result = run(
        "keys", "split", "--key", str(split.key_file), "--threshold", "2", "--shares", "2",
        "--out-dir", str(tmp_path / "out"), passphrase="not-the-passphrase",
    )  # fmt: skip
    assert_clean_failure(result, "wrong passphrase")
    assert not (tmp_path / "out").exists()


def test_split_rejects_a_label_that_is_not_a_plain_file_name(tmp_path: Path, split: SplitKey):
    result = run(
        "keys", "split", "--key", str(split.key_file), "--threshold", "2", "--shares", "2",
        "--out-dir", str(tmp_path / "out"), "--name", "../escape",
    )  # fmt: skip
    assert_clean_failure(result, "--name")
    assert not any(tmp_path.rglob("*share*"))


# --- recover ---------------------------------------------------------------------------------
@pytest.mark.parametrize("xs", [(1, 2, 3), (1, 3, 5), (2, 4, 5), (5, 1, 3), (1, 2, 3, 4, 5)])
def test_any_three_shares_recover_the_same_working_key(
    tmp_path: Path, split: SplitKey, xs: tuple[int, ...]
):
    out = tmp_path / "recovered.key"
    result = recover([split.shares[x] for x in xs], out, "--expect-did", split.did)
    assert_ok(result)
    assert result.stdout.splitlines()[0] == split.did
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    recovered = read_key_file(out, PASSPHRASE)
    original = read_key_file(split.key_file, PASSPHRASE)
    assert recovered.did == split.did
    assert recovered.export_seed() == original.export_seed()
    message = b"medledger/test/v1\x00recovered key signs"
    verify_signature(split.did, message, recovered.sign(message))


def test_every_three_of_five_subset_of_the_written_shares_combines(split: SplitKey):
    """All 10 subsets of the files the CLI wrote (in-process: 10 processes would be slow)."""
    from medledger.core.recovery.shamir import combine

    seed = read_key_file(split.key_file, PASSPHRASE).export_seed()
    shares = {x: parse_share(p.read_text().splitlines()[1]) for x, p in split.shares.items()}
    for xs in itertools.combinations(shares, 3):
        assert combine([shares[x] for x in xs]) == seed


def test_two_shares_recover_nothing(tmp_path: Path, split: SplitKey):
    out = tmp_path / "recovered.key"
    result = recover([split.shares[2], split.shares[4]], out)
    assert_clean_failure(result, RECOVERY_FAILED, "3 shares are needed, got 2")
    assert not out.exists()


def test_two_shares_that_claim_a_threshold_of_two_recover_nothing(tmp_path: Path, split: SplitKey):
    """k is written in each share; lowering it does not let k - 1 shares through (the tag)."""
    forged = []
    for x in (1, 2):
        path = tmp_path / f"forged-{x}.txt"
        path.write_text(
            split.shares[x].read_text().replace("medledger-share-v1:3:", "medledger-share-v1:2:")
        )
        forged.append(path)
    out = tmp_path / "recovered.key"
    assert_clean_failure(recover(forged, out), RECOVERY_FAILED)
    assert not out.exists()


def flip(text: str, index: int) -> str:
    """``text`` with the character at ``index`` changed to another of the same alphabet."""
    old = text[index]
    same_alphabet = ("2", "1") if old.isdigit() else ("b", "a")
    new = same_alphabet[0] if old == same_alphabet[1] else same_alphabet[1]
    return text[:index] + new + text[index + 1 :]


@pytest.mark.parametrize("where", ["x", "y-first", "y-middle", "y-last", "tag-first", "tag-last"])
def test_a_share_with_one_flipped_character_recovers_nothing(
    tmp_path: Path, split: SplitKey, where: str
):
    header, line = split.shares[1].read_text().splitlines()
    _, _, x, y, tag = line.split(":")
    y_at = line.index(y)
    index = {
        "x": line.index(f":{x}:") + 1,
        "y-first": y_at,
        "y-middle": y_at + len(y) // 2,
        "y-last": y_at + len(y) - 1,
        "tag-first": line.rindex(tag),
        "tag-last": len(line) - 1,
    }[where]
    flipped = flip(line, index)
    assert flipped != line
    bad = tmp_path / "bad-share.txt"
    bad.write_text(f"{header}\n{flipped}\n")
    out = tmp_path / "recovered.key"
    result = recover([bad, split.shares[3], split.shares[5]], out)
    assert_clean_failure(result, RECOVERY_FAILED)
    assert not out.exists()


def test_shares_of_two_splits_of_the_same_key_do_not_mix(tmp_path: Path, split: SplitKey):
    """Same secret and tag, other polynomials: interpolation gives garbage, the tag says so."""
    other = split_key(split.key_file, tmp_path / "again")
    out = tmp_path / "recovered.key"
    result = recover([split.shares[1], split.shares[2], other[3]], out)
    assert_clean_failure(result, RECOVERY_FAILED)
    assert not out.exists()


def test_shares_of_two_different_keys_do_not_mix(tmp_path: Path, split: SplitKey):
    other_key = tmp_path / "other.key"
    new_key(other_key)
    other = split_key(other_key, tmp_path / "other")
    out = tmp_path / "recovered.key"
    result = recover([split.shares[1], split.shares[2], other[3]], out)
    assert_clean_failure(result, RECOVERY_FAILED, "different splits")
    assert not out.exists()


def test_the_same_share_twice_does_not_count_twice(tmp_path: Path, split: SplitKey):
    out = tmp_path / "recovered.key"
    result = recover([split.shares[1], split.shares[1], split.shares[2]], out)
    assert_clean_failure(result, RECOVERY_FAILED, "x = 1")
    assert not out.exists()


def test_recover_refuses_a_key_other_than_the_expected_did(tmp_path: Path, split: SplitKey):
    other_did = new_key(tmp_path / "other.key")
    out = tmp_path / "recovered.key"
    result = recover(
        [split.shares[1], split.shares[2], split.shares[3]], out, "--expect-did", other_did
    )
    assert_clean_failure(result, RECOVERY_FAILED, f"not the expected {other_did}")
    assert not out.exists()


def test_recover_rejects_a_malformed_expected_did(tmp_path: Path, split: SplitKey):
    out = tmp_path / "recovered.key"
    result = recover(
        [split.shares[1], split.shares[2], split.shares[3]], out, "--expect-did", "did:web:x"
    )
    assert_clean_failure(result, "--expect-did")
    assert not out.exists()


def test_recover_refuses_to_overwrite_an_existing_file(tmp_path: Path, split: SplitKey):
    out = tmp_path / "recovered.key"
    out.write_bytes(b"precious")
    result = recover([split.shares[1], split.shares[2], split.shares[3]], out)
    assert_clean_failure(result, "exists: refusing to overwrite")
    assert out.read_bytes() == b"precious"


def test_a_share_retyped_with_comments_spaces_and_line_breaks_still_reads(
    tmp_path: Path, split: SplitKey
):
    line = split.shares[4].read_text().splitlines()[1]
    retyped = tmp_path / "from-paper.txt"
    retyped.write_text(
        "# typed in from the paper copy\n\n  " + " ".join([line[:20], line[20:45]]) + "\r\n"
        f"\t{line[45:]}  \n# end\n"
    )
    out = tmp_path / "recovered.key"
    assert_ok(recover([retyped, split.shares[1], split.shares[2]], out, "--expect-did", split.did))
    assert read_key_file(out, PASSPHRASE).did == split.did


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"# only a comment\n", "no share line"),
        (b"", "no share line"),
        (b"\xff\xfe not text", "not a text file"),
        (b"x" * 20_000, "is larger than"),
        (b"medledger-share-v1:3:1:AAAA:0011223344556677", "different splits"),
        (b"not a share at all", "a share is"),
    ],
)
def test_a_file_that_is_not_a_share_recovers_nothing(
    tmp_path: Path, split: SplitKey, content: bytes, message: str
):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    out = tmp_path / "recovered.key"
    result = recover([bad, split.shares[2], split.shares[3]], out)
    assert_clean_failure(result, RECOVERY_FAILED, message)
    assert not out.exists()


def test_a_file_holding_two_shares_is_refused(tmp_path: Path, split: SplitKey):
    both = tmp_path / "both.txt"
    both.write_bytes(split.shares[1].read_bytes() + split.shares[2].read_bytes())
    out = tmp_path / "recovered.key"
    result = recover([both, split.shares[3]], out)
    assert_clean_failure(result, RECOVERY_FAILED, "more than one share")
    assert not out.exists()


def test_a_missing_share_file_is_a_clean_error(tmp_path: Path, split: SplitKey):
    out = tmp_path / "recovered.key"
    result = recover([tmp_path / "nope.txt", split.shares[2], split.shares[3]], out)
    assert_clean_failure(result, "cannot read share file")
    assert not out.exists()
