"""Access events as FHIR R4 ``AuditEvent`` resources, following IHE Basic Audit Log Patterns.

Every event gives one ``IHE.BasicAudit.AuthZconsent`` AuditEvent -- the access decision
(DICOM 110113 "Security Alert", subtype ``AuthZ-Consent``, action E, outcome success for a
permit or break-glass and serious failure for a deny). A permitted ``read`` or
``key-release`` also gives an ``IHE.BasicAudit.PatientRead`` (RESTful ``read``/``vread``,
action R), and a permitted ``search`` an ``IHE.BasicAudit.PatientQuery`` (``search-type``
or ``search-system``, action E).

Pseudonymous by construction: every party is named by its did:key as an identifier
(``urn:ietf:rfc:3986``), never by a name; records by their opaque id; the only text is the
node's ``node_name`` (an organization, not a person) and, only when asked for, a break-glass
justification. A break-glass event carries the v3-ActReason ``BTG`` purpose of use beside the
one asked for, and the ``BTG`` tag in ``meta.tag``.

Where medledger knows less than BALP asks (written down in ADR 0014): events hold no network
addresses, so agents carry ``network`` only for the node when ``node_url`` is given; the
client application is the key that signed the request, i.e. the actor's did:key; a patient
acting for themself has no organization agent; a decision that matched no consent lists no
consent entity; a query entity holds the search a request of that action and type makes,
since events hold no query strings. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, Final

from medledger.core.audit.event import AccessEvent

BALP: Final = "https://profiles.ihe.net/ITI/BALP"
PROFILE_AUTHZ_CONSENT: Final = f"{BALP}/StructureDefinition/IHE.BasicAudit.AuthZconsent"
PROFILE_PATIENT_READ: Final = f"{BALP}/StructureDefinition/IHE.BasicAudit.PatientRead"
PROFILE_PATIENT_QUERY: Final = f"{BALP}/StructureDefinition/IHE.BasicAudit.PatientQuery"
AUTHZ_SUBTYPE: Final = f"{BALP}/CodeSystem/AuthZsubType"
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
SECURITY_ROLE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
RESOURCE_TYPES: Final = "http://hl7.org/fhir/resource-types"
NETWORK_TYPE: Final = "http://hl7.org/fhir/network-type"
URI_SYSTEM: Final = "urn:ietf:rfc:3986"
#: v3-ActReason "break the glass".
BREAK_GLASS: Final = "BTG"

Resource = dict[str, Any]


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _did(did: str, resource_type: str | None = None) -> dict[str, Any]:
    """A Reference by identifier: a did:key is a URI, and names nobody."""
    reference: dict[str, Any] = {"identifier": {"system": URI_SYSTEM, "value": did}}
    if resource_type is not None:
        reference["type"] = resource_type
    return reference


def _instant(time_ms: int) -> str:
    """FHIR ``instant`` (UTC, milliseconds) of Unix milliseconds."""
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def _purposes(event: AccessEvent, *, include_justification: bool) -> list[dict[str, Any]]:
    """The purpose of use asked for; for break-glass also BTG (with the justification as its
    text, only when asked for)."""
    purposes = [_concept(ACT_REASON, event.purpose)]
    if event.decision == "break-glass":
        btg: dict[str, Any] = (
            purposes.pop()
            if event.purpose == BREAK_GLASS
            else _concept(ACT_REASON, BREAK_GLASS, "break the glass")
        )
        if include_justification and event.justification is not None:
            btg["text"] = event.justification
        purposes.append(btg)
    return purposes


def _meta(event: AccessEvent, profile: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"profile": [profile]}
    if event.decision == "break-glass":
        meta["tag"] = [_coding(ACT_REASON, BREAK_GLASS, "break the glass")]
    return meta


def _source(event: AccessEvent, node_name: str, code: str, display: str) -> dict[str, Any]:
    return {
        "site": node_name,
        "observer": _did(event.node, "Device"),
        "type": [_coding(SOURCE_TYPE, code, display)],
    }


def _patient_entity(event: AccessEvent) -> dict[str, Any]:
    return {
        "what": _did(event.patient, "Patient"),
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
    }


def _user_agent(event: AccessEvent) -> dict[str, Any]:
    return {
        "type": _concept(PARTICIPATION_TYPE, "IRCP", "information recipient"),
        "who": _did(event.actor),
        "requestor": True,
        "purposeOfUse": [_concept(ACT_REASON, event.purpose)],
    }


def _server_network(node_url: str | None) -> dict[str, Any]:
    return {} if node_url is None else {"network": {"address": node_url, "type": "5"}}


def authz_consent(
    event: AccessEvent, *, node_name: str, include_justification: bool = False
) -> Resource:
    """IHE.BasicAudit.AuthZconsent: the decision itself, whatever it was."""
    agents = [
        {
            "type": _concept(DCM, "110150", "Application"),
            "who": _did(event.actor, "Device"),
            "requestor": False,
        },
        _user_agent(event),
    ]
    if event.actor_org is not None:
        agents.append(
            {
                "type": _concept(ROLE_CLASS, "PROV", "healthcare provider"),
                "who": _did(event.actor_org, "Organization"),
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": _concept(SECURITY_ROLE_TYPE, "authserver", "authorization server"),
            "who": _did(event.node, "Device"),
            "requestor": False,
        }
    )
    entities = [_patient_entity(event)]
    entities.extend(
        {
            "what": {"reference": f"Consent/{consent}", "type": "Consent"},
            "type": _coding(RESOURCE_TYPES, "Consent", "Consent"),
        }
        for consent in event.consents
    )
    return {
        "resourceType": "AuditEvent",
        "id": f"{event.event_id}-authz",
        "meta": _meta(event, PROFILE_AUTHZ_CONSENT),
        "type": _coding(DCM, "110113", "Security Alert"),
        "subtype": [
            _coding(
                AUTHZ_SUBTYPE, "AuthZ-Consent", "Authorization Decision using Roles and Consent"
            )
        ],
        "action": "E",
        "recorded": _instant(event.time_ms),
        "outcome": "8" if event.decision == "deny" else "0",
        "outcomeDesc": ", ".join(event.reasons),
        "purposeOfEvent": _purposes(event, include_justification=include_justification),
        "agent": agents,
        "source": _source(event, node_name, "6", "Security Server"),
        "entity": entities,
    }


def _record_reference(event: AccessEvent) -> str | None:
    if event.record_id is None:
        return None
    base = f"{event.resource_type or 'Resource'}/{event.record_id}"
    return base if event.version is None else f"{base}/_history/{event.version}"


def patient_read(event: AccessEvent, *, node_name: str, node_url: str | None = None) -> Resource:
    """IHE.BasicAudit.PatientRead: a permitted read or key release of a patient's record."""
    interaction = "read" if event.version is None else "vread"
    entities = [_patient_entity(event)]
    reference = _record_reference(event)
    if reference is not None:
        entities.append(
            {
                "what": {"reference": reference},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    return {
        "resourceType": "AuditEvent",
        "id": f"{event.event_id}-read",
        "meta": _meta(event, PROFILE_PATIENT_READ),
        "type": _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(RESTFUL_INTERACTION, interaction, interaction)],
        "action": "R",
        "recorded": _instant(event.time_ms),
        "outcome": "0",
        "purposeOfEvent": _purposes(event, include_justification=False),
        "agent": [
            {
                "type": _concept(DCM, "110152", "Destination Role ID"),
                "who": _did(event.actor, "Device"),
                "requestor": False,
            },
            {
                "type": _concept(DCM, "110153", "Source Role ID"),
                "who": _did(event.node, "Device"),
                "requestor": False,
                **_server_network(node_url),
            },
            _user_agent(event),
        ],
        "source": _source(event, node_name, "4", "Application Server"),
        "entity": entities,
    }


def patient_query(event: AccessEvent, *, node_name: str, node_url: str | None = None) -> Resource:
    """IHE.BasicAudit.PatientQuery: a permitted search of a patient's records."""
    interaction = "search-system" if event.resource_type is None else "search-type"
    search = f"{event.resource_type or ''}?patient={event.patient}"
    return {
        "resourceType": "AuditEvent",
        "id": f"{event.event_id}-query",
        "meta": _meta(event, PROFILE_PATIENT_QUERY),
        "type": _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(RESTFUL_INTERACTION, interaction, interaction)],
        "action": "E",
        "recorded": _instant(event.time_ms),
        "outcome": "0",
        "purposeOfEvent": _purposes(event, include_justification=False),
        "agent": [
            {
                "type": _concept(DCM, "110153", "Source Role ID"),
                "who": _did(event.actor, "Device"),
                "requestor": False,
            },
            {
                "type": _concept(DCM, "110152", "Destination Role ID"),
                "who": _did(event.node, "Device"),
                "requestor": False,
                **_server_network(node_url),
            },
            _user_agent(event),
        ],
        "source": _source(event, node_name, "4", "Application Server"),
        "entity": [
            _patient_entity(event),
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(search.encode()).decode("ascii"),
            },
        ],
    }


def to_audit_events(
    event: AccessEvent,
    *,
    node_name: str,
    node_url: str | None = None,
    include_justification: bool = False,
) -> list[Resource]:
    """The BALP AuditEvents of one access event: AuthZconsent always, then PatientRead for a
    permitted read or key release, PatientQuery for a permitted search.

    ``node_name`` names the node's site (an organization); ``node_url`` its FHIR base, if
    it has one; ``include_justification`` puts a break-glass justification (free text)
    into the decision's BTG purpose of use -- for the patient and reviewers, never by
    default."""
    resources = [
        authz_consent(event, node_name=node_name, include_justification=include_justification)
    ]
    if event.permitted and event.action in {"read", "key-release"}:
        resources.append(patient_read(event, node_name=node_name, node_url=node_url))
    elif event.permitted and event.action == "search":
        resources.append(patient_query(event, node_name=node_name, node_url=node_url))
    return resources
