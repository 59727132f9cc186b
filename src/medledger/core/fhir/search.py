"""FHIR R4 search: which parameters each type has, their values extracted from a resource,
and a search query parsed with a limit on every size (FHIR R4 §3.1.1 "Search").

- ``extract``: a resource's index rows ``(name, value, low, high)``: tokens as ``code`` and
  ``system|code``; strings case-folded; references as ``Type/id`` and ``id``; dates as the
  millisecond range they cover (a date is its whole day, a month its whole month ...).
- ``parse_query``: ``(name, value)`` pairs (from a query string or a ``_search`` form) into a
  ``SearchQuery``: AND across parameters, OR across comma-separated values; unknown
  parameters and modifiers are refused (400), never ignored (ignoring one would widen results).
Rows are PHI (names, birth dates): the index that keeps them is node-local, never on the
ledger, never logged, erased with the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from medledger.errors import InvalidInputError

Kind = Literal["token", "string", "date", "reference"]
Prefix = Literal["eq", "ne", "lt", "le", "gt", "ge"]

#: Limits on what a query may ask (each is untrusted input).
MAX_PARAMETERS: Final = 32
MAX_VALUE_CHARS: Final = 256
MAX_OR_VALUES: Final = 20
MAX_INCLUDES: Final = 4
DEFAULT_COUNT: Final = 20
MAX_COUNT: Final = 100
#: Matches examined per search (before access decisions); a search matching more is refused
#: with advice to narrow it, so that a total never depends on a silent truncation.
MAX_CANDIDATES: Final = 1000
#: Rows extracted per resource, and characters kept per value.
MAX_ROWS: Final = 256
_MAX_ROW_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class Param:
    kind: Kind
    paths: tuple[str, ...]


def _p(kind: Kind, *paths: str) -> Param:
    return Param(kind, paths)


_SUBJECT = {"patient": _p("reference", "subject"), "subject": _p("reference", "subject")}
#: Every stored type has ``identifier`` (FHIR R4): what conditional interactions match on.
_IDENTIFIER = {"identifier": _p("token", "identifier")}
_CLINICAL_DATE = ("effectiveDateTime", "effectivePeriod", "effectiveInstant")
PARAMETERS: Final[Mapping[str, Mapping[str, Param]]] = {
    "Patient": {
        "identifier": _p("token", "identifier"),
        "name": _p("string", "name.family", "name.given", "name.text", "name.prefix"),
        "family": _p("string", "name.family"),
        "given": _p("string", "name.given"),
        "birthdate": _p("date", "birthDate"),
        "gender": _p("token", "gender"),
    },
    "Observation": {
        **_SUBJECT,
        **_IDENTIFIER,
        "code": _p("token", "code"),
        "category": _p("token", "category"),
        "date": _p("date", *_CLINICAL_DATE),
        "status": _p("token", "status"),
    },
    "Condition": {
        **_SUBJECT,
        **_IDENTIFIER,
        "code": _p("token", "code"),
        "category": _p("token", "category"),
        "clinical-status": _p("token", "clinicalStatus"),
        "onset-date": _p("date", "onsetDateTime", "onsetPeriod"),
        "recorded-date": _p("date", "recordedDate"),
    },
    "MedicationRequest": {
        **_SUBJECT,
        **_IDENTIFIER,
        "code": _p("token", "medicationCodeableConcept"),
        "status": _p("token", "status"),
        "intent": _p("token", "intent"),
        "authoredon": _p("date", "authoredOn"),
    },
    "AllergyIntolerance": {
        "patient": _p("reference", "patient"),
        **_IDENTIFIER,
        "code": _p("token", "code"),
        "clinical-status": _p("token", "clinicalStatus"),
        "category": _p("token", "category"),
        "criticality": _p("token", "criticality"),
        "date": _p("date", "recordedDate"),
    },
    "Encounter": {
        **_SUBJECT,
        **_IDENTIFIER,
        "status": _p("token", "status"),
        "class": _p("token", "class"),
        "type": _p("token", "type"),
        "date": _p("date", "period"),
    },
    "DiagnosticReport": {
        **_SUBJECT,
        **_IDENTIFIER,
        "code": _p("token", "code"),
        "category": _p("token", "category"),
        "status": _p("token", "status"),
        "date": _p("date", *_CLINICAL_DATE),
    },
    "DocumentReference": {
        **_SUBJECT,
        **_IDENTIFIER,
        "type": _p("token", "type"),
        "category": _p("token", "category"),
        "status": _p("token", "status"),
        "date": _p("date", "date"),
    },
}
#: What ``_include`` / ``_revinclude`` may follow: the reference parameters above.
SORTABLE_SPECIAL: Final = ("_id", "_lastUpdated")
_PREFIXES: Final = ("eq", "ne", "lt", "le", "gt", "ge")


# --- dates ----------------------------------------------------------------------------------
_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<z>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def date_range(text: str) -> tuple[int, int]:
    """The millisecond range ``[low, high]`` a FHIR date/dateTime/instant covers; a value
    without an offset is read as UTC. ``ValueError`` if it is not one."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise ValueError("not a FHIR date")
    year = int(match["y"])
    if match["m"] is None:
        start = datetime(year, 1, 1, tzinfo=UTC)
        return _ms(start), _ms(datetime(year + 1, 1, 1, tzinfo=UTC)) - 1
    month = int(match["m"])
    if match["d"] is None:
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return _ms(start), _ms(end) - 1
    day = datetime(year, month, int(match["d"]), tzinfo=UTC)
    if match["H"] is None:
        return _ms(day), _ms(day + timedelta(days=1)) - 1
    zone = match["z"] or "Z"
    offset = timedelta(0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    start = day.replace(hour=int(match["H"]), minute=int(match["M"])) - offset
    if match["S"] is None:
        return _ms(start), _ms(start + timedelta(minutes=1)) - 1
    start += timedelta(seconds=int(match["S"]))
    if match["f"] is None:
        return _ms(start), _ms(start + timedelta(seconds=1)) - 1
    millis = int((match["f"] + "00")[:3])
    return _ms(start) + millis, _ms(start) + millis


# --- extraction -----------------------------------------------------------------------------
def _walk(node: object, parts: Sequence[str]) -> Iterator[object]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, dict):
        yield from _walk(node.get(parts[0]), parts[1:])


