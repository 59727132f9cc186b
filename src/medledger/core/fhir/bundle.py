"""Transaction and batch Bundles (FHIR R4 §3.1.0.11 "transaction"): parsed with limits, and
``urn:uuid`` references resolved to the ids the server assigns.

``parse_bundle``: a ``Bundle`` of type ``transaction`` or ``batch``, at most ``MAX_ENTRIES``
entries, each with a ``request``:
- ``POST Type`` (create; ``ifNoneExist``: a conditional create, §3.1.0.8),
- ``PUT Type/id`` (update; ``ifMatch``) or ``PUT Type?search`` (conditional update, §3.1.0.4.3),
- ``DELETE Type/id`` or ``DELETE Type?search`` (conditional delete, §3.1.0.7.1),
- ``GET``/``HEAD Type/id`` (read; ``ifNoneMatch``, ``ifModifiedSince``), ``Type/id/_history/v``
  (vread) or ``Type?search`` (search).
Conditions are kept as ``(name, value)`` pairs, bounded like a search (``MAX_PARAMETERS``);
what they mean is the search parser's business. ``resolve_references``: every entry that
creates or matched a resource gets its id (a fresh one, or the one its condition matched), and
every ``reference`` equal to a ``urn:uuid`` ``fullUrl`` anywhere in the Bundle becomes
``Type/id`` (§3.1.0.11.2); a ``urn:uuid`` no entry defines is refused, so no dangling reference
is stored. ``ORDER``: the order a transaction processes its entries in (§3.1.0.11.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from medledger.core.fhir.resource import check_id
from medledger.core.fhir.search import MAX_PARAMETERS, date_range
from medledger.errors import InvalidInputError

Method = Literal["POST", "PUT", "DELETE", "GET", "HEAD"]
Kind = Literal["transaction", "batch"]
Condition = tuple[tuple[str, str], ...]
MAX_ENTRIES: Final = 100
MAX_URL_CHARS: Final = 2048
#: A transaction's processing order (FHIR R4 §3.1.0.11.2): deletes, creates, updates, reads.
ORDER: Final[Mapping[str, int]] = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
_URN: Final = re.compile(r"urn:uuid:[0-9a-fA-F-]{36}")
_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry's request. ``condition``: the search of a conditional create (``ifNoneExist``),
    update or delete; ``query``: a GET search's parameters; ``version``: a vread's."""

    index: int
    method: Method
    resource_type: str
    record_id: str | None
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: int | None
    condition: Condition | None = None
    query: Condition | None = None
    version: int | None = None
    if_none_match: int | None = None
    if_modified_since_ms: int | None = None


