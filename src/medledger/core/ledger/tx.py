"""The transaction value type: what a participant signed, already parsed and checked.

Wire format and signing live in ``envelope``; this module only says what a valid transaction
is. A ``Transaction`` that exists has a well-formed body (constructor checks); whether it is
*allowed* is the contracts' business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, check_json
from medledger.errors import InvalidInputError

TX_VERSION = 1
_NETWORK = re.compile(r"[a-z0-9][a-z0-9.\-]{0,62}")
_TYPE = re.compile(r"[a-z][a-z_]{0,30}\.[a-z][a-z_]{0,30}")
_NONCE = re.compile(r"[A-Za-z0-9_\-]{8,64}")


@dataclass(frozen=True, slots=True)
class Transaction:
    """The signed body: ``{"v","network","type","payload","sender","nonce","expires"}``.

    - ``network``: the network id (genesis); a transaction for another network is rejected.
    - ``type``: ``<contract>.<action>``, e.g. ``participant.register``.
    - ``payload``: a JSON object (restricted model, see ``canonical``).
    - ``sender``: the signer's did:key.
    - ``nonce``: 8-64 characters of [A-Za-z0-9_-], unique per sender forever.
    - ``expires``: Unix seconds after which the transaction may not be included.
    """

    network: str
    type: str
    payload: Mapping[str, JSON]
    sender: str
    nonce: str
    expires: int
    version: int = field(default=TX_VERSION)

    def __post_init__(self) -> None:
        if self.version != TX_VERSION:
            raise InvalidInputError(
                f"unsupported transaction version {self.version}", parameter="v"
            )
        if not isinstance(self.network, str) or not _NETWORK.fullmatch(self.network):
            raise InvalidInputError("network must be a lowercase id", parameter="network")
        if not isinstance(self.type, str) or not _TYPE.fullmatch(self.type):
            raise InvalidInputError("type must look like contract.action", parameter="type")
        if not isinstance(self.payload, Mapping):
            raise InvalidInputError("payload must be a JSON object", parameter="payload")
        check_json(dict(self.payload))
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))
        if not isinstance(self.sender, str) or not is_did_key(self.sender):
            raise InvalidInputError("sender must be an Ed25519 did:key", parameter="sender")
        if not isinstance(self.nonce, str) or not _NONCE.fullmatch(self.nonce):
            raise InvalidInputError("nonce must be 8-64 of [A-Za-z0-9_-]", parameter="nonce")
        if (
            isinstance(self.expires, bool)
            or not isinstance(self.expires, int)
            or not 0 < self.expires <= MAX_SAFE_INTEGER
        ):
            raise InvalidInputError("expires must be positive Unix seconds", parameter="expires")

    @property
    def contract(self) -> str:
        return self.type.split(".", 1)[0]

    def body(self) -> dict[str, JSON]:
        """The JSON object that is canonicalised and signed (without the signature)."""
        return {
            "v": self.version,
            "network": self.network,
            "type": self.type,
            "payload": dict(self.payload),
            "sender": self.sender,
            "nonce": self.nonce,
            "expires": self.expires,
        }


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A transaction with its signature, its wire bytes and its id.

    ``tx_id`` = SHA-256(DOMAIN_TX || JCS(body)) — the hash of exactly the signed bytes.
    ``wire`` = JCS(body + {"sig": base64url(signature)}) — what is stored, ordered and logged.
    """

    tx: Transaction
    signature: bytes
    tx_id: bytes
    wire: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != 64:
            raise InvalidInputError("an Ed25519 signature is 64 bytes", parameter="sig")
        if len(self.tx_id) != 32:
            raise InvalidInputError("a transaction id is 32 bytes", parameter="tx_id")
