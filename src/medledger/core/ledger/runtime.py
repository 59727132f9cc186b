"""The contract runtime: applies ordered transactions deterministically.

Each transaction type belongs to one contract. A contract is a deterministic state machine: it
reads the state through ``StateReader`` and the block context, and returns the writes it wants;
it never reads a clock, randomness or anything else. A contract that refuses a transaction
raises ``ContractError`` with a reason code: the transaction is recorded as failed with that
reason and changes no state. Writes of earlier transactions in the same block are visible to
later ones (an overlay).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from medledger.core.ledger.tx import SignedTransaction, Transaction
from medledger.errors import MedledgerError

#: A write: key -> new value bytes, or None to delete the key.
Writes = Mapping[str, bytes | None]


class ContractError(MedledgerError):
    """A contract refused a transaction. ``reason`` is a stable, machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StateReader(Protocol):
    def get(self, key: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a contract may know besides the state: the block being built."""

    network: str
    height: int
    time_ms: int
    proposer: str


class Contract(Protocol):
    """A deterministic state machine owning some transaction types."""

    @property
    def name(self) -> str: ...

    @property
    def tx_types(self) -> frozenset[str]: ...

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        """The writes for ``tx``, or raise ``ContractError``. Must not mutate anything."""
        ...


@dataclass(frozen=True, slots=True)
class TxResult:
    """The outcome of one transaction in a block."""

    tx_id: bytes
    ok: bool
    reason: str | None = None
    message: str | None = None


class Overlay:
    """A StateReader over a base state plus the writes of earlier transactions in the block."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)


class Runtime:
    """Dispatches each transaction to the contract that owns its type."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._by_type: dict[str, Contract] = {}
        for contract in contracts:
            for tx_type in contract.tx_types:
                if tx_type in self._by_type:
                    raise ValueError(f"two contracts claim {tx_type}")
                self._by_type[tx_type] = contract

    @property
    def tx_types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    def apply_block(
        self, txs: Sequence[SignedTransaction], base: StateReader, ctx: BlockContext
    ) -> tuple[list[TxResult], dict[str, bytes | None]]:
        """Apply ``txs`` in order; return one result per transaction and the block's writes."""
        overlay = Overlay(base)
        results: list[TxResult] = []
        for stx in txs:
            results.append(self._apply_one(stx, overlay, ctx))
        return results, overlay.writes

    def _apply_one(self, stx: SignedTransaction, overlay: Overlay, ctx: BlockContext) -> TxResult:
        tx = stx.tx
        contract = self._by_type.get(tx.type)
        if contract is None:
            return TxResult(stx.tx_id, ok=False, reason="unknown_type", message=tx.type)
        if tx.network != ctx.network:
            return TxResult(stx.tx_id, ok=False, reason="wrong_network", message=tx.network)
        if tx.expires * 1000 <= ctx.time_ms:
            return TxResult(
                stx.tx_id, ok=False, reason="expired", message="expired before the block"
            )
        nonce_key = nonce_state_key(tx.sender, tx.nonce)
        if overlay.get(nonce_key) is not None:
            return TxResult(
                stx.tx_id, ok=False, reason="replayed_nonce", message="nonce already used"
            )
        try:
            writes = contract.apply(tx, overlay, ctx)
        except ContractError as e:
            return TxResult(stx.tx_id, ok=False, reason=e.reason, message=str(e))
        overlay.writes.update(writes)
        overlay.writes[nonce_key] = stx.tx_id
        return TxResult(stx.tx_id, ok=True)


def nonce_state_key(sender: str, nonce: str) -> str:
    """Used nonces live in the state (and so in the state root): replay is refused everywhere."""
    return f"nonce/{sender}/{nonce}"
