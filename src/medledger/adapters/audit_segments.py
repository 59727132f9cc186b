"""Append-only segment files holding the bytes of stored access events
(``data/audit-events/NNNNNNNN.seg``).

A batch's events (their exact leaf bytes, concatenated) are appended to the current segment
with one write and made durable with ``fdatasync`` BEFORE the batch's row -- which names
segment, offset and length -- is committed in ``audit.db``. That commit is the commit point:
bytes past the last committed batch are the remains of a write that never committed and are
cut off on open (``recover``). Why not in SQLite: every byte there is written twice (WAL,
then the checkpoint) through the page cache; for ~600 bytes per event at 10^5 events/s that
copying was the largest cost left (ADR 0014).

What this module handles: appending, rotating at ``max_bytes``, positional reads, and the
crash repair. Not handled here: what the bytes mean (the store checks each event against its
batch's leaf hash when reading it back); a missing or short segment is a ``TamperError``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Final

from medledger.errors import StorageError, TamperError

SUFFIX: Final = ".seg"
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024


def _name(segment: int) -> str:
    return f"{segment:08d}{SUFFIX}"


class Segments:
    """The segment files of one store; appends from one writer thread, reads from any."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._dir = directory
        self._max_bytes = max_bytes
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the audit segment directory: {e}") from e
        self._lock = threading.Lock()  # guards the append fd and the read fds
        self._append: tuple[int, int] | None = None  # (segment, fd)
        self._readers: dict[int, int] = {}

    def close(self) -> None:
        with self._lock:
            fds = list(self._readers.values())
            if self._append is not None:
                fds.append(self._append[1])
            self._append, self._readers = None, {}
        for fd in fds:
            os.close(fd)

    # --- the crash repair -------------------------------------------------------------------
    def recover(self, committed_end: dict[int, int]) -> None:
        """Cut every segment back to the end of its last committed batch; remove segments no
        committed batch names that come after the last one that does (a crash between
        creating a segment and committing its first batch). ``committed_end``: segment ->
        end offset of its last committed batch."""
        last = max(committed_end, default=0)
        try:
            for path in sorted(self._dir.glob(f"*{SUFFIX}")):
                segment = int(path.stem)
                if segment in committed_end:
                    size = path.stat().st_size
                    if size < committed_end[segment]:
                        raise TamperError(f"audit segment {path.name} is shorter than stored")
                    if size > committed_end[segment]:
                        os.truncate(path, committed_end[segment])
                elif segment > last:
                    path.unlink()
        except (OSError, ValueError) as e:
            raise StorageError(f"audit segments could not be repaired: {e}") from e

    # --- writing ----------------------------------------------------------------------------
    def append(self, data: bytes, *, after: tuple[int, int]) -> tuple[int, int]:
        """Append ``data`` durably; return (segment, offset). ``after`` is where the last
        committed batch ended (segment, end offset): appends continue there, or in the next
        segment once that one is full."""
        segment, end = after
        if end + len(data) > self._max_bytes and end > 0:
            segment, end = segment + 1, 0
        fd = self._append_fd(segment)
        try:
            offset = os.lseek(fd, 0, os.SEEK_END)
            if offset < end:
                raise TamperError(f"audit segment {_name(segment)} is shorter than stored")
            if offset > end:
                os.ftruncate(fd, end)  # bytes of a write whose batch did not commit
                offset = end
            os.pwrite(fd, data, offset)
            os.fdatasync(fd)
        except OSError as e:
            raise StorageError(f"audit segment write failed: {e}") from e
        return segment, offset

    def _append_fd(self, segment: int) -> int:
        with self._lock:
            if self._append is not None and self._append[0] == segment:
                return self._append[1]
            if self._append is not None:
                os.close(self._append[1])
                self._append = None
            path = self._dir / _name(segment)
            try:
                created = not path.exists()
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if created:  # the new name must survive a crash too
                    directory = os.open(self._dir, os.O_RDONLY)
                    try:
                        os.fsync(directory)
                    finally:
                        os.close(directory)
            except OSError as e:
                raise StorageError(f"cannot open audit segment {path.name}: {e}") from e
            self._append = (segment, fd)
            return fd

    # --- reading ----------------------------------------------------------------------------
    def read(self, segment: int, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``; ``TamperError`` if they are not there."""
        fd = self._read_fd(segment)
        try:
            data = os.pread(fd, length, offset)
        except OSError as e:
            raise StorageError(f"audit segment read failed: {e}") from e
        if len(data) != length:
            raise TamperError(f"audit segment {_name(segment)} is shorter than stored")
        return data

    def _read_fd(self, segment: int) -> int:
        with self._lock:
            fd = self._readers.get(segment)
            if fd is None:
                try:
                    fd = os.open(self._dir / _name(segment), os.O_RDONLY)
                except FileNotFoundError as e:
                    raise TamperError(f"audit segment {_name(segment)} is missing") from e
                except OSError as e:
                    raise StorageError(f"cannot open audit segment: {e}") from e
                self._readers[segment] = fd
            return fd
