"""The FHIR R4 ``Provenance`` of one write: which version of which resource, who wrote it,
which node keeps it, and where the ledger anchored it (FHIR R4 Provenance; W3C PROV roles).

A Provenance is not stored: it is derived from the index's version row, which holds exactly
what the ledger returned for the version's ``record.anchor`` (transaction id, block height,
log index), so it cannot drift from the anchor. Its id is ``<record id>-<version>``.

The anchor is an extension (``ANCHOR_EXTENSION``) with ``block`` (height), ``logIndex``
(the transaction's leaf in the transparency log), ``transaction`` (its id) and ``receipt``
(where the transaction's status and inclusion are served). ``entity`` names the ledger
transaction as the version's source, so a client can go from any resource to its anchor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from medledger.core.fhir.rows import VersionAnchor

ANCHOR_EXTENSION: Final = "https://medledger.dev/fhir/StructureDefinition/ledger-anchor"
TX_SYSTEM: Final = "urn:medledger:ledger-tx"
DID_SYSTEM: Final = "urn:ietf:rfc:3986"
_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_AGENT: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def instant(time_ms: int) -> str:
    """A FHIR instant (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def provenance_id(record_id: str, version: int) -> str:
    return f"{record_id}-{version}"


def to_provenance(anchor: VersionAnchor, *, custodian: str) -> dict[str, Any]:
    """The Provenance of ``anchor`` (JSON-ready, accepted by ``fhir.resources``)."""
    target = f"{anchor.resource_type}/{anchor.record_id}/_history/{anchor.version}"
    return {
        "resourceType": "Provenance",
        "id": provenance_id(anchor.record_id, anchor.version),
        "extension": [
            {
                "url": ANCHOR_EXTENSION,
                "extension": [
                    {"url": "block", "valueUnsignedInt": anchor.height},
                    {"url": "logIndex", "valueUnsignedInt": anchor.log_index},
                    {"url": "transaction", "valueString": anchor.tx_id},
                    {"url": "receipt", "valueUrl": f"/ledger/transactions/{anchor.tx_id}"},
                ],
            }
        ],
        "target": [{"reference": target}],
        "recorded": instant(anchor.time_ms),
        "activity": {
            "coding": [{"system": _OPERATION, "code": anchor.activity.upper()}],
        },
        "agent": [
            {
                "type": {"coding": [{"system": _AGENT, "code": "author"}]},
                "who": {"identifier": {"system": DID_SYSTEM, "value": anchor.author}},
            },
            {
                "type": {"coding": [{"system": _AGENT, "code": "custodian"}]},
                "who": {"identifier": {"system": DID_SYSTEM, "value": custodian}},
            },
        ],
        "entity": [
            {
                "role": "source",
                "what": {"identifier": {"system": TX_SYSTEM, "value": anchor.tx_id}},
            }
        ],
    }
