"""What an access decision needs to know about a FHIR resource, read once when it is stored.

A consent can limit access by security label (``meta.security``: confidentiality U/L/M/N/R/V,
sensitivity ETH/HIV/PSY/SDV ...), by code (``code.coding``), and by the time the data is about
(``dataPeriod``). The node extracts those facts at write time and keeps them off-chain with the
record's key material (they can reveal a diagnosis, so they never go on the ledger, and they are
shredded with the record).

- labels: every ``meta.security`` coding's code (the v3 code systems do not overlap);
- codes: ``system|code`` of the resource's ``code`` codings (Observation, Condition, ...) and of
  its ``category`` codings;
- time: the first of ``effectiveDateTime``, ``effectivePeriod.start``, ``issued``,
  ``recordedDate``, ``onsetDateTime``, ``performedDateTime``, ``authoredOn``,
  ``occurrenceDateTime``, ``date``, ``period.start`` that parses as a FHIR date/dateTime (a
  date means its first instant, UTC if no offset is given).
Unparseable or absent facts are simply absent: a consent limit on them then does not match
(ADR 0013), so missing facts never widen access.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from medledger.core.ledger.canonical import canonical
from medledger.errors import TamperError

_TIME_FIELDS: Final = (
    ("effectiveDateTime",),
    ("effectivePeriod", "start"),
    ("issued",),
    ("recordedDate",),
    ("onsetDateTime",),
    ("performedDateTime",),
    ("authoredOn",),
    ("occurrenceDateTime",),
    ("date",),
    ("period", "start"),
)
#: Facts kept per record version: enough for any sensible label or code set.
MAX_LABELS: Final = 32
MAX_CODES: Final = 64
_MAX_CODE_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    security_labels: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    data_time_ms: int | None = None

    def to_bytes(self) -> bytes:
        return canonical(
            {
                "codes": sorted(self.codes),
                "labels": sorted(self.security_labels),
                "time_ms": self.data_time_ms,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResourceFacts:
        try:
            obj = json.loads(raw)
            labels, codes, time_ms = obj["labels"], obj["codes"], obj["time_ms"]
        except (ValueError, KeyError, TypeError) as e:
            raise TamperError("a record's stored facts are malformed") from e
        if not (
            isinstance(labels, list)
            and isinstance(codes, list)
            and all(isinstance(x, str) for x in (*labels, *codes))
            and (time_ms is None or (isinstance(time_ms, int) and not isinstance(time_ms, bool)))
        ):
            raise TamperError("a record's stored facts are malformed")
        return cls(frozenset(labels), frozenset(codes), time_ms)


def resource_facts(resource: Mapping[str, object]) -> ResourceFacts:
    """The labels, codes and data time of one FHIR resource (absent where unreadable)."""
    meta = resource.get("meta")
    labels = {
        code for _, code in _codings(meta.get("security") if isinstance(meta, Mapping) else None)
    }
    codes = {
        f"{system}|{code}"
        for field in ("code", "category")
        for system, code in _codings_of_concepts(resource.get(field))
    }
    return ResourceFacts(
        frozenset(sorted(labels)[:MAX_LABELS]),
        frozenset(sorted(codes)[:MAX_CODES]),
        _data_time(resource),
    )


def _codings(value: object) -> list[tuple[str, str]]:
    """(system, code) of a list of Codings."""
    found: list[tuple[str, str]] = []
    if not isinstance(value, list):
        return found
    for coding in value:
        if not isinstance(coding, Mapping):
            continue
        system, code = coding.get("system", ""), coding.get("code")
        if (
            isinstance(system, str)
            and isinstance(code, str)
            and len(code) > 0
            and len(system) + len(code) < _MAX_CODE_CHARS
        ):
            found.append((system, code))
    return found


def _codings_of_concepts(value: object) -> list[tuple[str, str]]:
    """(system, code) of a CodeableConcept or a list of them."""
    concepts = value if isinstance(value, list) else [value]
    found: list[tuple[str, str]] = []
    for concept in concepts:
        if isinstance(concept, Mapping):
            found.extend(_codings(concept.get("coding")))
    return found


def _data_time(resource: Mapping[str, object]) -> int | None:
    for path in _TIME_FIELDS:
        value: object = resource
        for name in path:
            value = value.get(name) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            parsed = parse_fhir_instant(value)
            if parsed is not None:
                return parsed
    return None


def parse_fhir_instant(value: str) -> int | None:
    """Milliseconds since the epoch of a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) or dateTime;
    the first instant it covers, UTC unless it carries an offset. None if it does not parse."""
    text = value.strip()
    if len(text) > 40:
        return None
    try:
        if len(text) == 4 and text.isdigit():
            moment = datetime(int(text), 1, 1, tzinfo=UTC)
        elif len(text) == 7 and text[4] == "-":
            moment = datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)
