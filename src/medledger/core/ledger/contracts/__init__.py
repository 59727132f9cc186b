"""The ledger's contracts, each a deterministic state machine owning some transaction types.

``participants`` (who is on the network), ``records`` (chained commitments to FHIR resource
versions), ``access_batch`` (signed roots of access-event batches) and ``escrow`` (an
organization's emergency key split among custodians, released by their approvals). Each
writes only under its own key prefix (``namespace``).
"""

from __future__ import annotations

from medledger.core.ledger.contracts.access_batch import AccessBatchContract
from medledger.core.ledger.contracts.escrow import EscrowContract
from medledger.core.ledger.contracts.participants import ParticipantsContract
from medledger.core.ledger.contracts.records import RecordsContract
from medledger.core.ledger.runtime import Contract

__all__ = [
    "AccessBatchContract",
    "EscrowContract",
    "ParticipantsContract",
    "RecordsContract",
    "default_contracts",
]


def default_contracts() -> list[Contract]:
    """The contracts every node runs, in a fixed order."""
    return [ParticipantsContract(), RecordsContract(), AccessBatchContract(), EscrowContract()]
