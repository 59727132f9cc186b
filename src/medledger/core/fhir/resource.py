"""A FHIR R4 resource as the API accepts it: validated, typed, tied to its patient.

Steps for an incoming resource (``parse_resource``):
1. a JSON object whose ``resourceType`` is one this server stores (``STORED_TYPES``) and,
   for an instance URL, the type in the URL;
2. validated with ``fhir.resources`` (R4B models, the same as R4 for these types); the first
   failing element is named in ``InvalidInputError.parameter`` (a FHIRPath-like path), the
   message says what rule failed, never the value;
3. ``meta.versionId`` and ``meta.lastUpdated`` dropped: the server assigns them (the stored
   document carries neither; they are added from the index when the resource is read).
Then ``patient_did`` (a Patient's own did:key identifier) or ``patient_reference`` (the
``subject``/``patient`` reference another resource points its patient through).
Not handled here: whether the Patient exists or is registered (the FHIR service asks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from medledger.core.identity.did_key import is_did_key
from medledger.errors import InvalidInputError

#: Resource types stored as records (Consent, AuditEvent and Provenance are served from the
#: ledger and the access-event log instead).
STORED_TYPES: Final = (
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Encounter",
    "DiagnosticReport",
    "DocumentReference",
)
DID_SYSTEM: Final = "urn:ietf:rfc:3986"
ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: Which element points a resource at its patient.
PATIENT_ELEMENT: Final = {
    "Observation": "subject",
    "Condition": "subject",
    "MedicationRequest": "subject",
    "AllergyIntolerance": "patient",
    "Encounter": "subject",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
    "Consent": "patient",
}
#: Codes with a *required* binding (FHIR R4), which the models do not check themselves.
REQUIRED_CODES: Final[dict[str, dict[str, frozenset[str]]]] = {
    "Patient": {"gender": frozenset({"male", "female", "other", "unknown"})},
    "Observation": {
        "status": frozenset({"registered", "preliminary", "final", "amended", "corrected",
                             "cancelled", "entered-in-error", "unknown"}),
    },
    "MedicationRequest": {
        "status": frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                             "stopped", "draft", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                             "filler-order", "instance-order", "option"}),
    },
    "AllergyIntolerance": {
        "type": frozenset({"allergy", "intolerance"}),
        "criticality": frozenset({"low", "high", "unable-to-assess"}),
        "category": frozenset({"food", "medication", "environment", "biologic"}),
    },
    "Encounter": {
        "status": frozenset({"planned", "arrived", "triaged", "in-progress", "onleave",
                             "finished", "cancelled", "entered-in-error", "unknown"}),
    },
    "DiagnosticReport": {
        "status": frozenset({"registered", "partial", "preliminary", "final", "amended",
                             "corrected", "appended", "cancelled", "entered-in-error",
                             "unknown"}),
    },
    "DocumentReference": {
        "status": frozenset({"current", "superseded", "entered-in-error"}),
        "docStatus": frozenset({"preliminary", "final", "amended", "entered-in-error"}),
    },
}  # fmt: skip
_PATIENT_REF: Final = re.compile(r"Patient/([A-Za-z0-9\-.]{1,64})")
_MAX_MESSAGE: Final = 160


def check_id(value: str, parameter: str = "id") -> str:
    if not ID.fullmatch(value):
        raise InvalidInputError(f"{parameter}: not a FHIR id", parameter=parameter)
    return value


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(resource: Mapping[str, Any], resource_type: str) -> None:
    """Step 2: ``fhir.resources`` accepts it, else name the first failing element."""
    try:
        get_fhir_model_class(resource_type).model_validate(dict(resource))
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid"}
        element = f"{resource_type}.{_path(tuple(first['loc']))}".rstrip(".")
        message = str(first.get("msg", "invalid"))[:_MAX_MESSAGE]
        raise InvalidInputError(f"{element}: {message}", parameter=element) from None
    except (ValueError, TypeError, RecursionError) as e:
        raise InvalidInputError(
            f"{resource_type}: not a valid resource", parameter=resource_type
        ) from e


def _check_codes(resource: Mapping[str, Any], resource_type: str) -> None:
    """Required bindings on plain ``code`` elements: the code is one of the value set's."""
    for element, allowed in REQUIRED_CODES.get(resource_type, {}).items():
        value = resource.get(element)
        values = value if isinstance(value, list) else [value]
        for i, code in enumerate(values):
            if code is not None and code not in allowed:
                path = f"{resource_type}.{element}" + (f"[{i}]" if isinstance(value, list) else "")
                raise InvalidInputError(
                    f"{path}: not a code of its required value set", parameter=path
                )


def parse_resource(value: object, expected_type: str | None = None) -> dict[str, Any]:
    """Steps 1-3 (module docstring)."""
    if not isinstance(value, dict):
        raise InvalidInputError("the body is not a JSON object", parameter="resourceType")
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in STORED_TYPES:
        raise InvalidInputError(
            "resourceType: not a type this server stores", parameter="resourceType"
        )
    if expected_type is not None and resource_type != expected_type:
        raise InvalidInputError("resourceType: does not match the URL", parameter="resourceType")
    validate(value, resource_type)
    _check_codes(value, resource_type)
    return without_server_meta(value)


def without_server_meta(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Step 3: the resource without ``meta.versionId``/``meta.lastUpdated`` (and without
    ``meta`` when nothing else was in it)."""
    out = dict(resource)
    meta = out.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if kept:
            out["meta"] = kept
        else:
            del out["meta"]
    return out


def patient_did(patient: Mapping[str, Any]) -> str:
    """A Patient's did:key: its one identifier with system ``urn:ietf:rfc:3986`` and a
    ``did:key:`` value (ADR 0018)."""
    dids = [
        i.get("value")
        for i in patient.get("identifier") or []
        if isinstance(i, dict)
        and i.get("system") == DID_SYSTEM
        and str(i.get("value", "")).startswith("did:")
    ]
    if len(dids) != 1 or not isinstance(dids[0], str) or not is_did_key(dids[0]):
        raise InvalidInputError(
            "Patient.identifier: exactly one did:key identifier (system urn:ietf:rfc:3986)",
            parameter="Patient.identifier",
        )
    return dids[0]


def patient_reference(resource: Mapping[str, Any]) -> str:
    """The logical id of the Patient a resource is about (``subject``/``patient``)."""
    resource_type = str(resource.get("resourceType"))
    element = PATIENT_ELEMENT.get(resource_type)
    if element is None:
        raise InvalidInputError(f"{resource_type}: not patient data", parameter="resourceType")
    ref = resource.get(element)
    reference = ref.get("reference") if isinstance(ref, dict) else None
    match = _PATIENT_REF.fullmatch(reference) if isinstance(reference, str) else None
    if match is None:
        raise InvalidInputError(
            f"{resource_type}.{element}: must reference Patient/{{id}} on this server",
            parameter=f"{resource_type}.{element}",
        )
    return match.group(1)


def with_meta(resource: Mapping[str, Any], version: int, last_updated: str) -> dict[str, Any]:
    """A stored resource as served: ``meta.versionId`` and ``meta.lastUpdated`` added."""
    out = dict(resource)
    meta = dict(out.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated
    out["meta"] = meta
    return out
