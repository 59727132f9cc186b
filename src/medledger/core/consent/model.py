"""The consent policy form: what the ledger holds for one patient consent (ADR 0013).

What this module handles:

- the values ``Consent``, ``Provision``, ``ActorRule``, ``Period`` and ``DataRef``: frozen
  dataclasses whose constructors enforce every invariant (closed vocabularies from ``vocab``,
  did:keys, patterns, the sizes in ``limits.LIMITS``), so a value that exists is valid;
- ``parse_consent``: the policy JSON read strictly -- a missing, unknown or ill-typed field is
  ``InvalidInputError`` whose ``parameter`` is the dotted path
  (``provision.provisions[1].actions``);
- ``Consent.to_json``: the JSON-ready form, deterministic (sets sorted), with
  ``parse_consent(c.to_json()) == c``.

The form holds no PHI: DIDs, codes, instants and record references only -- no names, no
narrative, no attachments. Every string matches a closed vocabulary or a tight pattern.

Not handled here: what a consent decides (``decision``), FHIR (``fhir``). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, TypeGuard

from medledger.core.consent.limits import LIMITS, MAX_TIME_MS, MIN_TIME_MS
from medledger.core.consent.vocab import (
    ACTIONS,
    ACTOR_ROLES,
    DATA_MEANINGS,
    PROVISION_TYPES,
    PURPOSES,
    RECIPIENT,
    SCOPES,
    SECURITY_LABELS,
    STATUSES,
    ProvisionType,
    practitioner_roles,
)
from medledger.core.identity.did_key import is_did_key
from medledger.errors import InvalidInputError

JSONObject = dict[str, object]

CONSENT_ID: Final = re.compile(rf"[A-Za-z0-9._-]{{1,{LIMITS.max_id_chars}}}")
#: ``<FHIR resource type>/<record id>``, as the records contract names a record.
RECORD_REF: Final = re.compile(rf"[A-Z][A-Za-z]{{1,63}}/[A-Za-z0-9._-]{{1,{LIMITS.max_id_chars}}}")
#: A FHIR resource type (``MedicationRequest``) or a MIME type (``application/hl7-cda+xml``).
RESOURCE_CLASS: Final = re.compile(r"[A-Z][A-Za-z]{1,63}|[a-z]{1,20}/[a-z0-9][a-z0-9.+-]{0,59}")
#: ``system|code``: an absolute URI without ``|`` or spaces, and a code without spaces.
CODING: Final = re.compile(
    r"[a-z][a-z0-9+.-]*:[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+"
    rf"\|[A-Za-z0-9._:/-]{{1,{LIMITS.max_code_chars}}}"
)


#: LOINC 59284-0 "Patient Consent", the category of most HL7 examples.
PATIENT_CONSENT: Final = "http://loinc.org|59284-0"


def _bad(parameter: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{parameter}: {rule}", parameter=parameter)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_coding(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= LIMITS.max_coding_chars
        and CODING.fullmatch(value) is not None
    )


def _is_did(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and is_did_key(value)


def _tuple_of(name: str, value: object) -> tuple[object, ...]:
    """A list or tuple of at most ``max_items``, as a tuple (a str is not a list)."""
    if not isinstance(value, list | tuple):
        raise _bad(name, "must be a list")
    if len(value) > LIMITS.max_items:
        raise _bad(name, f"at most {LIMITS.max_items} items")
    return tuple(value)


def _unique(name: str, items: tuple[object, ...]) -> None:
    if len(set(items)) != len(items):
        raise _bad(name, "an item is listed twice")


def _codes(name: str, value: object, allowed: frozenset[str] | None) -> frozenset[str]:
    """A set of codes from ``allowed`` (or of ``system|code`` codings when ``allowed`` is None)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise _bad(name, "must be a set of codes")
    items = tuple(value)
    if len(items) > LIMITS.max_items:
        raise _bad(name, f"at most {LIMITS.max_items} items")
    for item in items:
        if allowed is None:
            if not _is_coding(item):
                raise _bad(name, "each item must be a coding 'system|code'")
        elif not isinstance(item, str) or item not in allowed:
            raise _bad(name, f"each item must be one of {', '.join(sorted(allowed))}")
    return frozenset(items)


