"""SMART App Launch scopes (v2, and the v1 forms), parsed into a set a request is checked
against.

SMART App Launch 2.0 §"Scopes for requesting clinical data":
``<context>/<resource>.<permissions>`` where context is ``patient`` (only the data of the
token's patient), ``user`` (what the user may access) or ``system`` (a backend service);
resource is a FHIR resource type or ``*``; permissions are a non-empty subset of ``cruds`` in
that order (create, read, update, delete, search). An optional ``?param=value`` restriction
is refused here (we do not support scoped searches yet, and ignoring one would widen access).
The v1 forms ``.read`` (= ``rs``), ``.write`` (= ``cud``) and ``.*`` (= ``cruds``) are accepted.
Other scopes (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``) carry no data
permission and are kept as they are.

Scopes are necessary, never sufficient: a read needs the scope AND the patient's consent
(``medledger.core.access.gate``). Deny by default: an empty scope set allows nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from medledger.errors import InvalidInputError

Context = Literal["patient", "user", "system"]
Interaction = Literal["c", "r", "u", "d", "s"]
INTERACTIONS: Final = "cruds"
#: A token's scope string, and how many scopes it may hold.
MAX_SCOPE_CHARS: Final = 4096
MAX_SCOPES: Final = 64

_CLINICAL: Final = re.compile(
    r"(?P<context>patient|user|system)/(?P<resource>\*|[A-Z][A-Za-z]{1,63})"
    r"\.(?P<permissions>read|write|\*|c?r?u?d?s?)"
)
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}
_OTHER: Final = re.compile(r"[A-Za-z][A-Za-z0-9_./:-]{0,63}")


@dataclass(frozen=True, slots=True)
class Scope:
    """One clinical-data scope: context, resource type (or ``*``), permitted interactions."""

    context: Context
    resource: str
    permissions: frozenset[Interaction]

    def allows(self, context: Context, resource: str, interaction: Interaction) -> bool:
        return (
            self.context == context
            and self.resource in ("*", resource)
            and interaction in self.permissions
        )

    def __str__(self) -> str:
        letters = "".join(i for i in INTERACTIONS if i in self.permissions)
        return f"{self.context}/{self.resource}.{letters}"


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """A token's scopes. ``allows`` is the only question asked of it."""

    clinical: tuple[Scope, ...] = ()
    other: frozenset[str] = frozenset()

    def allows(self, resource: str, interaction: Interaction) -> Context | None:
        """The broadest context in which ``interaction`` on ``resource`` is allowed
        (``system`` > ``user`` > ``patient``), or None: denied."""
        for context in ("system", "user", "patient"):
            if any(s.allows(context, resource, interaction) for s in self.clinical):
                return context
        return None

    def __str__(self) -> str:
        return " ".join([*(str(s) for s in self.clinical), *sorted(self.other)])


def parse_scopes(text: str) -> ScopeSet:
    """A space-separated scope string; ``InvalidInputError`` naming ``scope`` if malformed."""
    if not isinstance(text, str) or len(text) > MAX_SCOPE_CHARS:
        raise InvalidInputError(f"scope: at most {MAX_SCOPE_CHARS} characters", parameter="scope")
    words = text.split()
    if len(words) > MAX_SCOPES:
        raise InvalidInputError(f"scope: at most {MAX_SCOPES} scopes", parameter="scope")
    clinical: list[Scope] = []
    other: set[str] = set()
    for word in words:
        if "?" in word:
            raise InvalidInputError(
                "scope: search-restricted scopes (?param=value) are not supported",
                parameter="scope",
            )
        match = _CLINICAL.fullmatch(word)
        if match is None:
            if ("/" in word and "." in word) or not _OTHER.fullmatch(word):
                raise InvalidInputError(f"scope: {word[:80]!r} is malformed", parameter="scope")
            other.add(word)
            continue
        letters = _V1.get(match["permissions"], match["permissions"])
        if not letters:
            raise InvalidInputError(f"scope: {word[:80]!r} grants nothing", parameter="scope")
        clinical.append(
            Scope(
                match["context"],  # type: ignore[arg-type]
                match["resource"],
                frozenset(letters),  # type: ignore[arg-type]
            )
        )
    return ScopeSet(tuple(dict.fromkeys(clinical)), frozenset(other))
