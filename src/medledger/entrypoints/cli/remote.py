"""What the CLI's remote commands share: signing with a key file, submitting a transaction and
building a signed request (``medledger.entrypoints.http.signed``) for a node."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medledger.client import LedgerClient
    from medledger.core.identity.keys import ParticipantKey
    from medledger.core.ledger.tx import SignedTransaction

#: A signed request expires after this long (the node accepts at most 300 s).
REQUEST_TTL_S = 60


def load_key(key_file: Path) -> ParticipantKey:
    from medledger.adapters.keystore import read_key_file
    from medledger.entrypoints.cli.main import _passphrase

    return read_key_file(key_file, _passphrase(confirm=False))


def signed_request(
    client: LedgerClient, key: ParticipantKey, tx_type: str, payload: dict[str, Any]
) -> SignedTransaction:
    from medledger.client import new_transaction

    return new_transaction(
        key,
        network=client.network(),
        tx_type=tx_type,
        payload=payload,
        now_s=int(time.time()),
        ttl_s=REQUEST_TTL_S,
    )


def submit(node: str, key_file: Path, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Sign ``payload`` as a ``tx_type`` transaction, submit it and wait for its block; exit
    with the contract's reason if it was refused."""
    from medledger.client import LedgerClient, new_transaction
    from medledger.entrypoints.cli.main import fail

    key = load_key(key_file)
    with LedgerClient(node) as client:
        stx = new_transaction(
            key, network=client.network(), tx_type=tx_type, payload=payload, now_s=int(time.time())
        )
        result = client.submit(stx)
    if not result.get("ok"):
        fail(f"{tx_type} refused: {result.get('reason')} ({result.get('message')})")
    return result