@dataclass(frozen=True, slots=True)
class Period:
    """An interval of instants in ms: ``start_ms`` inclusive, ``end_ms`` exclusive.

    Either side may be open (None), not both; a closed period is not empty.
    """

    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        for name in ("start_ms", "end_ms"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and MIN_TIME_MS <= value <= MAX_TIME_MS):
                raise _bad(name, f"must be an integer in {MIN_TIME_MS}..{MAX_TIME_MS} or null")
        if self.start_ms is None and self.end_ms is None:
            raise _bad("start_ms", "a period states a start, an end or both")
        if self.start_ms is not None and self.end_ms is not None and self.start_ms >= self.end_ms:
            raise _bad("end_ms", "must be after start_ms")
        if self.start_ms == MAX_TIME_MS:
            raise _bad("start_ms", "must be before the year 10000")

    def contains(self, instant_ms: int) -> bool:
        return (self.start_ms is None or self.start_ms <= instant_ms) and (
            self.end_ms is None or instant_ms < self.end_ms
        )

    def to_json(self) -> JSONObject:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms}


@dataclass(frozen=True, slots=True)
class DataRef:
    """A record a provision is about: ``reference`` is ``<ResourceType>/<record_id>``."""

    meaning: str
    reference: str

    def __post_init__(self) -> None:
        if not isinstance(self.meaning, str) or self.meaning not in DATA_MEANINGS:
            raise _bad("meaning", f"must be one of {', '.join(sorted(DATA_MEANINGS))}")
        if not isinstance(self.reference, str) or not RECORD_REF.fullmatch(self.reference):
            raise _bad("reference", "must be '<ResourceType>/<record id>'")

    def to_json(self) -> JSONObject:
        return {"meaning": self.meaning, "reference": self.reference}


@dataclass(frozen=True, slots=True)
class ActorRule:
    """Who a provision is about, by ``role`` (``vocab.ACTOR_ROLES``).

    A recipient role (PRCP, IRCP, DELEGATEE, GRANTEE) is matched against the requester:
    ``reference`` is a participant DID, or an organization DID meaning the organization and its
    practitioners; ``practitioner_role`` is "any practitioner with this role", within the
    organization ``reference`` names if both are given. At least one of the two.

    A record role (CST custodian, AUT author, INF informant) is matched against the record and
    names a DID only (``reference``): we know no roles of a record's author.
    """

    role: str
    reference: str | None = None
    practitioner_role: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or self.role not in ACTOR_ROLES:
            raise _bad("role", f"must be one of {', '.join(sorted(ACTOR_ROLES))}")
        if self.reference is not None and not _is_did(self.reference):
            raise _bad("reference", "must be an Ed25519 did:key or null")
        if self.practitioner_role is not None and (
            not isinstance(self.practitioner_role, str)
            or self.practitioner_role not in practitioner_roles()
        ):
            allowed = ", ".join(sorted(practitioner_roles()))
            raise _bad("practitioner_role", f"must be one of {allowed} or null")
        if self.reference is None and self.practitioner_role is None:
            raise _bad("reference", "an actor names a reference, a practitioner_role or both")
        if self.kind != RECIPIENT and (self.reference is None or self.practitioner_role):
            raise _bad("practitioner_role", f"a {self.role} actor names a reference DID only")

    @property
    def kind(self) -> str:
        """What the rule is matched against: recipient, custodian or author."""
        return ACTOR_ROLES[self.role][2]

    def to_json(self) -> JSONObject:
        return {
            "role": self.role,
            "reference": self.reference,
            "practitioner_role": self.practitioner_role,
        }


_Kind = type[ActorRule] | type[DataRef]


