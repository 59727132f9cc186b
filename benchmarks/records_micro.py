"""Where the time goes, in hot loops: the parts of a blob get and of a key unwrap or wrap.

Diagnostics, in no ratio or target. Each figure is a median over 5 loops of ``n`` calls on data
already in memory or in the page cache:

- blob reads of one record-sized file: as ``FilesystemBlobStore._read`` does it (``os.open``,
  ``fstat``, ``read(max_blob_bytes + 1)``: a 16 MiB buffer per read) and with the buffer sized
  from ``fstat`` (``read(size + 1)``), the same syscalls otherwise; ``parse_cid`` (done twice
  per get: ``path_of`` and ``verify_cid``). What the 16 MiB buffer costs depends on the
  allocator's history (glibc's dynamic mmap threshold), so the run measures the reads in its own
  process and in a fresh one (``python -m benchmarks.records_micro DIR SIZE...``, JSON out);
- HPKE (RFC 9180, ``cryptography``'s ``hpke.Suite``) as ``key_wrap`` uses it: parsing the
  node's raw private key (``X25519PrivateKey.from_private_bytes``, which derives the public key:
  one scalar multiplication, on every ``unwrap_key``), ``Suite.decrypt`` and ``Suite.encrypt``;
- a symmetric alternative for the node's own wrap: AES-256-GCM of the 32-byte data key under a
  node key-encryption key, the ``WrapInfo`` bytes as AAD.

Not here: access events. The audit service group-commits them (a batch per
``batch_interval_ms``); its ingest is measured by ``audit_bench``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medledger.adapters.blob_fs import DEFAULT_MAX_BLOB_BYTES
from medledger.core.cid import cid_for, parse_cid
from medledger.core.crypto.key_wrap import WrapInfo, wrap_key, x25519_from_seed


def _us(call: Callable[[], object], n: int, repeats: int = 5) -> float:
    return statistics.median(timeit.repeat(call, number=n, repeat=repeats)) / n * 1e6


def _read_max(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        os.fstat(f.fileno())
        return f.read(DEFAULT_MAX_BLOB_BYTES + 1)


def _read_sized(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return f.read(min(size, DEFAULT_MAX_BLOB_BYTES) + 1)


def blob_reads(work: Path, size: int, n: int) -> dict[str, float]:
    """Microseconds per read of one ``size``-byte file, both ways, and per ``parse_cid``."""
    work.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path = work / f"read-{size}"
    path.write_bytes(data)
    cid = cid_for(data)
    out = {
        "read(max_blob_bytes + 1), as FilesystemBlobStore._read": _us(lambda: _read_max(path), n),
        "read(size + 1), the buffer sized from fstat": _us(lambda: _read_sized(path), n),
        "parse_cid (twice per get)": _us(lambda: parse_cid(cid), n),
    }
    path.unlink()
    return out


def key_wrapping(n: int) -> dict[str, float]:
    """Microseconds per call of the parts of ``unwrap_key`` / ``wrap_key``, and the symmetric
    alternative for the node's own wrap."""
    pair = x25519_from_seed(os.urandom(32))
    info = WrapInfo("bench-record", 1, "did:key:z6MkBench", "custodian")
    info_bytes, data_key = info.to_bytes(), os.urandom(32)
    private = X25519PrivateKey.from_private_bytes(pair.private_key)
    public = X25519PublicKey.from_public_bytes(pair.public_key)
    sealed = wrap_key(data_key, pair.public_key, info)[1:]
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    kek, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    wrapped = kek.encrypt(nonce, data_key, info_bytes)
    return {
        "X25519PrivateKey.from_private_bytes (every unwrap_key)": _us(
            lambda: X25519PrivateKey.from_private_bytes(pair.private_key), n
        ),
        "hpke Suite.decrypt (Decap + key schedule + open)": _us(
            lambda: suite.decrypt(sealed, private, info=info_bytes), n
        ),
        "hpke Suite.encrypt (ephemeral key + Encap + seal)": _us(
            lambda: suite.encrypt(data_key, public, info=info_bytes), n
        ),
        "WrapInfo.to_bytes (JCS)": _us(info.to_bytes, n),
        "AES-256-GCM unwrap of the data key under a node KEK (alternative)": _us(
            lambda: kek.decrypt(nonce, wrapped, info_bytes), n
        ),
    }


def main() -> None:
    """``python -m benchmarks.records_micro DIR SIZE...``: blob reads in a fresh process."""
    work, sizes = Path(sys.argv[1]), [int(a) for a in sys.argv[2:]]
    print(json.dumps({size: blob_reads(work, size, 300) for size in sizes}))


if __name__ == "__main__":
    main()