def _tokens(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        if "coding" in node:
            for coding in node.get("coding") or []:
                yield from _tokens(coding)
            return
        code = node.get("code", node.get("value"))
        if isinstance(code, str):
            yield code
            system = node.get("system")
            if isinstance(system, str):
                yield f"{system}|{code}"


def _references(node: object) -> Iterator[str]:
    if isinstance(node, dict) and isinstance(node.get("reference"), str):
        reference = str(node["reference"])
        yield reference
        if "/" in reference:
            yield reference.rsplit("/", 1)[1]


def _dates(node: object) -> Iterator[tuple[int, int]]:
    texts: list[object] = []
    if isinstance(node, str):
        texts.append(node)
    elif isinstance(node, dict):
        low = node.get("start")
        high = node.get("end")
        try:
            start = date_range(low)[0] if isinstance(low, str) else None
            end = date_range(high)[1] if isinstance(high, str) else None
        except ValueError:
            return
        if start is not None or end is not None:
            yield (start if start is not None else -(2**62), end if end is not None else 2**62)
        return
    for text in texts:
        try:
            yield date_range(str(text))
        except ValueError:
            continue


def _values(kind: Kind, node: object) -> Iterator[tuple[str, int | None, int | None]]:
    if kind == "token":
        for token in _tokens(node):
            yield token, None, None
    elif kind == "string":
        if isinstance(node, str):
            yield node.casefold(), None, None
    elif kind == "reference":
        for reference in _references(node):
            yield reference, None, None
    else:
        for low, high in _dates(node):
            yield "", low, high


def extract(resource: Mapping[str, Any]) -> list[tuple[str, str, int | None, int | None]]:
    """A resource's index rows (at most ``MAX_ROWS``; values cut to 256 characters)."""
    params = PARAMETERS.get(str(resource.get("resourceType")), {})
    rows: dict[tuple[str, str, int | None, int | None], None] = {}
    for name, param in params.items():
        for path in param.paths:
            for node in _walk(resource, path.split(".")):
                for value, low, high in _values(param.kind, node):
                    rows[(name, value[:_MAX_ROW_CHARS], low, high)] = None
                    if len(rows) >= MAX_ROWS:
                        return list(rows)
    return list(rows)


# --- queries --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Clause:
    """One parameter: ``values`` OR-ed. For dates each value is ``(prefix, low, high)``."""

    name: str
    kind: Kind | Literal["_id", "_lastUpdated"]
    exact: bool
    raw: str
    values: tuple[str, ...] = ()
    ranges: tuple[tuple[Prefix, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:param`` (follow a reference out) or ``_revinclude`` (in)."""

    source_type: str
    param: str
    reverse: bool


@dataclass(frozen=True, slots=True)
class SearchQuery:
    resource_type: str
    clauses: tuple[Clause, ...] = ()
    sort: tuple[tuple[str, bool], ...] = ()  # (key, descending)
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: tuple[Include, ...] = ()
    total: bool = True

    def link_params(self, offset: int) -> list[tuple[str, str]]:
        """The query string of a paging link: the query as parsed, at ``offset``."""
        out: list[tuple[str, str]] = []
        for clause in self.clauses:
            out.append((clause.name + (":exact" if clause.exact else ""), clause.raw))
        if self.sort:
            out.append(("_sort", ",".join(("-" if d else "") + k for k, d in self.sort)))
        for inc in self.includes:
            out.append(
                ("_revinclude" if inc.reverse else "_include", f"{inc.source_type}:{inc.param}")
            )
        out.append(("_count", str(self.count)))
        out.append(("_offset", str(offset)))
        return out


def _bad(parameter: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{parameter}: {rule}", parameter=parameter)


def _int(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise _bad(name, f"an integer in {low}..{high}")
    return int(text)


def _date_values(name: str, texts: Sequence[str]) -> tuple[tuple[Prefix, int, int], ...]:
    out: list[tuple[Prefix, int, int]] = []
    for raw in texts:
        prefix: Prefix = "eq"
        text = raw
        if raw[:2] in _PREFIXES:
            prefix, text = raw[:2], raw[2:]  # type: ignore[assignment]
        try:
            low, high = date_range(text)
        except ValueError:
            raise _bad(name, "a FHIR date, optionally prefixed eq/ne/lt/le/gt/ge") from None
        out.append((prefix, low, high))
    return tuple(out)


def _include(name: str, text: str, resource_type: str, reverse: bool) -> Include:
    source, _, param = text.partition(":")
    target_params = PARAMETERS.get(source, {})
    spec = target_params.get(param)
    if spec is None or spec.kind != "reference":
        raise _bad(name, "Type:parameter naming a reference search parameter")
    if not reverse and source != resource_type:
        raise _bad(name, "an _include names the searched type")
    if reverse and resource_type != "Patient":
        raise _bad(name, "_revinclude follows references to a Patient")
    return Include(source, param, reverse)


@dataclass
class _Building:
    clauses: list[Clause]
    sort: list[tuple[str, bool]]
    includes: list[Include]
    count: int = DEFAULT_COUNT
    offset: int = 0
    total: bool = True


def _control(
    b: _Building, name: str, value: str, resource_type: str, params: Mapping[str, Param]
) -> bool:
    """A result parameter (``_count``, ``_sort`` ...); False if ``name`` is not one."""
    if name == "_count":
        b.count = _int(name, value, 0, MAX_COUNT)
    elif name == "_offset":
        b.offset = _int(name, value, 0, MAX_CANDIDATES)
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise _bad(name, "none, estimate or accurate")
        b.total = value != "none"
    elif name == "_sort":
        for key in value.split(",")[:MAX_OR_VALUES]:
            bare = key.removeprefix("-")
            spec = params.get(bare)
            if bare not in SORTABLE_SPECIAL and (spec is None or spec.kind != "date"):
                raise _bad(name, "_id, _lastUpdated or a date parameter")
            b.sort.append((bare, key.startswith("-")))
    elif name in ("_include", "_revinclude"):
        if len(b.includes) >= MAX_INCLUDES:
            raise _bad(name, f"at most {MAX_INCLUDES} includes")
        b.includes.append(_include(name, value, resource_type, name == "_revinclude"))
    elif name not in ("_format", "_pretty"):  # presentation only: always JSON, in full
        return False
    return True


def parse_query(resource_type: str, items: Iterable[tuple[str, str]]) -> SearchQuery:
    """``(name, value)`` pairs into a ``SearchQuery`` (module docstring)."""
    params = PARAMETERS.get(resource_type)
    if params is None:
        raise _bad("type", "not a searchable type")
    b = _Building([], [], [])
    for raw_name, value in _bounded(items):
        name, _, modifier = raw_name.partition(":")
        if not value:
            raise _bad(name or "parameter", "an empty value")
        if not modifier and _control(b, name, value, resource_type, params):
            continue
        if name in ("_id", "_lastUpdated"):
            if modifier:
                raise _bad(name, "no modifiers")
            special: Literal["_id", "_lastUpdated"] = "_id" if name == "_id" else "_lastUpdated"
            b.clauses.append(_clause(name, special, value))
            continue
        spec = params.get(name)
        if spec is None:
            raise _bad(name, f"not a search parameter of {resource_type}")
        if modifier not in ("", "exact") or (modifier and spec.kind != "string"):
            raise _bad(name, "unsupported modifier")
        b.clauses.append(_clause(name, spec.kind, value, exact=modifier == "exact"))
    return SearchQuery(
        resource_type,
        tuple(b.clauses),
        tuple(b.sort),
        b.count,
        b.offset,
        tuple(b.includes),
        b.total,
    )


def parse_condition(resource_type: str, items: Iterable[tuple[str, str]]) -> SearchQuery:
    """The search of a conditional create, update or delete (FHIR R4 §3.1.0.8, §3.1.0.4.3,
    §3.1.0.7.1): search parameters only, at least one (an empty condition would select
    everything); result parameters (``_count``, ``_sort``, ``_include`` ...) are refused."""
    pairs = list(_bounded(items))
    query = parse_query(resource_type, pairs)
    for name, _ in pairs:
        if name.partition(":")[0] not in ("_id", "_lastUpdated") and name.startswith("_"):
            raise _bad(name[:64], "a condition takes search parameters only")
    if not query.clauses:
        raise _bad("condition", "at least one search parameter")
    return query


def _bounded(items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for n, (name, value) in enumerate(items):
        if n >= MAX_PARAMETERS:
            raise _bad("query", f"at most {MAX_PARAMETERS} parameters")
        if len(name) > 64 or len(value) > MAX_VALUE_CHARS:
            raise _bad(name[:64], f"at most {MAX_VALUE_CHARS} characters")
        yield name, value


def _clause(
    name: str, kind: Kind | Literal["_id", "_lastUpdated"], value: str, *, exact: bool = False
) -> Clause:
    texts = value.split(",")
    if len(texts) > MAX_OR_VALUES:
        raise _bad(name, f"at most {MAX_OR_VALUES} values")
    if kind in ("date", "_lastUpdated"):
        return Clause(name, kind, exact, value, ranges=_date_values(name, texts))
    if kind == "string":
        texts = [t.casefold() for t in texts]
    if kind == "reference":
        texts = [t if "/" in t or name != "patient" else f"Patient/{t}" for t in texts]
    return Clause(name, kind, exact, value, values=tuple(texts))