@dataclass(frozen=True, slots=True)
class Provision:
    """One rule of a consent (FHIR R4 ``Consent.provision``): constraints, a type, exceptions.

    Each constraint stated must match for the provision to apply; an empty one matches anything
    (security labels excepted for permits: see ADR 0013). ``type`` None decides nothing by
    itself. ``provisions`` are exceptions, considered only where this provision applies.
    """

    type: ProvisionType | None = None
    period: Period | None = None
    actors: tuple[ActorRule, ...] = ()
    actions: frozenset[str] = frozenset()
    security_labels: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    data_period: Period | None = None
    data: tuple[DataRef, ...] = ()
    provisions: tuple[Provision, ...] = ()
    #: Levels of this provision and its exceptions (1 without exceptions).
    depth: int = field(init=False, repr=False, compare=False)
    #: Provisions in this subtree, itself included.
    size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in PROVISION_TYPES:
            raise _bad("type", "must be permit, deny or null")
        for name in ("period", "data_period"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Period):
                raise _bad(name, "must be a Period or null")
        self._set("actors", self._items("actors", ActorRule))
        self._set("actions", _codes("actions", self.actions, ACTIONS))
        self._set(
            "security_labels", _codes("security_labels", self.security_labels, SECURITY_LABELS)
        )
        self._set("purposes", _codes("purposes", self.purposes, PURPOSES))
        self._set("classes", self._classes())
        self._set("codes", _codes("codes", self.codes, None))
        self._set("data", self._items("data", DataRef))
        children = _tuple_of("provisions", self.provisions)
        if not all(isinstance(child, Provision) for child in children):
            raise _bad("provisions", "must hold provisions")
        self._set("provisions", children)
        depth = 1 + max((child.depth for child in self.provisions), default=0)
        size = 1 + sum(child.size for child in self.provisions)
        if depth > LIMITS.max_depth:
            raise _bad("provisions", f"at most {LIMITS.max_depth} levels of nesting")
        if size > LIMITS.max_provisions:
            raise _bad("provisions", f"at most {LIMITS.max_provisions} provisions in a consent")
        self._set("depth", depth)
        self._set("size", size)

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _items(self, name: str, kind: _Kind) -> tuple[object, ...]:
        items = _tuple_of(name, getattr(self, name))
        if not all(isinstance(item, kind) for item in items):
            raise _bad(name, f"must hold {kind.__name__} values")
        _unique(name, items)
        return items

    def _classes(self) -> frozenset[str]:
        value: object = self.classes
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise _bad("classes", "must be a set of resource types")
        items = tuple(value)
        if len(items) > LIMITS.max_items:
            raise _bad("classes", f"at most {LIMITS.max_items} items")
        if not all(isinstance(i, str) and RESOURCE_CLASS.fullmatch(i) for i in items):
            raise _bad("classes", "each item must be a FHIR resource type or a MIME type")
        return frozenset(items)

    def walk(self, path: str = "provision") -> Iterator[tuple[str, Provision]]:
        """This provision and every exception below it, with their paths, depth first."""
        yield path, self
        for i, child in enumerate(self.provisions):
            yield from child.walk(f"{path}.provision[{i}]")

    def to_json(self) -> JSONObject:
        return {
            "type": self.type,
            "period": None if self.period is None else self.period.to_json(),
            "actors": [actor.to_json() for actor in self.actors],
            "actions": sorted(self.actions),
            "security_labels": sorted(self.security_labels),
            "purposes": sorted(self.purposes),
            "classes": sorted(self.classes),
            "codes": sorted(self.codes),
            "data_period": None if self.data_period is None else self.data_period.to_json(),
            "data": [ref.to_json() for ref in self.data],
            "provisions": [child.to_json() for child in self.provisions],
        }


