"""What one ledger run measures: transaction counts, phase lengths, the genesis block limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """The knobs of one ledger run (quick vs full). Counts are individually signed transactions."""

    throughput_txs: int  # (b) pushed through the in-process node as fast as intake takes them
    latency_seconds: float  # (c) open-loop submission at half the measured maximum
    http_txs: int  # (d) the same workload over HTTP to a served node
    profile_txs: int  # sequential intake/build split and cProfile (twice this many signed)
    verify_sample: int  # (a) signatures per sample of the Ed25519 limit
    http_clients: int = 4
    block_max_txs: int = 500  # the genesis default
    block_interval_ms: int = 100
    organizations: int = 8  # registered by the genesis authority before the clock starts
    practitioners_per_org: int = 8
    pool_patients_per_org: int = 32  # registered before the clock starts; anchors name them
    # The mix of the timed workload, in parts per 100 (the rest is access.batch).
    patient_registrations: int = 20
    record_anchors: int = 60
    ttl_s: int = 3_600  # pre-signed transactions must not expire during the run
    seed: int = 8032

    def __post_init__(self) -> None:
        if not 0 <= self.patient_registrations + self.record_anchors <= 100:
            raise ValueError("the mix is in parts per 100")
        if min(self.throughput_txs, self.http_txs, self.profile_txs, self.verify_sample) <= 0:
            raise ValueError("every phase needs transactions")


FULL = LedgerConfig(
    throughput_txs=20_000,
    latency_seconds=10.0,
    http_txs=10_000,
    profile_txs=3_000,
    verify_sample=3_000,
)
QUICK = LedgerConfig(
    throughput_txs=3_000,
    latency_seconds=3.0,
    http_txs=1_500,
    profile_txs=500,
    verify_sample=1_000,
)
