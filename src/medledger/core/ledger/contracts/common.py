"""What the ledger's contracts share: the participant record and payload field parsing.

What this module handles:

- ``Participant``, the record at ``participant/<did>``: its invariants (closed kinds and role
  vocabularies; only practitioners belong to an organization; only organizations carry a name,
  people never do; its ``enc_key``, if any, is a usable X25519 public key), its canonical bytes,
  and reading it back from the state;
- ``parse_enc_key``: an X25519 public key (RFC 7748) as published on the ledger -- 64 lowercase
  hex, the canonical encoding of a point that is not of low order;
- ``require_sender``, the first check of every contract after parsing ("the sender is an
  active participant"), and ``acting_org``, the organization a participant acts for;
- ``Fields``: reads a transaction payload field by field and refuses anything else (a missing,
  unknown or ill-typed field) with ``ContractError("invalid_payload", ...)`` naming the field.
  Unknown fields are refused so that nothing unplanned, PHI least of all, reaches the ledger.

Not handled here: which participant may do what (each contract's business). Pure: no I/O.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeGuard

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from medledger.core.identity.did_key import is_did_key
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.runtime import ContractError, StateReader
from medledger.errors import InvalidInputError, TamperError

PARTICIPANT_PREFIX: Final = "participant/"
ORGANIZATION: Final = "organization"
PRACTITIONER: Final = "practitioner"
PATIENT: Final = "patient"
KINDS: Final = (ORGANIZATION, PRACTITIONER, PATIENT)
#: The closed role vocabularies, by kind. Patients have no roles.
ROLES: Final[Mapping[str, frozenset[str]]] = {
    ORGANIZATION: frozenset(
        {"hospital", "clinic", "lab", "identity-provider", "regulator", "research"}
    ),
    PRACTITIONER: frozenset(
        {
            "physician",
            "nurse",
            "emergency-physician",
            "privacy-officer",
            "researcher",
            "pharmacist",
            "lab-technician",
            "administrator",
        }
    ),
    PATIENT: frozenset(),
}
#: An organization's display name, in characters.
MAX_NAME_CHARS: Final = 200
#: ``registered_by`` of the authorities the genesis file registers.
GENESIS_REGISTRAR: Final = "genesis"

INVALID_PAYLOAD: Final = "invalid_payload"
SENDER_NOT_REGISTERED: Final = "sender_not_registered"

HEX64: Final = re.compile(r"[0-9a-f]{64}")

#: The X25519 field prime, 2^255 - 19 (RFC 7748 §4.1).
_X25519_P: Final = 2**255 - 19
#: Any fixed scalar: after clamping (RFC 7748 §5) its product with a low-order point is zero.
_LOW_ORDER_PROBE: Final = X25519PrivateKey.from_private_bytes(b"\x01" * 32)


def participant_key(did: str) -> str:
    return f"{PARTICIPANT_PREFIX}{did}"


def parse_roles(kind: str, roles: Iterable[str]) -> tuple[str, ...]:
    """The roles of a ``kind`` of participant, sorted; ``InvalidInputError`` naming ``roles``.

    Organizations and practitioners have at least one role; patients have none.
    """
    given = list(roles)
    vocabulary = ROLES.get(kind, frozenset())
    for role in given:
        if not isinstance(role, str) or role not in vocabulary:
            allowed = ", ".join(sorted(vocabulary)) or "none"
            raise InvalidInputError(
                f"roles: unknown role for a {kind} (allowed: {allowed})", parameter="roles"
            )
    if len(set(given)) != len(given):
        raise InvalidInputError("roles: a role is listed twice", parameter="roles")
    if kind != PATIENT and not given:
        raise InvalidInputError(f"roles: a {kind} needs at least one role", parameter="roles")
    return tuple(sorted(given))


def check_name(name: str) -> None:
    """An organization's display name: 1-200 characters, trimmed, no control characters."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise InvalidInputError(f"name: must be 1-{MAX_NAME_CHARS} characters", parameter="name")
    if name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInputError(
            "name: must be trimmed and free of control characters", parameter="name"
        )


