"""What the node-local FHIR index keeps per resource and per version (no content: the content
is always read back through the records service, decrypted and checked against the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Activity = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Head:
    """A resource's current version: whose it is, which version, when, deleted or not."""

    resource_type: str
    record_id: str
    patient: str
    version: int
    time_ms: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class VersionAnchor:
    """One version's write: who wrote it and where the ledger anchored it."""

    resource_type: str
    record_id: str
    version: int
    time_ms: int
    activity: Activity
    author: str
    tx_id: str
    height: int
    log_index: int
