"""The filesystem blob store (medledger.adapters.blob_fs) on real files.

Checked: round trip and idempotence; a corrupted, truncated or swapped file is never returned
(``TamperError``); missing is ``NotFoundError``; sizes are bounded on put (nothing written) and
on read; files are 0600 in 0700 directories; a malformed CID never becomes a path; GC deletes
only unreferenced blobs past the grace period and stale temp files of crashed puts; and a
writer SIGKILLed in the middle of puts never leaves a partial blob under a CID name.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from medledger.adapters.blob_fs import DEFAULT_MAX_BLOB_BYTES, FilesystemBlobStore, shard_of
from medledger.core.cid import cid_for, is_cid, verify_cid
from medledger.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TamperError,
    TooLargeError,
)
from medledger.ports import BlobStore

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs", max_blob_bytes=1024 * 1024)


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def temp_files(root: Path) -> list[Path]:
    return [p for p in all_files(root) if p.name.startswith(".")]


def set_age(path: Path, now: float, age_s: float) -> None:
    os.utime(path, (now - age_s, now - age_s))


# --- round trip ------------------------------------------------------------------------------
def test_is_a_blob_store(store: FilesystemBlobStore) -> None:
    port: BlobStore = store
    assert port.put(b"x") == cid_for(b"x")


@pytest.mark.parametrize("size", [0, 1, 4096, 1024 * 1024])
def test_put_get_round_trip(store: FilesystemBlobStore, size: int) -> None:
    data = random.Random(size).randbytes(size)
    cid = store.put(data)
    assert cid == cid_for(data)
    assert store.get(cid) == data
    assert store.exists(cid)
    path = store.root / shard_of(cid) / cid
    assert path.read_bytes() == data
    assert store.path_of(cid) == path
    assert list(store.iter_cids()) == [cid]
    assert temp_files(store.root) == []


def test_blobs_spread_over_shard_directories(store: FilesystemBlobStore) -> None:
    cids = [store.put(b"blob %d" % i) for i in range(64)]
    shards = {p.name for p in store.root.iterdir()}
    assert len(shards) > 32  # not all in one "af" directory
    assert shards == {shard_of(c) for c in cids}
    assert all(len(s) == 2 for s in shards)
    assert sorted(store.iter_cids()) == sorted(cids)


def test_put_is_idempotent(store: FilesystemBlobStore) -> None:
    first = store.put(b"same bytes")
    second = store.put(b"same bytes")
    assert first == second
    assert all_files(store.root) == [store.path_of(first)]
    assert list(store.iter_cids()) == [first]


def test_put_again_restarts_the_gc_grace_period(store: FilesystemBlobStore) -> None:
    """A caller that re-puts an old unreferenced blob is about to anchor it: GC must not
    delete it in between."""
    cid = store.put(b"re-used attachment")
    now = time.time()
    set_age(store.path_of(cid), now, 2 * HOUR)
    assert store.put(b"re-used attachment") == cid
    assert store.garbage_collect(set(), older_than_s=HOUR, now=time.time()) == []
    assert store.exists(cid)


def test_put_repairs_a_damaged_copy(store: FilesystemBlobStore) -> None:
    cid = store.put(b"original content")
    store.path_of(cid).write_bytes(b"original contenT")
    assert store.put(b"original content") == cid
    assert store.get(cid) == b"original content"
    assert stat.S_IMODE(store.path_of(cid).stat().st_mode) == 0o600


def test_mode_is_owner_only(store: FilesystemBlobStore) -> None:
    cid = store.put(b"clinical ciphertext")
    path = store.path_of(cid)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


# --- tampering -------------------------------------------------------------------------------
def _flip_byte(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("index", [0, 500, -1])
def test_flipped_byte_on_disk_is_tamper(store: FilesystemBlobStore, index: int) -> None:
    cid = store.put(bytes(range(256)) * 4)
    _flip_byte(store.path_of(cid), index)
    with pytest.raises(TamperError):
        store.get(cid)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-1], id="truncated by one byte"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated to half"),
        pytest.param(lambda data: b"", id="emptied"),
        pytest.param(lambda data: data + b"\x00", id="byte appended"),
        pytest.param(lambda data: b"another blob", id="swapped for another blob"),
    ],
)
def test_damaged_file_is_tamper(
    store: FilesystemBlobStore, damage: Callable[[bytes], bytes]
) -> None:
    data = b"encrypted FHIR bundle" * 50
    cid = store.put(data)
    path = store.path_of(cid)
    path.write_bytes(damage(data))
    with pytest.raises(TamperError):
        store.get(cid)
    assert path.exists(), "the bad file is kept for inspection"


def test_blob_moved_under_another_cid_is_tamper(store: FilesystemBlobStore) -> None:
    a, b = store.put(b"record A"), store.put(b"record B")
    store.path_of(a).write_bytes(store.path_of(b).read_bytes())
    with pytest.raises(TamperError):
        store.get(a)


def test_symlink_under_a_cid_name_is_not_followed(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    data = b"outside the store"
    target = tmp_path / "outside"
    target.write_bytes(data)
    path = store.path_of(cid_for(data))
    path.parent.mkdir(mode=0o700)
    path.symlink_to(target)
    with pytest.raises(StorageError):
        store.get(cid_for(data))
    assert list(store.iter_cids()) == []


# --- missing, malformed, too large -----------------------------------------------------------
def test_missing_blob_is_not_found(store: FilesystemBlobStore) -> None:
    cid = cid_for(b"never stored")
    with pytest.raises(NotFoundError):
        store.get(cid)
    assert not store.exists(cid)
    assert store.delete(cid) is False


@pytest.mark.parametrize(
    "cid",
    [
        "../../etc/passwd",
        "b" + "../" * 19 + "a",
        cid_for(b"x").upper(),
        "QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4",
        "",
    ],
)
def test_malformed_cid_never_becomes_a_path(store: FilesystemBlobStore, cid: str) -> None:
    with pytest.raises(InvalidInputError):
        store.get(cid)
    with pytest.raises(InvalidInputError):
        store.exists(cid)
    with pytest.raises(InvalidInputError):
        store.delete(cid)


def test_oversize_put_is_refused_and_writes_nothing(store: FilesystemBlobStore) -> None:
    with pytest.raises(TooLargeError) as info:
        store.put(b"\x00" * (1024 * 1024 + 1))
    assert info.value.parameter == "data"
    assert all_files(store.root) == []
    assert list(store.root.iterdir()) == []
    store.put(b"\x00" * (1024 * 1024))  # exactly at the limit is fine


def test_oversize_file_on_read_is_refused(tmp_path: Path) -> None:
    big = FilesystemBlobStore(tmp_path / "blobs", max_blob_bytes=2048)
    cid = big.put(b"\x01" * 2048)
    small = FilesystemBlobStore(tmp_path / "blobs", max_blob_bytes=1024)
    with pytest.raises(TooLargeError):
        small.get(cid)


def test_short_reads_from_the_os_are_completed(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.read`` may return fewer bytes than asked for: a read goes on to the end."""
    data = os.urandom(5000)
    cid = store.put(data)
    real = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real(fd, min(n, 7)))
    assert store.get(cid) == data


