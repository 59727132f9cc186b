"""Transaction and batch Bundles (FHIR R4 §3.1.0.11 "transaction"): parsed with limits, and
``urn:uuid`` references resolved to the ids the server assigns.

``parse_bundle``: a ``Bundle`` of type ``transaction`` or ``batch``, at most ``MAX_ENTRIES``
entries, each with ``request.method`` POST (create), PUT (update, ``Type/id``) or DELETE
(``Type/id``), and ``request.ifMatch`` optionally. ``resolve_references``: every POST entry
whose ``fullUrl`` is ``urn:uuid:...`` gets its id now, and every ``reference`` equal to that
``fullUrl`` anywhere in the Bundle becomes ``Type/id`` (§3.1.0.11.2); a ``urn:uuid`` no entry
defines is refused, so no dangling reference is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from medledger.core.fhir.resource import check_id
from medledger.errors import InvalidInputError

Method = Literal["POST", "PUT", "DELETE"]
Kind = Literal["transaction", "batch"]
MAX_ENTRIES: Final = 100
_URN: Final = re.compile(r"urn:uuid:[0-9a-fA-F-]{36}")
_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    method: Method
    resource_type: str
    record_id: str | None
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: int | None


def _bad(path: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {rule}", parameter=path)


def _if_match(value: object, path: str) -> int | None:
    if value is None:
        return None
    bare = str(value).strip().removeprefix("W/").strip('"')
    if not bare.isdigit() or len(bare) > 12:
        raise _bad(path, 'W/"<versionId>"')
    return int(bare)


def _entry(index: int, raw: object) -> Entry:
    path = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _bad(f"{path}.request", "each entry needs a request")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ("POST", "PUT", "DELETE") or not isinstance(url, str):
        raise _bad(f"{path}.request", "method POST, PUT or DELETE with a url")
    type_part, _, id_part = url.partition("?")[0].partition("/")
    if not _TYPE.fullmatch(type_part) or (method == "POST") != (id_part == ""):
        raise _bad(f"{path}.request.url", "Type for POST, Type/id for PUT and DELETE")
    record_id = check_id(id_part, f"{path}.request.url") if id_part else None
    resource = raw.get("resource")
    if method == "DELETE":
        resource = None
    elif not isinstance(resource, dict):
        raise _bad(f"{path}.resource", "POST and PUT entries carry a resource")
    full_url = raw.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise _bad(f"{path}.fullUrl", "a URI")
    return Entry(
        index,
        method,
        type_part,
        record_id,
        resource,
        full_url,
        _if_match(request.get("ifMatch"), f"{path}.request.ifMatch"),
    )


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


def resolve_references(entries: list[Entry], new_id: Callable[[], str]) -> list[Entry]:
    """Ids for POST entries; ``urn:uuid`` references rewritten to them."""
    mapping: dict[str, str] = {}
    assigned: list[Entry] = []
    for entry in entries:
        if entry.method != "POST" or entry.resource is None:
            assigned.append(entry)
            continue
        record_id = new_id()
        if entry.full_url is not None and _URN.fullmatch(entry.full_url):
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
