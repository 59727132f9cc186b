"""Benchmarks of the medledger transparency log, run as ``python -m benchmarks`` (``make bench``).

One run measures, side by side on the same synthetic audit entries:

- ``bare``: the hashing floor -- RFC 9162 leaf and node hashes with ``hashlib`` in memory;
- ``ours``: durable batched appends into ``SqliteLog``, and proofs served from it;
- ``peer_pymerkle``: the same appends into ``pymerkle.SqliteTree`` (and ``InmemoryTree``);
- ``peer_postgres``: the same appends into an append-only PostgreSQL table (own cluster).

``suite`` drives the phases, ``report`` writes ``results/log.json`` and ``results/log.md``.
Not handled here: asserting targets -- the report says met / not met, it never fails the run.
"""