def test_a_file_grown_after_its_size_was_read_is_refused_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = FilesystemBlobStore(tmp_path / "blobs", max_blob_bytes=1024)
    data = b"\x02" * 1024
    cid = small.put(data)
    path = small.path_of(cid)
    with path.open("ab") as f:  # the file grows between fstat and read
        f.write(b"\x02")
    real = os.fstat
    monkeypatch.setattr(
        os, "fstat", lambda fd: os.stat_result((*real(fd)[:6], 1024, *real(fd)[7:]))
    )
    with pytest.raises(TooLargeError):
        small.get(cid)


def test_limits_are_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        FilesystemBlobStore(tmp_path / "blobs", max_blob_bytes=0)
    assert DEFAULT_MAX_BLOB_BYTES == 16 * 1024 * 1024


# --- delete and listing ----------------------------------------------------------------------
def test_delete(store: FilesystemBlobStore) -> None:
    cid = store.put(b"to be erased")
    assert store.delete(cid) is True
    assert not store.exists(cid)
    with pytest.raises(NotFoundError):
        store.get(cid)
    assert store.delete(cid) is False
    assert all_files(store.root) == []


def test_iter_cids_lists_only_blobs(store: FilesystemBlobStore) -> None:
    cids = {store.put(b"one"), store.put(b"two")}
    stray = cid_for(b"three")
    shard = store.root / shard_of(stray)
    shard.mkdir(mode=0o700, exist_ok=True)
    (shard / f".{stray}.abc123").write_bytes(b"thr")  # a crashed put's temp file
    (shard / "README").write_text("not a blob")
    wrong_shard = store.root / ("aa" if shard_of(stray) != "aa" else "bb")
    wrong_shard.mkdir(mode=0o700, exist_ok=True)
    (wrong_shard / stray).write_bytes(b"three")  # a CID, but not where the store puts it
    (store.root / "notes.txt").write_text("stray file at the top")
    assert set(store.iter_cids()) == cids


