"""Proofs per second served from the store, and served + verified, at one tree size.

Served = ``TransparencyLog.inclusion_proof`` / ``consistency_proof``: plan the nodes, read them
from the store (tiles: LRU cache or SQLite), assemble. Verified = the client's RFC 9162 check
on top (``verify_inclusion`` / ``verify_consistency``). Indices and sizes are uniform random,
drawn afresh for each timed loop after an untimed warm-up loop (so neither loop gets a cache the
other warmed); leaf hashes and old roots a client already holds are prepared before the clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.entries import audit_entry
from benchmarks.timing import Rate, timed_calls
from medledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from medledger.services.log import TransparencyLog

Advance = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class ProofRates:
    inclusion_served: Rate
    inclusion_verified: Rate
    consistency_served: Rate
    consistency_verified: Rate

    def as_json(self) -> dict[str, dict[str, float]]:
        return {
            "inclusion_served": self.inclusion_served.as_json(),
            "inclusion_served_and_verified": self.inclusion_verified.as_json(),
            "consistency_served": self.consistency_served.as_json(),
            "consistency_served_and_verified": self.consistency_verified.as_json(),
        }


def measure_inclusion(
    service: TransparencyLog, size: int, count: int, rng: random.Random, advance: Advance
) -> tuple[Rate, Rate]:
    """(served, served + verified) inclusion proofs at ``size`` for random indices."""
    root = service.root_at(size)
    warm, serve, check = ([rng.randrange(size) for _ in range(count)] for _ in range(3))
    leaves = {i: leaf_hash(audit_entry(i)) for i in check}

    def serve_and_verify(i: int) -> None:
        verify_inclusion(leaves[i], i, size, service.inclusion_proof(i, size), root)

    timed_calls(warm, lambda i: service.inclusion_proof(i, size), advance)
    served = timed_calls(serve, lambda i: service.inclusion_proof(i, size), advance)
    verified = timed_calls(check, serve_and_verify, advance)
    return served, verified


def measure_consistency(
    service: TransparencyLog, size: int, count: int, rng: random.Random, advance: Advance
) -> tuple[Rate, Rate]:
    """(served, served + verified) consistency proofs from a random older size to ``size``."""
    root = service.root_at(size)
    warm, serve, check = ([rng.randrange(1, size) for _ in range(count)] for _ in range(3))
    old_roots = {s: service.root_at(s) for s in check}

    def serve_and_verify(old: int) -> None:
        proof = service.consistency_proof(old, size)
        verify_consistency(old, size, proof, old_roots[old], root)

    timed_calls(warm, lambda old: service.consistency_proof(old, size), advance)
    served = timed_calls(serve, lambda old: service.consistency_proof(old, size), advance)
    verified = timed_calls(check, serve_and_verify, advance)
    return served, verified


def measure_proofs(
    service: TransparencyLog,
    size: int,
    counts: tuple[int, int],
    rng: random.Random,
    advance: Advance,
) -> ProofRates:
    """Inclusion then consistency proofs: ``counts`` = (inclusion, consistency) samples."""
    inc_served, inc_verified = measure_inclusion(service, size, counts[0], rng, advance)
    con_served, con_verified = measure_consistency(service, size, counts[1], rng, advance)
    return ProofRates(inc_served, inc_verified, con_served, con_verified)