def _bad(path: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {rule}", parameter=path)


def _etag(value: object, path: str) -> int | None:
    if value is None:
        return None
    bare = str(value).strip().removeprefix("W/").strip('"')
    if not bare.isdigit() or len(bare) > 12:
        raise _bad(path, 'W/"<versionId>"')
    return int(bare)


def parse_condition_string(text: str, path: str) -> Condition:
    """``name=value&...`` (a query string, percent-decoded), bounded; at least one pair."""
    if len(text) > MAX_URL_CHARS:
        raise _bad(path, f"at most {MAX_URL_CHARS} characters")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
    except ValueError as e:  # more than MAX_PARAMETERS
        raise _bad(path, f"at most {MAX_PARAMETERS} search parameters") from e
    if not pairs:
        raise _bad(path, "a search (name=value&...)")
    return tuple(pairs)


def _since(value: object, path: str) -> int | None:
    if value is None:
        return None
    try:
        return date_range(str(value))[1]  # the last ms it names: "not modified since" holds
        # for a resource last updated within that second
    except ValueError:
        raise _bad(path, "a FHIR instant") from None


def _target(url: str, path: str) -> tuple[str, str, str | None]:
    """``Type``, ``Type/id[/_history/v]`` or ``Type?query``: (type, rest of the path, query)."""
    if len(url) > MAX_URL_CHARS:
        raise _bad(path, f"at most {MAX_URL_CHARS} characters")
    location, mark, query = url.partition("?")
    type_part, _, rest = location.partition("/")
    if not _TYPE.fullmatch(type_part):
        raise _bad(path, "a relative URL: Type, Type/id or Type?search")
    return type_part, rest, query if mark else None


def _request(index: int, raw: Mapping[str, Any]) -> Entry:
    path = f"Bundle.entry[{index}].request"
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ORDER or not isinstance(url, str):
        raise _bad(path, "method GET, HEAD, POST, PUT or DELETE with a url")
    resource_type, rest, query = _target(url, f"{path}.url")
    entry = Entry(index, method, resource_type, None, None, None,
                  _etag(request.get("ifMatch"), f"{path}.ifMatch"))  # fmt: skip
    if method in ("GET", "HEAD"):
        return _read(entry, rest, query, request, path)
    if method == "POST":
        if rest or query is not None:
            raise _bad(f"{path}.url", "POST takes Type (operations are not offered)")
        if_none_exist = request.get("ifNoneExist")
        if if_none_exist is None:
            return entry
        if not isinstance(if_none_exist, str):
            raise _bad(f"{path}.ifNoneExist", "a search (name=value&...)")
        text = if_none_exist.partition("?")[2] if "?" in if_none_exist else if_none_exist
        return replace(entry, condition=parse_condition_string(text, f"{path}.ifNoneExist"))
    if query is not None:
        if rest:
            raise _bad(f"{path}.url", "Type?search or Type/id, not both")
        return replace(entry, condition=parse_condition_string(query, f"{path}.url"))
    if not rest or "/" in rest:
        raise _bad(f"{path}.url", "Type/id or Type?search for PUT and DELETE")
    return replace(entry, record_id=check_id(rest, f"{path}.url"))


def _read(
    entry: Entry, rest: str, query: str | None, request: Mapping[str, Any], path: str
) -> Entry:
    """GET/HEAD: a read, a vread or a search."""
    entry = replace(
        entry,
        if_none_match=_etag(request.get("ifNoneMatch"), f"{path}.ifNoneMatch"),
        if_modified_since_ms=_since(request.get("ifModifiedSince"), f"{path}.ifModifiedSince"),
    )
    if not rest:
        searched = () if query is None or not query else parse_condition_string(query, path)
        return replace(entry, query=searched)
    if query is not None:
        raise _bad(f"{path}.url", "a read takes no parameters")
    record_id, _, history = rest.partition("/")
    check_id(record_id, f"{path}.url")
    if not history:
        return replace(entry, record_id=record_id)
    version = history.removeprefix("_history/")
    if version == history or not version.isdigit() or len(version) > 12:
        raise _bad(f"{path}.url", "Type/id or Type/id/_history/version")
    return replace(entry, record_id=record_id, version=int(version))


def _entry(index: int, raw: object) -> Entry:
    path = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _bad(f"{path}.request", "each entry needs a request")
    entry = _request(index, raw)
    resource = raw.get("resource")
    if entry.method in ("POST", "PUT"):
        if not isinstance(resource, dict):
            raise _bad(f"{path}.resource", "POST and PUT entries carry a resource")
        if resource.get("resourceType") != entry.resource_type:
            raise _bad(f"{path}.resource.resourceType", "must be the type in the request url")
    else:
        resource = None
    full_url = raw.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise _bad(f"{path}.fullUrl", "a URI")
    return replace(entry, resource=resource, full_url=full_url)


def parse_bundle(value: object) -> tuple[Kind, list[Entry]]:
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise _bad("Bundle", "POST to the base takes a Bundle")
    kind = value.get("type")
    if kind not in ("transaction", "batch"):
        raise _bad("Bundle.type", "transaction or batch")
    entries = value.get("entry") or []
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise _bad("Bundle.entry", f"a list of at most {MAX_ENTRIES} entries")
    return kind, [_entry(i, raw) for i, raw in enumerate(entries)]


def _rewrite(node: object, mapping: Mapping[str, str], path: str) -> object:
    if isinstance(node, list):
        return [_rewrite(item, mapping, path) for item in node]
    return _rewrite_object(node, mapping, path) if isinstance(node, dict) else node


def _rewrite_object(
    node: Mapping[str, object], mapping: Mapping[str, str], path: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in node.items():
        if key == "reference" and isinstance(item, str) and item.startswith("urn:uuid:"):
            if item not in mapping:
                raise _bad(path, "a urn:uuid reference no entry of the Bundle defines")
            out[key] = mapping[item]
        else:
            out[key] = _rewrite(item, mapping, path)
    return out


def resolve_references(
    entries: list[Entry],
    new_id: Callable[[], str],
    matched: Mapping[int, str | None] | None = None,
) -> list[Entry]:
    """Ids for the entries that create or matched a resource; ``urn:uuid`` references
    rewritten to them. ``matched``: per conditional entry (by index), the id its condition
    selected, or None when it selected nothing (a create gets a fresh id then)."""
    matched = matched or {}
    mapping: dict[str, str] = {}
    assigned: list[Entry] = []
    for entry in entries:
        record_id = entry.record_id
        if entry.index in matched:
            record_id = matched[entry.index]
            if record_id is None and entry.method in ("POST", "PUT"):
                record_id = new_id()
        elif entry.method == "POST":
            record_id = new_id()
        if (
            record_id is not None
            and entry.method in ("POST", "PUT")
            and entry.full_url is not None
            and _URN.fullmatch(entry.full_url)
        ):
            if entry.full_url in mapping:
                raise _bad(f"Bundle.entry[{entry.index}].fullUrl", "a unique urn:uuid")
            mapping[entry.full_url] = f"{entry.resource_type}/{record_id}"
        assigned.append(replace(entry, record_id=record_id))
    return [
        entry
        if entry.resource is None
        else replace(
            entry,
            resource=_rewrite_object(
                entry.resource, mapping, f"Bundle.entry[{entry.index}].resource"
            ),
        )
        for entry in assigned
    ]