def parse_enc_key(value: object) -> str:
    """An X25519 public key as the ledger holds it; ``InvalidInputError`` naming ``enc_key``.

    1. 64 lowercase hex characters: 32 bytes;
    2. the canonical encoding of a u-coordinate (RFC 7748 §5): the top bit clear and u < p, so
       one key has exactly one spelling on the ledger;
    3. not a low-order point: the X25519 of a fixed scalar with it is not all zeros (RFC 7748
       §6.1, RFC 9180 §7.1.4), so a wrap to it would not be a wrap to nobody.
    """
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise InvalidInputError("enc_key: must be 64 lowercase hex characters", parameter="enc_key")
    raw = bytes.fromhex(value)
    if int.from_bytes(raw, "little") >= _X25519_P:
        raise InvalidInputError(
            "enc_key: not the canonical encoding of an X25519 public key", parameter="enc_key"
        )
    try:
        _LOW_ORDER_PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError as e:  # OpenSSL refuses an all-zero shared secret
        raise InvalidInputError(
            "enc_key: a low-order point, not a usable X25519 public key", parameter="enc_key"
        ) from e
    return value


@dataclass(frozen=True, slots=True)
class Participant:
    """The state record ``participant/<did>``; a ``Participant`` that exists is well formed.

    ``enc_key`` is the X25519 public key (hex) the participant receives wrapped data keys under,
    or None until it publishes one (``participant.set_encryption_key``).
    """

    did: str
    kind: str
    roles: tuple[str, ...]
    organization: str | None
    name: str | None
    authority: bool
    active: bool
    registered_by: str
    registered_at: int
    enc_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.did, str) or not is_did_key(self.did):
            raise InvalidInputError("did: must be an Ed25519 did:key", parameter="did")
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind: must be one of {', '.join(KINDS)}", parameter="kind")
        object.__setattr__(self, "roles", parse_roles(self.kind, self.roles))
        self._check_organization_and_name()
        if not isinstance(self.authority, bool) or (self.authority and self.kind != ORGANIZATION):
            raise InvalidInputError(
                "authority: only an organization can be one", parameter="authority"
            )
        if not isinstance(self.active, bool):
            raise InvalidInputError("active: must be a boolean", parameter="active")
        if self.registered_by != GENESIS_REGISTRAR and not is_did_key(self.registered_by):
            raise InvalidInputError("registered_by: must be a did:key", parameter="registered_by")
        if not _is_int(self.registered_at, 0, MAX_SAFE_INTEGER):
            raise InvalidInputError("registered_at: must be a height", parameter="registered_at")
        if self.enc_key is not None:
            parse_enc_key(self.enc_key)

    def _check_organization_and_name(self) -> None:
        """Only a practitioner belongs to an organization; only an organization has a name."""
        if self.kind == PRACTITIONER:
            if not isinstance(self.organization, str) or not is_did_key(self.organization):
                raise InvalidInputError(
                    "organization: a practitioner names its organization's did:key",
                    parameter="organization",
                )
        elif self.organization is not None:
            raise InvalidInputError(
                f"organization: only a practitioner belongs to one, not a {self.kind}",
                parameter="organization",
            )
        if self.kind == ORGANIZATION:
            if self.name is not None:
                check_name(self.name)
        elif self.name is not None:
            raise InvalidInputError(
                f"name: only organizations carry a name, never a {self.kind}", parameter="name"
            )

    @property
    def is_authority(self) -> bool:
        return self.authority and self.active

    def to_json(self) -> dict[str, JSON]:
        return {
            "did": self.did,
            "kind": self.kind,
            "roles": list(self.roles),
            "organization": self.organization,
            "name": self.name,
            "authority": self.authority,
            "active": self.active,
            "registered_by": self.registered_by,
            "registered_at": self.registered_at,
            "enc_key": self.enc_key,
        }

    def to_state(self) -> bytes:
        return canonical(self.to_json())

    @classmethod
    def from_state(cls, raw: bytes) -> Participant:
        """Read back what ``to_state`` wrote; anything else is ``TamperError``.

        Memoised on the exact bytes (a frozen value fully determined by them, read ~2 times
        per transaction); errors are not cached."""
        return _participant_from_state(raw)

    @classmethod
    def _parse_state(cls, raw: bytes) -> Participant:
        obj = load_state_object(raw)
        if set(obj) != _PARTICIPANT_FIELDS or not isinstance(obj["roles"], list):
            raise TamperError("a participant record has the wrong fields")
        try:
            return cls(**{**obj, "roles": tuple(obj["roles"])})
        except InvalidInputError as e:
            raise TamperError(f"a participant record is malformed: {e}") from e


