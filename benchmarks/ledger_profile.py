"""Where a transaction's time goes: intake vs block building, and the functions inside them.

On a node of its own (a fresh home; the block builder thread NOT started, so everything runs on
this thread, one part after the other):

1. the clean split, no profiler (``ledger_split``): intake of N transactions, then building
   them into blocks, part by part;
2. the intake's pure steps over the same transactions: ``decode_transaction``,
   ``verify_transaction_signature`` and the bare Ed25519 verify inside it;
3. N more transactions under cProfile, one profile for intake and one for building: the
   functions with the most own time, and the cumulative time of the named steps.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter

from benchmarks.ledger_limit import VerifyLimit
from benchmarks.ledger_split import Split, build, intake, split
from medledger.bootstrap import Node
from medledger.core.ledger.envelope import (
    TxLimits,
    decode_transaction,
    verify_transaction_signature,
)
from medledger.core.ledger.tx import SignedTransaction

TOP = 15
#: The named steps whose cumulative time is reported: (file name, function) -> label.
INTAKE_STEPS = {
    ("envelope.py", "decode_transaction"): "decode_transaction (parse, schema, canonical form)",
    ("envelope.py", "check_intake"): "check_intake (incl. the signature)",
    ("envelope.py", "verify_transaction_signature"): "verify_transaction_signature",
    ("envelope.py", "_verify_ed25519"): "_verify_ed25519 (key + Ed25519 verify)",
    ("envelope.py", "signed_bytes"): "signed_bytes (JCS of the body)",
    ("sqlite_ledger.py", "tx"): "SqliteLedger.tx (replay check: tx id)",
    ("sqlite_ledger.py", "state_get"): "SqliteLedger.state_get (replay check: nonce)",
    ("ordering.py", "submit"): "SoloOrdering.submit",
}
BUILD_STEPS = {
    ("ledger.py", "_take"): "_take (pending lookup)",
    ("ledger.py", "_drop_duplicates"): "_drop_duplicates (SqliteLedger.tx per tx)",
    ("runtime.py", "apply_block"): "Runtime.apply_block (contracts)",
    ("sqlite_state.py", "get"): "SqliteState.get (state reads)",
    ("sqlite_state.py", "stage"): "SqliteState.stage (sparse Merkle update)",
    ("block.py", "log_entry"): "log_entry (per-tx log entries)",
    ("block.py", "rfc9162_root"): "rfc9162_root (tx and results roots)",
    ("log.py", "preview"): "TransparencyLog.preview",
    ("sqlite_ledger.py", "commit_block"): "SqliteLedger.commit_block (incl. write_staged)",
    ("sqlite_state.py", "write_staged"): "SqliteState.write_staged",
    ("log.py", "append"): "TransparencyLog.append",
    ("canonical.py", "canonical"): "canonical (all JCS encodings)",
}


@dataclass(frozen=True, slots=True)
class FunctionCost:
    function: str
    calls: int
    own_us_per_tx: float
    cumulative_us_per_tx: float

    def as_json(self) -> dict[str, object]:
        return {
            "function": self.function,
            "calls": self.calls,
            "own_us_per_tx": round(self.own_us_per_tx, 1),
            "cumulative_us_per_tx": round(self.cumulative_us_per_tx, 1),
        }


@dataclass(frozen=True, slots=True)
class Profiled:
    """One part (intake or build) under cProfile, per transaction."""

    total_us_per_tx: float  # the profiler's total: inflated by its own overhead
    top: list[FunctionCost]  # by own time
    steps: dict[str, FunctionCost]  # label -> cumulative

    def as_json(self) -> dict[str, object]:
        return {
            "total_us_per_tx": round(self.total_us_per_tx, 1),
            "top_by_own_time": [f.as_json() for f in self.top],
            "steps": {k: v.as_json() for k, v in self.steps.items()},
        }


@dataclass(slots=True)
class ProfileRun:
    fresh: Split  # step 1 on a fresh home (setup only)
    decode_us: float  # step 2, per transaction
    verify_tx_signature_us: float
    ed25519_verify_us: float
    intake: Profiled  # step 3
    build: Profiled
    grown: Split | None = None  # step 1 again on a copy of the home (b) and (c) filled

    def as_json(self) -> dict[str, object]:
        return {
            "sequential_fresh": self.fresh.as_json(),
            "sequential_grown": None if self.grown is None else self.grown.as_json(),
            "intake_steps_us_per_tx": {
                "decode_transaction": round(self.decode_us, 1),
                "verify_transaction_signature": round(self.verify_tx_signature_us, 1),
                "ed25519_verify": round(self.ed25519_verify_us, 1),
            },
            "cprofile_intake": self.intake.as_json(),
            "cprofile_build": self.build.as_json(),
        }


def _timed_us(n: int, part: Callable[[], object]) -> float:
    began = perf_counter()
    part()
    return (perf_counter() - began) / n * 1e6


def profile(
    node: Node, timed: Sequence[SignedTransaction], profiled: Sequence[SignedTransaction]
) -> ProfileRun:
    """Steps 1-3 on ``node``, whose ledger is started but whose builder thread is not."""
    n = len(timed)
    fresh = split(node, timed)
    limits = TxLimits()
    decoded = [decode_transaction(stx.wire, limits) for stx in timed]
    decode_us = _timed_us(n, lambda: [decode_transaction(stx.wire, limits) for stx in timed])

    def verify_all() -> None:
        for s in decoded:
            verify_transaction_signature(s)

    verify_us = _timed_us(n, verify_all)
    ed25519 = VerifyLimit(timed).sample("profile").rate
    intake_prof, build_prof = cProfile.Profile(), cProfile.Profile()
    intake_prof.runcall(intake, node, profiled)
    build_prof.runcall(build, node)
    m = len(profiled)
    return ProfileRun(
        fresh=fresh,
        decode_us=decode_us,
        verify_tx_signature_us=verify_us,
        ed25519_verify_us=1e6 / ed25519.per_s,
        intake=_summarise(intake_prof, m, INTAKE_STEPS),
        build=_summarise(build_prof, m, BUILD_STEPS),
    )


def _name(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function  # a builtin: "<method 'verify' of ...>"
    if "/src/medledger/" in filename:
        filename = "medledger/" + filename.split("/src/medledger/", 1)[1]
    else:
        filename = filename.rsplit("/", 1)[-1]
    return f"{filename}:{line}({function})"


def _summarise(prof: cProfile.Profile, n: int, steps: dict[tuple[str, str], str]) -> Profiled:
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = [
        FunctionCost(_name(*key), int(nc), tt / n * 1e6, ct / n * 1e6)
        for key, (_cc, nc, tt, ct, _callers) in stats.items()
    ]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values()) / n * 1e6
    found: dict[str, FunctionCost] = {}
    for (filename, line, function), (_cc, nc, tt, ct, _callers) in stats.items():
        label = steps.get((filename.rsplit("/", 1)[-1], function))
        if label is None or "/medledger/" not in filename:
            continue
        if label not in found or nc > found[label].calls:  # two functions of one name
            cost = FunctionCost(
                _name(filename, line, function), int(nc), tt / n * 1e6, ct / n * 1e6
            )
            found[label] = cost
    ordered = {label: found[label] for label in steps.values() if label in found}
    top = sorted(rows, key=lambda f: f.own_us_per_tx, reverse=True)[:TOP]
    return Profiled(total_us_per_tx=total, top=top, steps=ordered)
