"""FHIR R4 Consent <-> the policy form (ADR 0013).

What this module handles:

- ``from_fhir(resource, resolve)``: 1. validate the resource with ``fhir.resources`` (R4B is R4
  for Consent; a pydantic error becomes ``InvalidInputError`` naming the field); 2. refuse what
  would change its meaning unseen (``modifierExtension``, ``implicitRules``); 3. map it to a
  ``Consent``, turning each reference into a DID (a ``urn:ietf:rfc:3986`` identifier holding a
  did:key, else ``resolve(literal reference)``) and each dateTime into ms (a period's end is
  inclusive at its precision in FHIR, exclusive in ms here); 4. drop everything that can carry
  PHI and decides nothing (``DROPPED``);
- ``to_fhir(consent)``: a FHIR R4 Consent that validates, references as identifier-DIDs, the
  practitioner role of an actor in an extension of ours; ``from_fhir(to_fhir(c), r) == c``.

FHIR R4 leaves the type of the root provision to the policy ("not permitted in root rule");
the HL7 examples contradict each other there, so an untyped root stays untyped unless the
caller, who knows the intent, passes ``root_type``.

Not handled here: fetching resources or resolving references (``resolve`` is the caller's).
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

import pydantic
from fhir.resources.R4B.consent import Consent as FhirConsent

from medledger.core.consent.limits import MAX_TIME_MS
from medledger.core.consent.model import (
    RECORD_REF,
    ActorRule,
    Consent,
    DataRef,
    Period,
    Provision,
)
from medledger.core.consent.vocab import (
    ACTION_SYSTEM,
    ACTIONS,
    ACTOR_ROLES,
    CONFIDENTIALITY,
    CONFIDENTIALITY_SYSTEM,
    MIME_TYPE_SYSTEM,
    PURPOSE_SYSTEM,
    PURPOSES,
    RECIPIENT,
    RESOURCE_TYPE_SYSTEM,
    ROLE_FROM_FHIR,
    SCOPE_SYSTEM,
    SCOPES,
    SENSITIVITY,
    SENSITIVITY_SYSTEM,
    ProvisionType,
)
from medledger.core.identity.did_key import is_did_key
from medledger.errors import InvalidInputError

Resolve = Callable[[str], str | None]

#: The identifier system of a reference that carries a DID (RFC 3986 URI).
URI_SYSTEM: Final = "urn:ietf:rfc:3986"
#: Our consent id, kept as an identifier (FHIR ids cannot hold ``_``).
CONSENT_ID_SYSTEM: Final = "https://medledger.example/fhir/consent-id"
#: The extension on a provision actor naming "any practitioner with this role".
PRACTITIONER_ROLE_URL: Final = (
    "https://medledger.example/fhir/StructureDefinition/consent-actor-practitioner-role"
)
#: Dropped on import: they can carry PHI (narrative, documents, names, free text) and decide
#: nothing. Unknown extensions are dropped too; unknown modifier extensions are refused.
DROPPED: Final = (
    "text",
    "contained",
    "extension (all but ours)",
    "meta",
    "language",
    "identifier (all but ours)",
    "sourceAttachment",
    "sourceReference",
    "verification",
    "policy",
    "every Reference.display",
    "every CodeableConcept.text and Coding.display/version",
)

_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_DATE_TIME: Final = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2}))?)?)?"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _bad(parameter: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{parameter}: {rule}", parameter=parameter)


@contextmanager
def _under(prefix: str) -> Iterator[None]:
    """A model constructor's ``InvalidInputError``, re-raised under the FHIR path ``prefix``."""
    try:
        yield
    except InvalidInputError as e:
        if not prefix:
            raise
        raise InvalidInputError(f"{prefix}.{e}", parameter=f"{prefix}.{e.parameter}") from None


# --- instants ------------------------------------------------------------------------------


def _ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _instant_range(value: object, path: str) -> tuple[int, int]:
    """A FHIR dateTime as [first ms, first ms after it), at the precision it is written in.

    Without a time zone (a date) it is read in UTC.
    """
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _bad(path, "must be a FHIR dateTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        start = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=_zone(zone),
        )
    except ValueError as e:
        raise _bad(path, "not a valid date and time") from e
    first = _ms(start)
    if fraction is not None:  # [first, first + one unit of the last digit), rounded up to ms
        nanos = int(fraction.ljust(9, "0"))
        unit = 10 ** (9 - len(fraction))
        return first + nanos // 1_000_000, first - (-(nanos + unit) // 1_000_000)
    if hour is not None:
        return first, first + 1000
    if day is not None:
        return first, first + 86_400_000
    if start.year == 9999 and (month is None or int(month) == 12):
        return first, MAX_TIME_MS  # the year 10000 is not a datetime
    if month is not None:
        after = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        after = start.replace(year=start.year + 1)
    return first, _ms(after)