@dataclass(frozen=True, slots=True)
class Consent:
    """One patient consent: who it is for, its status and scope, and its rule tree.

    ``categories`` (at least one, as FHIR R4 requires; LOINC "Patient consent" unless said)
    and ``policy_rule`` are codings (``system|code``); ``performers`` and
    ``organizations`` are DIDs (who gave the consent, who manages it); ``date_time_ms`` is when
    it was given. None of them takes part in a decision except ``patient`` and ``status``.
    """

    consent_id: str
    patient: str
    status: str
    scope: str
    categories: tuple[str, ...] = (PATIENT_CONSENT,)
    performers: tuple[str, ...] = ()
    organizations: tuple[str, ...] = ()
    policy_rule: str | None = None
    date_time_ms: int | None = None
    provision: Provision | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.consent_id, str) or not CONSENT_ID.fullmatch(self.consent_id):
            raise _bad("consent_id", f"must match {CONSENT_ID.pattern}")
        if not _is_did(self.patient):
            raise _bad("patient", "must be an Ed25519 did:key")
        if not isinstance(self.status, str) or self.status not in STATUSES:
            raise _bad("status", f"must be one of {', '.join(sorted(STATUSES))}")
        if not isinstance(self.scope, str) or self.scope not in SCOPES:
            raise _bad("scope", f"must be one of {', '.join(sorted(SCOPES))}")
        categories = _tuple_of("categories", self.categories)
        if not all(_is_coding(c) for c in categories):
            raise _bad("categories", "each item must be a coding 'system|code'")
        if not categories:
            raise _bad("categories", "a consent has at least one category (FHIR R4: 1..*)")
        _unique("categories", categories)
        object.__setattr__(self, "categories", categories)
        for name in ("performers", "organizations"):
            dids = _tuple_of(name, getattr(self, name))
            if not all(_is_did(d) for d in dids):
                raise _bad(name, "each item must be an Ed25519 did:key")
            _unique(name, dids)
            object.__setattr__(self, name, dids)
        if self.policy_rule is not None and not _is_coding(self.policy_rule):
            raise _bad("policy_rule", "must be a coding 'system|code' or null")
        if self.date_time_ms is not None and not (
            _is_int(self.date_time_ms) and MIN_TIME_MS <= self.date_time_ms < MAX_TIME_MS
        ):
            raise _bad("date_time_ms", "must be an instant in ms or null")
        if self.provision is not None and not isinstance(self.provision, Provision):
            raise _bad("provision", "must be a Provision or null")

    def provisions(self) -> Iterator[tuple[str, Provision]]:
        """Every provision with its path (``provision``, ``provision.provision[1]`` ...)."""
        if self.provision is not None:
            yield from self.provision.walk()

    def to_json(self) -> JSONObject:
        return {
            "consent_id": self.consent_id,
            "patient": self.patient,
            "status": self.status,
            "scope": self.scope,
            "categories": list(self.categories),
            "performers": list(self.performers),
            "organizations": list(self.organizations),
            "policy_rule": self.policy_rule,
            "date_time_ms": self.date_time_ms,
            "provision": None if self.provision is None else self.provision.to_json(),
        }


# --- parsing the policy JSON -------------------------------------------------------------------

_CONSENT_FIELDS: Final = tuple(Consent.__dataclass_fields__)
_PROVISION_FIELDS: Final = tuple(
    name for name, f in Provision.__dataclass_fields__.items() if f.init
)
_ACTOR_FIELDS: Final = tuple(ActorRule.__dataclass_fields__)
_PERIOD_FIELDS: Final = tuple(Period.__dataclass_fields__)
_DATA_FIELDS: Final = tuple(DataRef.__dataclass_fields__)
_CODE_LISTS: Final = ("actions", "security_labels", "purposes", "classes", "codes")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@contextmanager
def _under(prefix: str) -> Iterator[None]:
    """Re-raise a constructor's ``InvalidInputError`` with its parameter under ``prefix``."""
    try:
        yield
    except InvalidInputError as e:
        parameter = _join(prefix, e.parameter or "")
        raise InvalidInputError(
            f"{prefix}.{e}" if prefix else str(e), parameter=parameter
        ) from None


def _fields(value: object, path: str, names: tuple[str, ...]) -> Mapping[str, object]:
    """A JSON object with exactly the fields ``names``: none missing, none unknown."""
    if not isinstance(value, Mapping):
        raise _bad(path or "consent", "must be an object")
    for name in value:
        if name not in names:
            shown = name[:40] if isinstance(name, str) else "?"
            raise _bad(_join(path, shown), "unknown field")
    for name in names:
        if name not in value:
            raise _bad(_join(path, name), "missing")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise _bad(path, "must be a list")
    if len(value) > LIMITS.max_items:
        raise _bad(path, f"at most {LIMITS.max_items} items")
    return value