# --- garbage collection ----------------------------------------------------------------------
def test_gc_deletes_only_old_unreferenced_blobs(store: FilesystemBlobStore) -> None:
    now = 1_900_000_000.0
    old_kept = store.put(b"old, anchored")
    old_dropped = store.put(b"old, never anchored")
    young = store.put(b"just put, anchor not committed yet")
    set_age(store.path_of(old_kept), now, 2 * HOUR)
    set_age(store.path_of(old_dropped), now, 2 * HOUR)
    set_age(store.path_of(young), now, 60.0)

    deleted = store.garbage_collect({old_kept}, older_than_s=HOUR, now=now)

    assert deleted == [old_dropped]
    assert set(store.iter_cids()) == {old_kept, young}
    with pytest.raises(NotFoundError):
        store.get(old_dropped)


def test_gc_accepts_a_predicate(store: FilesystemBlobStore) -> None:
    now = 1_900_000_000.0
    cids = [store.put(b"blob %d" % i) for i in range(6)]
    for cid in cids:
        set_age(store.path_of(cid), now, 2 * HOUR)
    keep = set(cids[:3])
    asked: list[str] = []

    def referenced(cid: str) -> bool:
        asked.append(cid)
        return cid in keep

    deleted = store.garbage_collect(referenced, older_than_s=HOUR, now=now)
    assert sorted(deleted) == sorted(cids[3:])
    assert sorted(asked) == sorted(cids)
    assert set(store.iter_cids()) == keep


def test_gc_grace_period_boundary(store: FilesystemBlobStore) -> None:
    now = 1_900_000_000.0
    at = store.put(b"exactly at the grace period")
    under = store.put(b"one second short")
    future = store.put(b"mtime in the future (clock skew)")
    set_age(store.path_of(at), now, HOUR)
    set_age(store.path_of(under), now, HOUR - 1)
    set_age(store.path_of(future), now, -HOUR)
    assert store.garbage_collect(set(), older_than_s=HOUR, now=now) == [at]


def test_gc_removes_stale_temp_files_of_crashed_puts(store: FilesystemBlobStore) -> None:
    now = 1_900_000_000.0
    kept = store.put(b"anchored")
    shard = store.path_of(kept).parent
    stale = shard / f".{kept}.k1ll3d"
    fresh = shard / f".{kept}.1nfl1ght"
    stale.write_bytes(b"anch")
    fresh.write_bytes(b"an")
    other = shard / "README"
    other.write_text("not ours")
    set_age(stale, now, 2 * HOUR)
    set_age(fresh, now, 10.0)
    set_age(other, now, 2 * HOUR)
    set_age(store.path_of(kept), now, 2 * HOUR)

    deleted = store.garbage_collect({kept}, older_than_s=HOUR, now=now)

    assert deleted == [stale.name]
    assert not any(is_cid(name) for name in deleted)
    assert not stale.exists()
    assert fresh.exists(), "a put in flight in another process keeps its temp file"
    assert other.exists(), "GC leaves files it does not own alone"
    assert store.get(kept) == b"anchored"


@pytest.mark.parametrize("older_than_s", [-1.0, float("nan")])
def test_gc_rejects_a_bad_grace_period(store: FilesystemBlobStore, older_than_s: float) -> None:
    with pytest.raises(InvalidInputError):
        store.garbage_collect(set(), older_than_s=older_than_s, now=time.time())