_PARTICIPANT_FIELDS: Final = frozenset(Participant.__dataclass_fields__)


@functools.lru_cache(maxsize=4096)
def _participant_from_state(raw: bytes) -> Participant:
    return Participant._parse_state(raw)


def load_state_object(raw: bytes) -> dict[str, JSON]:
    """A state value this package wrote: canonical JSON of an object, else ``TamperError``."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise TamperError("a state value is not JSON") from e
    if not isinstance(obj, dict):
        raise TamperError("a state value is not a JSON object")
    return obj


def read_participant(state: StateReader, did: str) -> Participant | None:
    raw = state.get(participant_key(did))
    return None if raw is None else Participant.from_state(raw)


def require_sender(state: StateReader, sender: str) -> Participant:
    """Every contract's first check after parsing: the sender is an active participant."""
    participant = read_participant(state, sender)
    if participant is None or not participant.active:
        raise ContractError(SENDER_NOT_REGISTERED, "the sender is not an active participant")
    return participant


def acting_org(state: StateReader, participant: Participant) -> str | None:
    """The organization an (active) participant acts for, or None.

    An organization acts for itself, a practitioner for its organization while that is active;
    a patient acts for no organization.
    """
    if participant.kind == ORGANIZATION:
        return participant.did
    if participant.kind == PRACTITIONER and participant.organization is not None:
        org = read_participant(state, participant.organization)
        if org is not None and org.kind == ORGANIZATION and org.active:
            return org.did
    return None


def invalid(field: str, rule: str) -> ContractError:
    return ContractError(INVALID_PAYLOAD, f"{field}: {rule}")


def _is_int(value: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class Fields:
    """A payload read field by field; every refusal is ``invalid_payload`` naming the field."""

    def __init__(
        self,
        payload: Mapping[str, JSON],
        *,
        required: Collection[str],
        optional: Collection[str] = (),
    ) -> None:
        for name in payload:
            if name not in required and name not in optional:
                raise invalid(repr(name[:40]), "unknown field")
        for name in required:
            if name not in payload:
                raise invalid(name, "missing")
        self._payload = payload

    def did(self, name: str) -> str:
        value = self._payload.get(name)
        if not isinstance(value, str) or not is_did_key(value):
            raise invalid(name, "must be an Ed25519 did:key")
        return value

    def optional_did(self, name: str) -> str | None:
        return None if self._payload.get(name) is None else self.did(name)

    def text(self, name: str, pattern: re.Pattern[str], rule: str) -> str:
        value = self._payload.get(name)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise invalid(name, rule)
        return value

    def optional_text(self, name: str, pattern: re.Pattern[str], rule: str) -> str | None:
        return None if self._payload.get(name) is None else self.text(name, pattern, rule)

    def optional_string(self, name: str) -> str | None:
        value = self._payload.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid(name, "must be a string or null")
        return value

    def choice(self, name: str, options: Collection[str]) -> str:
        value = self._payload.get(name)
        if not isinstance(value, str) or value not in options:
            raise invalid(name, f"must be one of {', '.join(sorted(options))}")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._payload.get(name)
        if not _is_int(value, low, high):
            raise invalid(name, f"must be an integer in {low}..{high}")
        return value

    def strings(self, name: str, *, max_items: int) -> list[str]:
        """A list of strings; an absent field is the empty list."""
        value = self._payload.get(name, [])
        if not isinstance(value, list) or len(value) > max_items:
            raise invalid(name, f"must be a list of at most {max_items} strings")
        if not all(isinstance(item, str) for item in value):
            raise invalid(name, "must hold only strings")
        return value