def _zone(zone: str | None) -> tzinfo:
    if zone is None or zone == "Z":
        return UTC
    sign = -1 if zone[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))


def _write_instant(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


# --- reading a resource -----------------------------------------------------------------------


def _validate(resource: Mapping[str, object]) -> None:
    """Step 1: the resource is a FHIR R4 Consent; else the first failing field is named."""
    if not isinstance(resource, Mapping):
        raise _bad("resource", "must be a JSON object")
    try:
        FhirConsent.model_validate(dict(resource))
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or "resource"
        if path == "resource_type":
            path = "resourceType"
        raise _bad(path, f"not a valid FHIR R4 Consent ({first['type']})") from None
    except (ValueError, TypeError) as e:
        raise _bad("resource", "not a valid FHIR R4 Consent") from e


def _refuse_modifiers(value: object, path: str) -> None:
    """Step 2: a modifier extension or implicit rules could change what the consent means."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("modifierExtension", "implicitRules"):
                raise _bad(f"{path}.{key}".lstrip("."), "not understood, so refused")
            _refuse_modifiers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_modifiers(item, f"{path}[{i}]")


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _codings(concept: object) -> list[tuple[str, str]]:
    if not isinstance(concept, Mapping):
        return []
    return [
        (c.get("system", ""), c.get("code", ""))
        for c in _list(concept, "coding")
        if isinstance(c, Mapping)
    ]


def _coding_string(system: str, code: str, path: str) -> str:
    if not system or not code:
        raise _bad(path, "a coding needs a system and a code")
    return f"{system}|{code}"


def _concept_strings(concept: object, path: str) -> list[str]:
    codings = _codings(concept)
    if not codings:
        raise _bad(path, "needs a coding with a system and a code")
    return [_coding_string(system, code, path) for system, code in codings]


def _code_from(concept_or_coding: object, system: str, allowed: frozenset[str], path: str) -> str:
    """The one code of ``system`` in a CodeableConcept (or a Coding), from ``allowed``."""
    if isinstance(concept_or_coding, Mapping) and "coding" not in concept_or_coding:
        codings = [(concept_or_coding.get("system", ""), concept_or_coding.get("code", ""))]
    else:
        codings = _codings(concept_or_coding)
    for coding_system, code in codings:
        if coding_system == system and code in allowed:
            return str(code)
    raise _bad(path, f"needs a code of {system} we know")


class _Reader:
    """Maps one validated resource to the policy form; ``resolve`` turns references into DIDs."""

    def __init__(self, resolve: Resolve, root_type: ProvisionType | None) -> None:
        self._resolve = resolve
        self._root_type = root_type

    def did(self, reference: object, path: str) -> str:
        """A DID: an RFC 3986 identifier holding a did:key, else the resolved literal."""
        if not isinstance(reference, Mapping):
            raise _bad(path, "must be a Reference")
        identifier = reference.get("identifier")
        if isinstance(identifier, Mapping) and identifier.get("system") == URI_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and is_did_key(value):
                return value
            raise _bad(path, "the identifier is not an Ed25519 did:key")
        literal = reference.get("reference")
        if not isinstance(literal, str):
            raise _bad(path, "needs a literal reference or a did:key identifier")
        resolved = self._resolve(literal)
        if resolved is None or not is_did_key(resolved):
            raise _bad(path, "the reference does not resolve to a participant's did:key")
        return resolved

    def dids(self, resource: Mapping[str, Any], key: str) -> tuple[str, ...]:
        return tuple(self.did(ref, f"{key}[{i}]") for i, ref in enumerate(_list(resource, key)))

    def period(self, value: object, path: str) -> Period | None:
        if not isinstance(value, Mapping) or not ({"start", "end"} & set(value)):
            return None
        start = _instant_range(value["start"], f"{path}.start")[0] if "start" in value else None
        end = _instant_range(value["end"], f"{path}.end")[1] if "end" in value else None
        with _under(path):
            return Period(start, end)

    def actor(self, actor: Mapping[str, Any], path: str) -> ActorRule:
        role = ROLE_FROM_FHIR.get(
            next((c for c in _codings(actor.get("role")) if c in ROLE_FROM_FHIR), ("", ""))
        )
        if role is None:
            raise _bad(f"{path}.role", "needs a participation or role code we know")
        practitioner_role = None
        for extension in _list(actor, "extension"):
            if isinstance(extension, Mapping) and extension.get("url") == PRACTITIONER_ROLE_URL:
                practitioner_role = extension.get("valueCode")
        reference = actor.get("reference")
        anyone = (
            isinstance(reference, Mapping)
            and practitioner_role is not None
            and "reference" not in reference
            and "identifier" not in reference
        )
        did = None if anyone else self.did(reference, f"{path}.reference")
        with _under(path):
            return ActorRule(role, did, practitioner_role)

    def data(self, item: Mapping[str, Any], path: str) -> DataRef:
        reference = item.get("reference")
        literal = reference.get("reference") if isinstance(reference, Mapping) else None
        if not isinstance(literal, str) or not RECORD_REF.fullmatch(literal):
            raise _bad(f"{path}.reference", "must be a relative '<ResourceType>/<id>' reference")
        with _under(path):
            return DataRef(item.get("meaning", ""), literal)

    def provision(self, raw: Mapping[str, Any], path: str, root: bool) -> Provision:
        kind = raw.get("type")
        if root and self._root_type is not None:
            if kind is not None and kind != self._root_type:
                raise _bad(
                    f"{path}.type", f"the resource says {kind}, the caller {self._root_type}"
                )
            kind = self._root_type
        labels = []
        for i, label in enumerate(_list(raw, "securityLabel")):
            system = label.get("system") if isinstance(label, Mapping) else None
            allowed = (
                frozenset(CONFIDENTIALITY) if system == CONFIDENTIALITY_SYSTEM else SENSITIVITY
            )
            system = system if system == CONFIDENTIALITY_SYSTEM else SENSITIVITY_SYSTEM
            labels.append(_code_from(label, system, allowed, f"{path}.securityLabel[{i}]"))
        classes = []
        for i, item in enumerate(_list(raw, "class")):
            if isinstance(item, Mapping) and item.get("system") in (
                RESOURCE_TYPE_SYSTEM,
                MIME_TYPE_SYSTEM,
            ):
                code = item.get("code")
                classes.append(code if isinstance(code, str) else "")
            else:
                raise _bad(f"{path}.class[{i}]", "must be a FHIR resource type or a MIME type")
        children = tuple(
            self.provision(child, f"{path}.provision[{i}]", root=False)
            for i, child in enumerate(_list(raw, "provision"))
        )
        fields = {
            "period": self.period(raw.get("period"), f"{path}.period"),
            "actors": tuple(
                self.actor(a, f"{path}.actor[{i}]") for i, a in enumerate(_list(raw, "actor"))
            ),
            "actions": frozenset(
                _code_from(a, ACTION_SYSTEM, ACTIONS, f"{path}.action[{i}]")
                for i, a in enumerate(_list(raw, "action"))
            ),
            "purposes": frozenset(
                _code_from(p, PURPOSE_SYSTEM, PURPOSES, f"{path}.purpose[{i}]")
                for i, p in enumerate(_list(raw, "purpose"))
            ),
            "codes": frozenset(
                code
                for i, concept in enumerate(_list(raw, "code"))
                for code in _concept_strings(concept, f"{path}.code[{i}]")
            ),
            "data_period": self.period(raw.get("dataPeriod"), f"{path}.dataPeriod"),
            "data": tuple(
                self.data(d, f"{path}.data[{i}]") for i, d in enumerate(_list(raw, "data"))
            ),
        }
        with _under(path):  # only the constructor: the parts above name their own paths
            return Provision(
                type=kind,
                security_labels=frozenset(labels),
                classes=frozenset(classes),
                provisions=children,
                **fields,  # type: ignore[arg-type]
            )


def _consent_id(resource: Mapping[str, Any]) -> str:
    for identifier in _list(resource, "identifier"):
        if isinstance(identifier, Mapping) and identifier.get("system") == CONSENT_ID_SYSTEM:
            return str(identifier.get("value"))
    if isinstance(resource.get("id"), str):
        return str(resource["id"])
    raise _bad("id", "a consent needs an id")


def from_fhir(
    resource: Mapping[str, object], resolve: Resolve, *, root_type: ProvisionType | None = None
) -> Consent:
    """A FHIR R4 Consent as the policy form (steps 1-4 above); ``InvalidInputError`` naming
    the FHIR path of the first problem, never a traceback.

    ``root_type`` gives the root provision the type FHIR R4 leaves to the policy, when the
    resource states none; a resource stating the other type is refused.
    """
    _validate(resource)
    _refuse_modifiers(resource, "")
    raw: Mapping[str, Any] = resource
    reader = _Reader(resolve, root_type)
    if "patient" not in raw:
        raise _bad("patient", "a consent names its patient")
    policy_rule = None
    if "policyRule" in raw:
        policy_rule = _concept_strings(raw["policyRule"], "policyRule")[0]
    date_time_ms = None
    if "dateTime" in raw:
        date_time_ms = _instant_range(raw["dateTime"], "dateTime")[0]
    provision = None
    if isinstance(raw.get("provision"), Mapping):
        provision = reader.provision(raw["provision"], "provision", root=True)
    categories: list[str] = []
    for i, concept in enumerate(_list(raw, "category")):
        for coding in _concept_strings(concept, f"category[{i}]"):
            if coding not in categories:
                categories.append(coding)
    with _under(""):
        return Consent(
            consent_id=_consent_id(raw),
            patient=reader.did(raw["patient"], "patient"),
            status=raw["status"],
            scope=_code_from(raw["scope"], SCOPE_SYSTEM, SCOPES, "scope"),
            categories=tuple(categories),
            performers=reader.dids(raw, "performer"),
            organizations=reader.dids(raw, "organization"),
            policy_rule=policy_rule,
            date_time_ms=date_time_ms,
            provision=provision,
        )


# --- writing a resource ---------------------------------------------------------------------


def _did_reference(did: str) -> dict[str, object]:
    return {"identifier": {"system": URI_SYSTEM, "value": did}}


def _concept(coding: str) -> dict[str, object]:
    system, code = coding.split("|", 1)
    return {"coding": [{"system": system, "code": code}]}


def _period_json(period: Period) -> dict[str, str]:
    out = {}
    if period.start_ms is not None:
        out["start"] = _write_instant(period.start_ms)
    if period.end_ms is not None:  # FHIR's end is inclusive: the last ms of ours
        out["end"] = _write_instant(period.end_ms - 1)
    return out


def _actor_json(actor: ActorRule) -> dict[str, object]:
    system, code, kind = ACTOR_ROLES[actor.role]
    out: dict[str, object] = {"role": {"coding": [{"system": system, "code": code}]}}
    if actor.practitioner_role is not None and kind == RECIPIENT:
        out["extension"] = [{"url": PRACTITIONER_ROLE_URL, "valueCode": actor.practitioner_role}]
    out["reference"] = (
        _did_reference(actor.reference) if actor.reference else {"type": "Practitioner"}
    )
    return out


def _label_json(label: str) -> dict[str, str]:
    system = CONFIDENTIALITY_SYSTEM if label in CONFIDENTIALITY else SENSITIVITY_SYSTEM
    return {"system": system, "code": label}


def _provision_json(provision: Provision) -> dict[str, object]:
    out: dict[str, object] = {}
    if provision.type is not None:
        out["type"] = provision.type
    if provision.period is not None:
        out["period"] = _period_json(provision.period)
    if provision.actors:
        out["actor"] = [_actor_json(a) for a in provision.actors]
    if provision.actions:
        out["action"] = [
            {"coding": [{"system": ACTION_SYSTEM, "code": a}]} for a in sorted(provision.actions)
        ]
    if provision.security_labels:
        out["securityLabel"] = [_label_json(x) for x in sorted(provision.security_labels)]
    if provision.purposes:
        out["purpose"] = [{"system": PURPOSE_SYSTEM, "code": p} for p in sorted(provision.purposes)]
    if provision.classes:
        out["class"] = [
            {"system": MIME_TYPE_SYSTEM if "/" in c else RESOURCE_TYPE_SYSTEM, "code": c}
            for c in sorted(provision.classes)
        ]
    if provision.codes:
        out["code"] = [_concept(c) for c in sorted(provision.codes)]
    if provision.data_period is not None:
        out["dataPeriod"] = _period_json(provision.data_period)
    if provision.data:
        out["data"] = [
            {"meaning": d.meaning, "reference": {"reference": d.reference}} for d in provision.data
        ]
    if provision.provisions:
        out["provision"] = [_provision_json(child) for child in provision.provisions]
    return out


def to_fhir(consent: Consent) -> dict[str, object]:
    """``consent`` as a FHIR R4 Consent resource (JSON-ready) that ``fhir.resources`` accepts."""
    out: dict[str, object] = {"resourceType": "Consent"}
    if _FHIR_ID.fullmatch(consent.consent_id):
        out["id"] = consent.consent_id
    out["identifier"] = [{"system": CONSENT_ID_SYSTEM, "value": consent.consent_id}]
    out["status"] = consent.status
    out["scope"] = {"coding": [{"system": SCOPE_SYSTEM, "code": consent.scope}]}
    out["category"] = [_concept(c) for c in consent.categories]
    out["patient"] = _did_reference(consent.patient)
    if consent.date_time_ms is not None:
        out["dateTime"] = _write_instant(consent.date_time_ms)
    if consent.performers:
        out["performer"] = [_did_reference(d) for d in consent.performers]
    if consent.organizations:
        out["organization"] = [_did_reference(d) for d in consent.organizations]
    if consent.policy_rule is not None:
        out["policyRule"] = _concept(consent.policy_rule)
    if consent.provision is not None:
        out["provision"] = _provision_json(consent.provision)
    return out
