"""Every size an untrusted input controls, and the node's tunables, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on untrusted input. Anything larger is refused with ``TooLargeError``."""

    # A log entry travels in C2SP entry bundles as a big-endian uint16 length + bytes.
    max_entry_bytes: int = 65_535
    # Entries accepted in one append batch.
    max_batch_entries: int = 10_000
    # A receipt or checkpoint file handed to a verifier.
    # A receipt carries its entry (base64 in the extra line) plus proof and checkpoint.
    max_receipt_bytes: int = 128 * 1024
    max_checkpoint_bytes: int = 16 * 1024
    # Signature lines in a signed note (C2SP signed-note recommends verifiers cap this).
    max_note_signatures: int = 16
    # Inclusion/consistency proofs: a tree of 2**64 leaves needs at most 64 + 1 hashes.
    max_proof_hashes: int = 65

    def __post_init__(self) -> None:
        if not 0 < self.max_entry_bytes <= 65_535:
            raise ConfigurationError("max_entry_bytes must be in 1..65535 (tlog-tiles bundles)")
        for name in ("max_batch_entries", "max_receipt_bytes", "max_checkpoint_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """Bearer tokens and client assertions (ADR 0017): sizes an untrusted caller controls, and
    the lifetimes and clock skew the token endpoint and the FHIR API accept."""

    # A compact JWS (a client assertion or an access token); ours are ~600 bytes.
    max_jws_bytes: int = 8 * 1024
    # The form body of POST /auth/token: an assertion, a scope string and a few parameters.
    max_token_request_bytes: int = 16 * 1024
    # A client assertion expires at most this long after ``now`` (SMART Backend Services).
    max_assertion_lifetime_s: int = 300
    # Access tokens the node issues live this long, and it accepts none that live longer.
    access_token_lifetime_s: int = 900
    max_access_token_lifetime_s: int = 3600
    # Clocks of clients and nodes may disagree by this much.
    clock_skew_s: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.access_token_lifetime_s <= self.max_access_token_lifetime_s <= 3600:
            raise ConfigurationError("access token lifetimes must be in 1..3600 s, in order")
        if not 0 < self.max_assertion_lifetime_s <= 300 or not 0 <= self.clock_skew_s <= 300:
            raise ConfigurationError("assertion lifetime must be in 1..300 s, clock skew 0..300 s")
        for name in ("max_jws_bytes", "max_token_request_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The transparency log's tunables."""

    origin: str = "medledger.example/log"
    # Sign a new checkpoint at least this often while entries arrive.
    checkpoint_interval_s: float = 1.0
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or self.origin != self.origin.strip():
            raise ConfigurationError("origin must be a single non-empty line")
        if not 0.01 <= self.checkpoint_interval_s <= 3600:
            raise ConfigurationError("checkpoint_interval_s must be in 0.01..3600")
