"""Atomic, owner-only file writes: a file is either wholly the old one or wholly the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from medledger.errors import StorageError


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` via a temp file, fsync, rename and directory fsync."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise StorageError(f"cannot write {path.name}: {e.strerror}") from e


def read_owner_only(path: Path, *, max_bytes: int = 64 * 1024) -> bytes:
    """Read a secret file, refusing one that others can read or that is implausibly large."""
    try:
        st = path.stat()
    except OSError as e:
        raise StorageError(f"cannot read {path.name}: {e.strerror}") from e
    if st.st_mode & 0o077:
        raise StorageError(f"{path.name} is readable by others (mode {st.st_mode & 0o777:o})")
    if st.st_size > max_bytes:
        raise StorageError(f"{path.name} is larger than {max_bytes} bytes")
    return path.read_bytes()
