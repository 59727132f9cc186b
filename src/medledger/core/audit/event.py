"""The access event: one access decision, as codes and pseudonymous identifiers only.

Every decision of the access gate -- permitted, denied or break-glass -- becomes one
``AccessEvent``, which is one leaf of an access-event batch (``batch``, ADR 0014). An event
says who (``actor`` and ``actor_org``, did:keys), about whom (``patient``, a pseudonymous
did:key), did what (``action`` and the record it concerned), why (``purpose``, a v3-ActReason
code), what the node holding the data decided (``node``, ``decision``, ``reasons``, the
``consents`` that matched) and when (``time_ms``). It never holds a name or clinical content.

The one free-text field is ``justification``, the written reason of a break-glass access
(required then, absent otherwise). It is held off-chain with the event: the ledger holds only
batch roots, so it never reaches the ledger; the event's leaf commits to it, so it cannot be
changed after the fact.

What this module handles: the ``AccessEvent`` invariants (a value that exists is valid), its
JSON form (``to_json``/``parse_event``: strict, every field present, unknown fields refused,
``InvalidInputError`` naming the field), its leaf bytes (RFC 8785 canonical JSON of that form,
hashed as an RFC 9162 leaf), and event ids. Not handled here: deciding (``core.access``),
batching and storing events (``batch``, ``services.audit``), randomness (the caller passes
the 16 random bytes of an id). Pure.
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.errors import InvalidInputError

EVENT_KIND: Final = "access-event"
EVENT_VERSION: Final = 1

Action = Literal["read", "key-release", "erase", "search", "list-audit", "consent-export"]
Decision = Literal["permit", "deny", "break-glass"]
ACTIONS: Final[tuple[Action, ...]] = (
    "read", "key-release", "erase", "search", "list-audit", "consent-export",
)  # fmt: skip
DECISIONS: Final[tuple[Decision, ...]] = ("permit", "deny", "break-glass")
#: Decisions that let the access happen.
PERMITTING: Final = frozenset({"permit", "break-glass"})

#: 16 random bytes in RFC 4648 base32, lowercase, unpadded: 26 characters. The last one
#: carries 3 bits and 2 zero padding bits, so it is one of 8 (one spelling per id).
EVENT_ID_BYTES: Final = 16
EVENT_ID: Final = re.compile(r"[a-z2-7]{25}[aeimquy4]")
#: v3-ActReason (purpose of use) codes: TREAT, ETREAT, BTG, HPAYMT, PATRQT ...
PURPOSE: Final = re.compile(r"[A-Z]{2,12}")
#: Stable reason codes, kebab-case: ``patient-own-record``, ``no-consent`` ...
REASON: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_REASON_CHARS: Final = 64
MAX_REASONS: Final = 16
#: Consent ids as the consent contract names them.
CONSENT_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_CONSENTS: Final = 32
#: As the records contract names them.
RECORD_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
MAX_JUSTIFICATION_CHARS: Final = 500

_FIELDS: Final = (
    "kind", "v", "event_id", "time_ms", "node", "actor", "actor_org", "patient", "action",
    "resource_type", "record_id", "version", "purpose", "decision", "reasons", "consents",
    "justification",
)  # fmt: skip
_FIELD_SET: Final = frozenset(_FIELDS)


def new_event_id(random16: bytes) -> str:
    """The event id of 16 random bytes: base32 (RFC 4648 §6), lowercase, no padding."""
    if not isinstance(random16, bytes) or len(random16) != EVENT_ID_BYTES:
        raise InvalidInputError("an event id takes 16 random bytes", parameter="event_id")
    return base64.b32encode(random16).decode("ascii").rstrip("=").lower()


@functools.lru_cache(maxsize=65_536)
def _is_did(value: str) -> bool:
    """did:key parsing is pure; events name few distinct parties, so cache the verdicts."""
    return is_did_key(value)


def _fail(name: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{name}: {message}", parameter=name)


def _check_did(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not _is_did(value):
        raise _fail(name, "must be an Ed25519 did:key" + (" or null" if optional else ""))


def _check_int(name: str, value: object, low: int) -> None:
    if type(value) is not int or not low <= value <= MAX_SAFE_INTEGER:
        raise _fail(name, f"must be an integer in {low}..2^53-1")


def _check_text(name: str, value: object, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(name, f"must be {what}")


def _check_codes(
    name: str, value: object, pattern: re.Pattern[str], max_items: int, max_chars: int
) -> None:
    if not isinstance(value, tuple) or len(value) > max_items:
        raise _fail(name, f"must be a list of at most {max_items} codes")
    for code in value:
        if not isinstance(code, str) or len(code) > max_chars or not pattern.fullmatch(code):
            raise _fail(name, f"each must match {pattern.pattern}, at most {max_chars} chars")
    if len(value) > 1 and len(set(value)) != len(value):
        raise _fail(name, "a code is listed twice")


def _check_justification(value: object, decision: str) -> None:
    """Required iff break-glass: 1-500 characters of text, trimmed, no control characters
    other than newline and tab, valid Unicode (no lone surrogates)."""
    if decision != "break-glass":
        if value is not None:
            raise _fail("justification", "only a break-glass decision carries one")
        return
    if not isinstance(value, str) or not value.strip():
        raise _fail("justification", "a break-glass decision needs a written justification")
    if len(value) > MAX_JUSTIFICATION_CHARS or value != value.strip():
        raise _fail("justification", f"1-{MAX_JUSTIFICATION_CHARS} characters, trimmed")
    if not value.isprintable() and any(
        unicodedata.category(c) in {"Cc", "Cs"} and c not in "\n\t" for c in value
    ):
        raise _fail("justification", "must be text without control characters")


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access decision. The constructor checks every field, so an event that exists is
    valid, and computes its leaf bytes once (``leaf_bytes``).

    ``resource_type``/``record_id``/``version`` say which record the access concerned (all
    None for a request about the patient as a whole, e.g. ``search`` or ``list-audit``); a
    ``version`` needs a ``record_id``. ``reasons`` are the gate's stable codes (at least one);
    ``consents`` the ids of the consents that permitted or denied.
    """

    event_id: str
    time_ms: int
    node: str
    actor: str
    actor_org: str | None
    patient: str
    action: Action
    resource_type: str | None
    record_id: str | None
    version: int | None
    purpose: str
    decision: Decision
    reasons: tuple[str, ...]
    consents: tuple[str, ...] = ()
    justification: str | None = field(default=None, repr=False)
    _leaf: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.event_id, str) or not EVENT_ID.fullmatch(self.event_id):
            raise _fail("event_id", "must be 26 lowercase base32 characters of 16 bytes")
        _check_int("time_ms", self.time_ms, 0)
        _check_did("node", self.node)
        _check_did("actor", self.actor)
        _check_did("actor_org", self.actor_org, optional=True)
        _check_did("patient", self.patient)
        if self.action not in ACTIONS:
            raise _fail("action", f"must be one of {', '.join(ACTIONS)}")
        self._check_record()
        _check_text("purpose", self.purpose, PURPOSE, "a v3-ActReason code ([A-Z]{2,12})")
        if self.decision not in DECISIONS:
            raise _fail("decision", f"must be one of {', '.join(DECISIONS)}")
        _check_codes("reasons", self.reasons, REASON, MAX_REASONS, MAX_REASON_CHARS)
        if not self.reasons:
            raise _fail("reasons", "a decision carries at least one reason")
        _check_codes("consents", self.consents, CONSENT_ID, MAX_CONSENTS, 64)
        _check_justification(self.justification, self.decision)
        object.__setattr__(self, "_leaf", self._canonical_bytes())

    def _check_record(self) -> None:
        if self.resource_type is not None:
            _check_text("resource_type", self.resource_type, RESOURCE_TYPE, "a FHIR type")
        if self.record_id is not None:
            _check_text("record_id", self.record_id, RECORD_ID, "1-64 of [A-Za-z0-9._-]")
        if self.version is not None:
            _check_int("version", self.version, 1)
            if self.record_id is None:
                raise _fail("version", "a version needs a record_id")

    @property
    def permitted(self) -> bool:
        """Whether the access went ahead (permit or break-glass)."""
        return self.decision in PERMITTING

    def to_json(self) -> dict[str, JSON]:
        """The event as a JSON object: every field, nulls included, plus kind and version."""
        return {
            "kind": EVENT_KIND,
            "v": EVENT_VERSION,
            "event_id": self.event_id,
            "time_ms": self.time_ms,
            "node": self.node,
            "actor": self.actor,
            "actor_org": self.actor_org,
            "patient": self.patient,
            "action": self.action,
            "resource_type": self.resource_type,
            "record_id": self.record_id,
            "version": self.version,
            "purpose": self.purpose,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "consents": list(self.consents),
            "justification": self.justification,
        }

    def leaf_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of ``to_json()``: the bytes the batch tree hashes."""
        return self._leaf

    def _canonical_bytes(self) -> bytes:
        """``canonical(self.to_json())``, written out in RFC 8785 §3.2.3 member order.

        Every string but the justification matches a pattern of characters JCS never
        escapes, so it is its quoted self; the justification (and only it) goes through
        ``canonical``. Four times faster than canonicalising the object, on the ingest hot
        path; a property test checks the two are byte-identical."""
        text, codes = _json_text, _json_codes
        justification = (
            "null" if self.justification is None else canonical(self.justification).decode("utf-8")
        )
        return (
            f'{{"action":"{self.action}","actor":"{self.actor}","actor_org":'
            f'{text(self.actor_org)},"consents":{codes(self.consents)},"decision":'
            f'"{self.decision}","event_id":"{self.event_id}","justification":{justification},'
            f'"kind":"{EVENT_KIND}","node":"{self.node}","patient":"{self.patient}","purpose":'
            f'"{self.purpose}","reasons":{codes(self.reasons)},"record_id":'
            f'{text(self.record_id)},"resource_type":{text(self.resource_type)},"time_ms":'
            f'{self.time_ms},"v":{EVENT_VERSION},"version":'
            f"{'null' if self.version is None else self.version}}}"
        ).encode()


def _json_text(value: str | None) -> str:
    """A checked string as JSON (nothing in it to escape), or null."""
    return "null" if value is None else f'"{value}"'


def _json_codes(values: tuple[str, ...]) -> str:
    return '["' + '","'.join(values) + '"]' if values else "[]"


def _string_list(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = obj[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(name, "must be a list of strings")
    return tuple(value)


def parse_event(obj: object) -> AccessEvent:
    """An event from its JSON object (``to_json``), refusing anything else.

    1. a JSON object with exactly the fields of ``to_json`` (a missing or unknown field is
       named in the error);
    2. ``kind`` is ``access-event`` and ``v`` is 1;
    3. ``reasons`` and ``consents`` are lists of strings;
    4. the ``AccessEvent`` constructor's checks (each names its field).
    """
    if not isinstance(obj, Mapping):
        raise InvalidInputError("an access event is a JSON object", parameter="event")
    # 1.
    for name in _FIELDS:
        if name not in obj:
            raise _fail(name, "is missing")
    unknown = sorted(str(k) for k in obj if k not in _FIELD_SET)
    if unknown:
        raise InvalidInputError(
            f"unknown field {ascii(unknown[0])[:40]}", parameter=unknown[0][:40]
        )
    # 2.
    if obj["kind"] != EVENT_KIND:
        raise _fail("kind", f"must be {EVENT_KIND}")
    if type(obj["v"]) is not int or obj["v"] != EVENT_VERSION:
        raise _fail("v", f"unsupported version (this reader knows {EVENT_VERSION})")
    # 3. and 4.
    return AccessEvent(
        event_id=obj["event_id"],
        time_ms=obj["time_ms"],
        node=obj["node"],
        actor=obj["actor"],
        actor_org=obj["actor_org"],
        patient=obj["patient"],
        action=obj["action"],
        resource_type=obj["resource_type"],
        record_id=obj["record_id"],
        version=obj["version"],
        purpose=obj["purpose"],
        decision=obj["decision"],
        reasons=_string_list(obj, "reasons"),
        consents=_string_list(obj, "consents"),
        justification=obj["justification"],
    )
