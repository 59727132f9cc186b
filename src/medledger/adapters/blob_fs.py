"""A content-addressed blob store on a local filesystem (``ports.BlobStore``, ADR 0011).

Layout: ``root/<shard>/<cid>``, where ``<shard>`` is the two characters before the CID's last
one (kubo flatfs's ``next-to-last/2``). Every CID of the one accepted form starts
``bafkrei``, so its leading characters would put every blob in one directory; the characters
near the end are digest bits and spread blobs over 1024 directories.

What this module guarantees:

- **No partial blob under a CID name.** A put writes a temp file ``.<cid>.<random>`` in the
  shard directory, fsyncs it, renames it over ``<cid>`` and fsyncs the directory
  (``adapters.files.atomic_write``). A kill -9 leaves either no blob or the whole blob, plus at
  worst a temp file that ``garbage_collect`` removes once it is older than the grace period.
- **Verified on every read.** ``get`` hashes the bytes it read and compares them with the CID
  before returning them; a flipped byte or a truncated file raises ``TamperError``. The bad
  file is left in place for inspection, never served.
- **Bounded.** Puts and reads above ``max_blob_bytes`` raise ``TooLargeError``; a CID is
  parsed strictly before it becomes a path, so a request cannot name a file outside the store.
- **GC with a grace period.** A blob is deleted only if it is unreferenced *and* its file is at
  least ``older_than_s`` old: a blob put for a transaction not yet committed survives. A put of
  bytes already stored refreshes the file's mtime, restarting its grace period.

Puts, deletes and each GC decision hold one lock, so within a process GC cannot delete a blob
between a put's "already there" check and its return. Run GC in the process that puts.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING

from medledger.adapters.files import atomic_write
from medledger.core.cid import cid_for, is_cid, parse_cid, verify_digest
from medledger.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TamperError,
    TooLargeError,
)

DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024
BLOB_MODE = 0o600
DIR_MODE = 0o700
#: ``atomic_write`` names its temp files ``.<target name>.<random>``.
TEMP_PREFIX = "."
_BASE32_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz234567")


def shard_of(cid: str) -> str:
    """The directory a blob lives in: the two characters before the CID's last one."""
    return cid[-3:-1]