def _period(value: object, path: str) -> Period | None:
    if value is None:
        return None
    obj = _fields(value, path, _PERIOD_FIELDS)
    with _under(path):
        return Period(obj["start_ms"], obj["end_ms"])  # type: ignore[arg-type]


def _actor(value: object, path: str) -> ActorRule:
    obj = _fields(value, path, _ACTOR_FIELDS)
    with _under(path):
        return ActorRule(obj["role"], obj["reference"], obj["practitioner_role"])  # type: ignore[arg-type]


def _data(value: object, path: str) -> DataRef:
    obj = _fields(value, path, _DATA_FIELDS)
    with _under(path):
        return DataRef(obj["meaning"], obj["reference"])  # type: ignore[arg-type]


def _code_list(obj: Mapping[str, object], name: str, path: str) -> frozenset[str]:
    items = _list(obj[name], _join(path, name))
    if not all(isinstance(item, str) for item in items):
        raise _bad(_join(path, name), "must hold only strings")
    _unique(_join(path, name), tuple(items))
    return frozenset(items)  # type: ignore[arg-type]  # all str, checked above


def _provision(value: object, path: str, depth: int, seen: list[int]) -> Provision:
    """One provision and its exceptions.

    Depth and count are checked before recursing further (``seen`` counts the provisions read
    so far), so a hostile document costs at most ``max_provisions`` provisions of work.
    """
    obj = _fields(value, path, _PROVISION_FIELDS)
    seen[0] += 1
    if seen[0] > LIMITS.max_provisions:
        raise _bad(path, f"at most {LIMITS.max_provisions} provisions in a consent")
    children = _list(obj["provisions"], f"{path}.provisions")
    if children and depth >= LIMITS.max_depth:
        raise _bad(f"{path}.provisions", f"at most {LIMITS.max_depth} levels of nesting")
    parsed = tuple(
        _provision(child, f"{path}.provisions[{i}]", depth + 1, seen)
        for i, child in enumerate(children)
    )
    actors = tuple(
        _actor(a, f"{path}.actors[{i}]")
        for i, a in enumerate(_list(obj["actors"], f"{path}.actors"))
    )
    data = tuple(
        _data(d, f"{path}.data[{i}]") for i, d in enumerate(_list(obj["data"], f"{path}.data"))
    )
    period = _period(obj["period"], f"{path}.period")
    data_period = _period(obj["data_period"], f"{path}.data_period")
    sets = {name: _code_list(obj, name, path) for name in _CODE_LISTS}
    with _under(path):
        return Provision(
            type=obj["type"],  # type: ignore[arg-type]  # checked by the constructor
            period=period,
            actors=actors,
            actions=sets["actions"],
            security_labels=sets["security_labels"],
            purposes=sets["purposes"],
            classes=sets["classes"],
            codes=sets["codes"],
            data_period=data_period,
            data=data,
            provisions=parsed,
        )


def parse_consent(obj: Mapping[str, object]) -> Consent:
    """The policy JSON of one consent, read strictly; ``InvalidInputError`` naming the path.

    Every field of ``Consent.to_json`` must be present (null or [] when empty), and no other.
    """
    fields = _fields(obj, "", _CONSENT_FIELDS)
    provision = None
    if fields["provision"] is not None:
        provision = _provision(fields["provision"], "provision", 1, [0])
    lists = {}
    for name in ("categories", "performers", "organizations"):
        lists[name] = tuple(_list(fields[name], name))
    with _under(""):
        return Consent(
            consent_id=fields["consent_id"],  # type: ignore[arg-type]  # checked by Consent
            patient=fields["patient"],  # type: ignore[arg-type]
            status=fields["status"],  # type: ignore[arg-type]
            scope=fields["scope"],  # type: ignore[arg-type]
            categories=lists["categories"],  # type: ignore[arg-type]
            performers=lists["performers"],  # type: ignore[arg-type]
            organizations=lists["organizations"],  # type: ignore[arg-type]
            policy_rule=fields["policy_rule"],  # type: ignore[arg-type]
            date_time_ms=fields["date_time_ms"],  # type: ignore[arg-type]
            provision=provision,
        )
