"""The ledger's contracts, each a deterministic state machine owning some transaction types.

``participants`` (who is on the network), ``records`` (chained commitments to FHIR resource
versions), ``consent`` (patients' grants, revocations and delegates), ``access_batch`` (signed
roots of access-event batches), ``review`` (privacy officers' rulings on break-glass accesses)
and ``escrow`` (an organization's emergency key split among custodians, released by their
approvals). Each writes only under its own key prefix (``namespace``).
"""

from __future__ import annotations

from medledger.core.ledger.contracts.access_batch import AccessBatchContract
from medledger.core.ledger.contracts.consent import ConsentContract
from medledger.core.ledger.contracts.escrow import EscrowContract
from medledger.core.ledger.contracts.participants import ParticipantsContract
from medledger.core.ledger.contracts.records import RecordsContract
from medledger.core.ledger.contracts.review import ReviewContract
from medledger.core.ledger.runtime import Contract

__all__ = [
    "AccessBatchContract",
    "ConsentContract",
    "EscrowContract",
    "ParticipantsContract",
    "RecordsContract",
    "ReviewContract",
    "default_contracts",
]


def default_contracts() -> list[Contract]:
    """The contracts every node runs, in a fixed order."""
    return [
        ParticipantsContract(),
        RecordsContract(),
        ConsentContract(),
        AccessBatchContract(),
        ReviewContract(),
        EscrowContract(),
    ]