def test_gc_of_an_empty_store(store: FilesystemBlobStore) -> None:
    assert store.garbage_collect(set(), older_than_s=0, now=time.time()) == []


# --- kill -9 during puts ---------------------------------------------------------------------
# The writer puts 0.5-4 MiB blobs in a loop and prints "PUT <cid>" after each put returned.
WRITER = """
import os, sys
from pathlib import Path
from medledger.adapters.blob_fs import FilesystemBlobStore

store = FilesystemBlobStore(Path(sys.argv[1]), max_blob_bytes=8 << 20)
seed = int(sys.argv[2])
chunk = os.urandom(64 << 10)
print("START", flush=True)
n = 0
while True:
    n += 1
    size = (512 << 10) + (n * 7919 + seed) % (7 << 19)
    header = b"%d:%d:" % (seed, n)
    data = header + (chunk * (size // len(chunk) + 1))[: size - len(header)]
    print("PUT", store.put(data), flush=True)
"""
KILL_CYCLES = 12
KILL_SEED = 6962


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for_a_temp_file(root: Path, writer: subprocess.Popen[str]) -> None:
    """Poll until a put is in flight (its temp file exists), so the kill lands inside it; give
    up after 5 s (a store that writes in place has no temp file: kill it anyway)."""
    deadline = time.monotonic() + 5
    while not temp_files(root) and time.monotonic() < deadline:
        assert writer.poll() is None, "the writer died before being killed"


def run_writer_and_kill(root: Path, seed: int, delay_s: float | None) -> list[str]:
    """Start the writer, SIGKILL it ``delay_s`` after it said START (``None``: as soon as a
    put's temp file appears); return the CIDs whose put it acknowledged."""
    lines: queue.Queue[str | None] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        reader = threading.Thread(target=_pump, args=(writer.stdout, lines), daemon=True)
        reader.start()
        try:
            first = lines.get(timeout=30)
            assert first == "START\n", f"the writer did not start: {first!r}"
            if delay_s is None:
                _wait_for_a_temp_file(root, writer)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    writer.wait(timeout=delay_s)  # the one deliberate pause: when to kill
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            reader.join(timeout=30)
        stderr = writer.stderr.read() if writer.stderr else ""
    assert writer.returncode == -signal.SIGKILL, f"the writer died by itself:\n{stderr}"
    acked: list[str] = []
    while (line := lines.get_nowait()) is not None:
        if line.endswith("\n"):  # a line cut by the kill was never acknowledged
            word, cid = line.split()
            assert word == "PUT"
            acked.append(cid)
    return acked


def test_kill_9_during_puts_never_leaves_a_partial_blob(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FilesystemBlobStore(root, max_blob_bytes=8 << 20)
    rng = random.Random(KILL_SEED)
    temp_files_seen = 0
    for cycle in range(KILL_CYCLES):
        seed = rng.randrange(2**32)
        # Half the kills land inside a put (a temp file exists), half at a random moment.
        delay_s = None if cycle % 2 == 0 else rng.uniform(0.0, 0.25)
        acked = run_writer_and_kill(root, seed, delay_s)
        when = "inside a put" if delay_s is None else f"after {delay_s:.3f} s"
        context = f"cycle {cycle} (writer seed {seed}, killed {when})"

        # 1. Every acknowledged put is there, whole.
        for cid in acked:
            assert store.get(cid), context
        # 2. Every file under a CID name -- acknowledged or not -- is the whole blob.
        for path in all_files(root):
            if is_cid(path.name):
                verify_cid(path.name, path.read_bytes())
                assert path.parent.name == shard_of(path.name), context
            else:
                assert path.name.startswith(".bafkrei"), f"{context}: {path}"
        temp_files_seen += len(temp_files(root))
        print(f"{context}: {len(acked)} acknowledged, {len(temp_files(root))} temp files")
        # 3. GC with no references and no grace clears everything, temp files included.
        store.garbage_collect(set(), older_than_s=0, now=time.time() + 1)
        assert all_files(root) == [], context
        # 4. The store still works.
        assert store.get(store.put(b"after cycle %d" % cycle)) == b"after cycle %d" % cycle
    assert temp_files_seen > 0, "no kill landed inside a put: the test checked nothing"
