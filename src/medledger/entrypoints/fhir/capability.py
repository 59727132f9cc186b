"""The server's CapabilityStatement (FHIR R4 §3.1.0.11 "capabilities"): built from the same
tables the routes and the search parser use, so it says what the server does, no more."""

from __future__ import annotations

from typing import Any

from medledger import __version__
from medledger.core.fhir.resource import STORED_TYPES
from medledger.core.fhir.search import PARAMETERS

_TYPE_URL = "http://hl7.org/fhir/SearchParameter/"
_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
_CONSENT_INTERACTIONS = ("read", "create", "update", "delete", "search-type")
_COMMON = (
    {"name": "_id", "type": "token"},
    {"name": "_lastUpdated", "type": "date"},
)


def _resource(resource_type: str) -> dict[str, Any]:
    params = PARAMETERS.get(resource_type, {})
    resource: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,  # If-None-Exist, and Bundle request.ifNoneExist
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,  # PUT Type?search: 0 matches create, 1 updates, more 412
        "conditionalDelete": "single",
        "searchParam": [
            *_COMMON,
            *({"name": name, "type": spec.kind} for name, spec in params.items()),
        ],
    }
    includes = [f"{resource_type}:{n}" for n, s in params.items() if s.kind == "reference"]
    if includes:
        resource["searchInclude"] = includes
    if resource_type == "Patient":
        resource["searchRevInclude"] = [
            f"{t}:{n}"
            for t, ps in PARAMETERS.items()
            for n, s in ps.items()
            if s.kind == "reference" and t != "Patient"
        ]
        resource["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            }
        ]
    return resource


def capability_statement(base: str, now: str) -> dict[str, Any]:
    """What this server does, at ``base``, as of ``now`` (a FHIR dateTime)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now,
        "publisher": "medledger",
        "kind": "instance",
        "software": {"name": "medledger", "version": __version__},
        "implementation": {"description": "medledger FHIR R4 API", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "description": "SMART on FHIR scopes, then the patient's consent on every "
                    "read; every decision is an access event on the transparency log",
                },
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "resource": [
                    *(_resource(t) for t in STORED_TYPES),
                    {
                        "type": "Provenance",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": "target", "type": "reference"}],
                    },
                    {
                        "type": "Consent",
                        "interaction": [
                            {"code": c}
                            for c in ("read", "create", "update", "delete", "search-type")
                        ],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    },
                ],
            }
        ],
    }