class FilesystemBlobStore:
    """``ports.BlobStore`` on a directory tree; see the module docstring for the guarantees."""

    def __init__(self, root: Path, max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        if max_blob_bytes <= 0:
            raise ConfigurationError("max_blob_bytes must be positive")
        self._root = root
        self._root_str = os.fspath(root)  # reads build plain str paths: no Path per read
        self._max = max_blob_bytes
        self._lock = threading.Lock()
        try:
            root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        except OSError as e:
            raise StorageError(f"cannot create the blob store directory: {e.strerror}") from e

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, cid: str) -> Path:
        """Where the blob ``cid`` is stored; ``InvalidInputError`` for a malformed CID."""
        parse_cid(cid)
        return self._root / shard_of(cid) / cid

    # --- the port ---------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        if len(data) > self._max:
            raise TooLargeError(
                f"a blob is at most {self._max} bytes, got {len(data)}", parameter="data"
            )
        cid = cid_for(data)
        path = self.path_of(cid)
        with self._lock:
            if self._holds(path, data):
                _touch(path)  # restart the GC grace period: the caller is about to anchor it
                return cid
            atomic_write(path, data, mode=BLOB_MODE)
        return cid

    def get(self, cid: str) -> bytes:
        digest = parse_cid(cid)  # once: it makes the CID safe as a file name, and is checked
        data = self._read(f"{self._root_str}/{shard_of(cid)}/{cid}", cid)  # POSIX, as O_NOFOLLOW
        try:
            verify_digest(digest, data)
        except TamperError as e:
            raise TamperError(f"stored blob {cid} does not match its CID") from e
        return data

    def delete(self, cid: str) -> bool:
        path = self.path_of(cid)
        with self._lock:
            return _unlink(path)

    def exists(self, cid: str) -> bool:
        path = self.path_of(cid)
        try:
            return stat.S_ISREG(path.lstat().st_mode)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StorageError(f"cannot stat blob {cid}: {e.strerror}") from e

    def iter_cids(self) -> Iterator[str]:
        for shard in self._shard_dirs():
            for entry in _scan(shard):
                if _is_blob_entry(entry, shard.name):
                    yield entry.name

    # --- garbage collection -----------------------------------------------------------------
    def garbage_collect(
        self,
        referenced: Callable[[str], bool] | AbstractSet[str],
        *,
        older_than_s: float,
        now: float,
    ) -> list[str]:
        """Delete every blob that is not ``referenced`` and whose file is at least
        ``older_than_s`` seconds older than ``now``, and every leftover temp file of a crashed
        put of that age. Return what was deleted: blob CIDs, and temp file names (which start
        with ``.``, so they are never CIDs). Anything else in the tree is left alone."""
        if not older_than_s >= 0:
            raise InvalidInputError("older_than_s must be >= 0", parameter="older_than_s")
        is_referenced = referenced if callable(referenced) else referenced.__contains__
        deleted: list[str] = []
        for shard in self._shard_dirs():
            for entry in _scan(shard):
                temp = entry.name.startswith(TEMP_PREFIX)
                if not (_is_regular(entry) if temp else _is_blob_entry(entry, shard.name)):
                    continue
                path = Path(entry.path)
                with self._lock:  # decide and delete with no put in between
                    if (
                        _older_than(path, older_than_s, now)
                        and (temp or not is_referenced(entry.name))
                        and _unlink(path)
                    ):
                        deleted.append(entry.name)
        return deleted

    # --- helpers ----------------------------------------------------------------------------
    def _read(self, path: str, name: str) -> bytes:
        """The bytes of the file ``path`` (blob ``name``), at most ``max_blob_bytes``; a
        symlink is refused. Plain file descriptor reads: no buffered file object per read."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise NotFoundError(f"no blob {name}") from e
        except OSError as e:
            raise StorageError(f"cannot open blob {name}: {e.strerror}") from e
        try:
            size = os.fstat(fd).st_size
            if size > self._max:
                raise TooLargeError(
                    f"stored blob {name} is larger than {self._max} bytes", parameter="cid"
                )
            # Read what fstat saw (+1 to notice growth), not a max-size buffer each time.
            data = _read_up_to(fd, size + 1)
            if len(data) > size:
                data += _read_up_to(fd, self._max + 1 - len(data))
        except OSError as e:
            raise StorageError(f"cannot read blob {name}: {e.strerror}") from e
        finally:
            os.close(fd)
        if len(data) > self._max:  # the file grew after fstat
            raise TooLargeError(
                f"stored blob {name} is larger than {self._max} bytes", parameter="cid"
            )
        return data

    def _holds(self, path: Path, data: bytes) -> bool:
        """Whether ``path`` already holds exactly ``data`` (a damaged copy is rewritten)."""
        try:
            return self._read(os.fspath(path), path.name) == data
        except (NotFoundError, TooLargeError, StorageError):
            return False

    def _shard_dirs(self) -> Iterator[Path]:
        for entry in _scan(self._root):
            if (
                len(entry.name) == 2
                and set(entry.name) <= _BASE32_CHARS
                and entry.is_dir(follow_symlinks=False)
            ):
                yield Path(entry.path)


def _read_up_to(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd``: fewer only at the end of the file (``os.read`` may
    return less than asked for before that)."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory`` by name (empty if it does not exist)."""
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StorageError(f"cannot list {directory.name}: {e.strerror}") from e


def _is_regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _is_blob_entry(entry: os.DirEntry[str], shard: str) -> bool:
    return is_cid(entry.name) and shard_of(entry.name) == shard and _is_regular(entry)


def _older_than(path: Path, older_than_s: float, now: float) -> bool:
    """Whether ``path`` was last modified at least ``older_than_s`` before ``now`` (a file
    that is already gone, or from the future, is not)."""
    try:
        mtime = path.lstat().st_mtime
    except FileNotFoundError:
        return False
    except OSError as e:
        raise StorageError(f"cannot stat {path.name}: {e.strerror}") from e
    return now - mtime >= older_than_s


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError as e:
        raise StorageError(f"cannot touch blob {path.name}: {e.strerror}") from e


def _unlink(path: Path) -> bool:
    """Remove ``path`` and fsync its directory; ``False`` if it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise StorageError(f"cannot delete {path.name}: {e.strerror}") from e
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise StorageError(f"cannot open {directory.name}: {e.strerror}") from e
    try:
        os.fsync(fd)
    except OSError as e:
        raise StorageError(f"cannot fsync {directory.name}: {e.strerror}") from e
    finally:
        os.close(fd)


if TYPE_CHECKING:  # mypy checks here that the adapter has the port's shape
    from medledger.ports import BlobStore

    _PORT: type[BlobStore] = FilesystemBlobStore
