"""The limit of the ledger's throughput: single-core Ed25519 verifications per second.

Every transaction costs at least one Ed25519 verification (its sender's signature over
``DOMAIN_TX || JCS(body)``), so no node can commit individually signed transactions faster
than one core verifies them. Measured here with ``cryptography`` alone, over the very bytes the
workload signed: the public keys are decoded once beforehand, only ``verify`` is timed. The
verify call holds the GIL, so this is also the limit of one CPython process.

Samples are taken between the phases of a run (``sample(label)``); each phase is judged against
the mean of the samples just before and just after it, so both saw the same machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from benchmarks.timing import Rate
from medledger.core.identity.did_key import public_key_from_did
from medledger.core.ledger.envelope import signed_bytes
from medledger.core.ledger.tx import SignedTransaction


@dataclass(frozen=True, slots=True)
class LimitSample:
    label: str  # "before throughput", ...
    rate: Rate

    def as_json(self) -> dict[str, object]:
        return {"label": self.label, **self.rate.as_json()}


class VerifyLimit:
    """Ed25519 verification rate over pre-decoded keys, signatures and signed bytes."""

    def __init__(self, txs: Sequence[SignedTransaction]) -> None:
        keys: dict[str, Ed25519PublicKey] = {}
        self._triples: list[tuple[Ed25519PublicKey, bytes, bytes]] = []
        for stx in txs:
            sender = stx.tx.sender
            if sender not in keys:
                keys[sender] = Ed25519PublicKey.from_public_bytes(public_key_from_did(sender))
            self._triples.append((keys[sender], stx.signature, signed_bytes(stx.tx)))
        self.message_bytes = sum(len(m) for _, _, m in self._triples) / len(self._triples)
        self.samples: list[LimitSample] = []
        self._verify_all()  # warm up; raises InvalidSignature if the workload is broken

    def _verify_all(self) -> float:
        began = perf_counter()
        for key, signature, message in self._triples:
            key.verify(signature, message)
        return perf_counter() - began

    def sample(self, label: str) -> LimitSample:
        sample = LimitSample(label, Rate(len(self._triples), self._verify_all()))
        self.samples.append(sample)
        return sample

    def around(self, before: LimitSample, after: LimitSample) -> float:
        """The limit a phase between two samples is judged against: their mean rate."""
        return (before.rate.per_s + after.rate.per_s) / 2

    def median(self) -> float:
        return statistics.median(s.rate.per_s for s in self.samples)
