"""The consent contract: a patient's grants, revocations and delegates, as ledger state.

Every node decides access from this state with the same pure function
(``medledger.core.consent``), so a consent means the same on every node. A consent is the policy
form of a FHIR R4 ``Consent`` (``medledger.core.consent.model``): DIDs, codes, periods and record
references only, never names or narrative.

Transaction types and their steps (each step raises ``ContractError`` with the reason shown):

``consent.grant`` ``{"consent": <policy form>}``
  1. parse: the policy form (``invalid_payload``, naming the field), status ``active``;
  2. the sender is an active participant (``sender_not_registered``);
  3. the consent's patient is a registered, active patient (``unknown_patient``);
  4. the sender is that patient or a delegate of theirs whose delegation holds at the block's
     time (``not_patient_or_delegate``);
  5. every DID the consent names (actors, performers, organizations) is a registered participant
     (``unknown_participant``): a typo must not silently grant nothing, or the wrong party;
  6. the consent id was never used for this patient, not even by a revoked or pre-revoked
     consent (``consent_exists``): a revocation is never undone by a later grant;
  7. the patient holds fewer than ``MAX_CONSENTS`` active consents (``too_many_consents``).

``consent.revoke`` ``{"patient", "consent_id"}``
  1. parse (``invalid_payload``); 2. active sender (``sender_not_registered``);
  3. the sender is the patient or a current delegate (``not_patient_or_delegate``);
  4. not already revoked (``already_revoked``).
  A revocation of an id not granted yet records it as revoked, so that no order of a grant and
  its revocation within one block (or later) leaves the consent active. A revocation takes
  effect from the block that includes it.

``consent.delegate`` ``{"patient", "delegate", "until_ms"?}`` and
``consent.undelegate`` ``{"patient", "delegate"}``
  1. parse (``invalid_payload``); 2. active sender (``sender_not_registered``);
  3. the sender is the patient themself (``not_patient``): a delegate cannot delegate;
  4. delegate only: the delegate is an active participant other than the patient
     (``unknown_participant`` / ``invalid_payload``), ``until_ms`` (if given) after the block's
     time (``invalid_payload``); undelegate only: the delegation exists (``unknown_delegate``).

State: ``consent/<patient>/<consent_id>`` -> ``{"consent", "status", "granted_by",
"granted_height", "revoked_by", "revoked_height"}`` (``consent`` null for a pre-revoked id);
``consent/<patient>`` -> ``{"ids": [...]}``, the sorted ids of the patient's active consents
(the index a node reads to decide); ``consent/delegate/<patient>/<delegate>`` ->
``{"until_ms", "height"}``.
Not handled here: deciding access (``medledger.core.consent.decision``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from medledger.core.consent.model import Consent, Provision, parse_consent
from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.common import (
    PATIENT,
    Fields,
    invalid,
    load_state_object,
    read_participant,
    require_sender,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError, TamperError

GRANT: Final = "consent.grant"
REVOKE: Final = "consent.revoke"
DELEGATE: Final = "consent.delegate"
UNDELEGATE: Final = "consent.undelegate"

CONSENT_PREFIX: Final = "consent/"
#: Active consents one patient may hold: bounds the index a decision reads.
MAX_CONSENTS: Final = 500

UNKNOWN_PATIENT: Final = "unknown_patient"
UNKNOWN_PARTICIPANT: Final = "unknown_participant"
NOT_PATIENT_OR_DELEGATE: Final = "not_patient_or_delegate"
NOT_PATIENT: Final = "not_patient"
CONSENT_EXISTS: Final = "consent_exists"
ALREADY_REVOKED: Final = "already_revoked"
TOO_MANY_CONSENTS: Final = "too_many_consents"
UNKNOWN_DELEGATE: Final = "unknown_delegate"

CONSENT_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

ACTIVE: Final = "active"
REVOKED: Final = "revoked"


def consent_key(patient: str, consent_id: str) -> str:
    return f"{CONSENT_PREFIX}{patient}/{consent_id}"


def index_key(patient: str) -> str:
    return f"{CONSENT_PREFIX}{patient}"


def delegate_key(patient: str, delegate: str) -> str:
    return f"{CONSENT_PREFIX}delegate/{patient}/{delegate}"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """The state record of one consent id: the consent (None if revoked before it was granted)
    and where it was granted and revoked."""

    consent: Consent | None
    status: str
    granted_by: str | None
    granted_height: int | None
    revoked_by: str | None
    revoked_height: int | None

    def to_state(self) -> bytes:
        value: dict[str, JSON] = {
            "consent": None if self.consent is None else _json(self.consent.to_json()),
            "status": self.status,
            "granted_by": self.granted_by,
            "granted_height": self.granted_height,
            "revoked_by": self.revoked_by,
            "revoked_height": self.revoked_height,
        }
        return canonical(value)

    @classmethod
    def from_state(cls, raw: bytes) -> ConsentRecord:
        obj = load_state_object(raw)
        if set(obj) != _RECORD_FIELDS or obj.get("status") not in (ACTIVE, REVOKED):
            raise TamperError("a consent record has the wrong fields")
        try:
            body = obj["consent"]
            consent = None if body is None else parse_consent(_mapping(body))
        except InvalidInputError as e:
            raise TamperError(f"a consent record is malformed: {e}") from e
        return cls(
            consent,
            str(obj["status"]),
            _opt_str(obj["granted_by"]),
            _opt_int(obj["granted_height"]),
            _opt_str(obj["revoked_by"]),
            _opt_int(obj["revoked_height"]),
        )


_RECORD_FIELDS: Final = frozenset(
    ("consent", "status", "granted_by", "granted_height", "revoked_by", "revoked_height")
)


def _json(value: object) -> JSON:
    """The policy form as plain JSON values (it is built from them)."""
    loaded: JSON = json.loads(json.dumps(value))
    return loaded


def _mapping(value: object) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise TamperError("a consent record's consent is not an object")
    return value


def _opt_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TamperError("a consent record holds a non-string DID")
    return value


def _opt_int(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TamperError("a consent record holds a non-integer height")
    return value


def read_index(state: StateReader, patient: str) -> tuple[str, ...]:
    """The ids of a patient's active consents, sorted."""
    raw = state.get(index_key(patient))
    if raw is None:
        return ()
    ids = load_state_object(raw).get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise TamperError("a consent index is not a list of ids")
    return tuple(ids)


def _index(ids: list[str]) -> bytes:
    return canonical({"ids": list(ids)})


def read_consent(state: StateReader, patient: str, consent_id: str) -> ConsentRecord | None:
    raw = state.get(consent_key(patient, consent_id))
    return None if raw is None else ConsentRecord.from_state(raw)


def active_consents(state: StateReader, patient: str) -> list[Consent]:
    """The patient's active consents, in id order: what an access decision reads."""
    found: list[Consent] = []
    for consent_id in read_index(state, patient):
        record = read_consent(state, patient, consent_id)
        if record is None or record.status != ACTIVE or record.consent is None:
            raise TamperError("the consent index names a consent that is not active")
        found.append(record.consent)
    return found


def delegation_holds(state: StateReader, patient: str, delegate: str, now_ms: int) -> bool:
    """Whether ``delegate`` acts for ``patient`` at ``now_ms`` (an active participant whose
    delegation has not run out)."""
    raw = state.get(delegate_key(patient, delegate))
    if raw is None:
        return False
    obj = load_state_object(raw)
    until = obj.get("until_ms")
    if until is not None and (not isinstance(until, int) or until <= now_ms):
        return False
    participant = read_participant(state, delegate)
    return participant is not None and participant.active


def named_dids(consent: Consent) -> Iterator[str]:
    """Every DID a consent names besides its patient: performers, organizations, actors."""
    yield from consent.performers
    yield from consent.organizations
    if consent.provision is not None:
        yield from _provision_dids(consent.provision)


def _provision_dids(provision: Provision) -> Iterator[str]:
    for actor in provision.actors:
        if actor.reference is not None:
            yield actor.reference
    for nested in provision.provisions:
        yield from _provision_dids(nested)


class ConsentContract:
    """Grants, revocations and delegations of patients' consents."""

    name: Final = "consent"
    namespace: Final = CONSENT_PREFIX
    tx_types: Final = frozenset({GRANT, REVOKE, DELEGATE, UNDELEGATE})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type == GRANT:
            return self._grant(tx, state, ctx)
        if tx.type == REVOKE:
            return self._revoke(tx, state, ctx)
        if tx.type == DELEGATE:
            return self._delegate(tx, state, ctx)
        if tx.type == UNDELEGATE:
            return self._undelegate(tx, state)
        raise ContractError("unknown_type", f"the consent contract has no {tx.type}")

    # --- grant and revoke -------------------------------------------------------------------
    def _grant(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        fields = Fields(tx.payload, required=("consent",))
        del fields
        body = tx.payload["consent"]
        if not isinstance(body, dict):
            raise invalid("consent", "must be an object (the consent's policy form)")
        try:
            consent = parse_consent(body)
        except InvalidInputError as e:
            raise invalid(f"consent.{e.parameter or ''}".rstrip("."), str(e)) from e
        if consent.status != ACTIVE:
            raise invalid("consent.status", "a grant must be active (revoke to end a consent)")
        require_sender(state, tx.sender)
        self._require_patient(state, consent.patient)
        self._require_patient_or_delegate(state, consent.patient, tx.sender, ctx.time_ms)
        for did in named_dids(consent):
            if read_participant(state, did) is None:
                raise ContractError(UNKNOWN_PARTICIPANT, "the consent names an unknown DID")
        if state.get(consent_key(consent.patient, consent.consent_id)) is not None:
            raise ContractError(CONSENT_EXISTS, "consent_id: already used for this patient")
        ids = read_index(state, consent.patient)
        if len(ids) >= MAX_CONSENTS:
            raise ContractError(
                TOO_MANY_CONSENTS, f"a patient holds at most {MAX_CONSENTS} active consents"
            )
        record = ConsentRecord(consent, ACTIVE, tx.sender, ctx.height, None, None)
        return {
            consent_key(consent.patient, consent.consent_id): record.to_state(),
            index_key(consent.patient): _index(sorted({*ids, consent.consent_id})),
        }

    def _revoke(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        fields = Fields(tx.payload, required=("patient", "consent_id"))
        patient = fields.did("patient")
        consent_id = fields.text("consent_id", CONSENT_ID, "must be 1-64 of [A-Za-z0-9._-]")
        require_sender(state, tx.sender)
        self._require_patient_or_delegate(state, patient, tx.sender, ctx.time_ms)
        key = consent_key(patient, consent_id)
        record = read_consent(state, patient, consent_id)
        if record is not None and record.status == REVOKED:
            raise ContractError(ALREADY_REVOKED, "consent_id: already revoked")
        if record is None:
            revoked = ConsentRecord(None, REVOKED, None, None, tx.sender, ctx.height)
            return {key: revoked.to_state()}
        revoked = ConsentRecord(
            record.consent,
            REVOKED,
            record.granted_by,
            record.granted_height,
            tx.sender,
            ctx.height,
        )
        remaining = [i for i in read_index(state, patient) if i != consent_id]
        return {
            key: revoked.to_state(),
            index_key(patient): _index(remaining) if remaining else None,
        }

    # --- delegates --------------------------------------------------------------------------
    def _delegate(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        fields = Fields(tx.payload, required=("patient", "delegate"), optional=("until_ms",))
        patient = fields.did("patient")
        delegate = fields.did("delegate")
        until = (
            None
            if tx.payload.get("until_ms") is None
            else fields.integer("until_ms", ctx.time_ms + 1, MAX_SAFE_INTEGER)
        )
        require_sender(state, tx.sender)
        self._require_patient_self(state, patient, tx.sender)
        if delegate == patient:
            raise invalid("delegate", "a patient does not delegate to themself")
        other = read_participant(state, delegate)
        if other is None or not other.active:
            raise ContractError(UNKNOWN_PARTICIPANT, "delegate: not an active participant")
        value = canonical({"until_ms": until, "height": ctx.height})
        return {delegate_key(patient, delegate): value}

    def _undelegate(self, tx: Transaction, state: StateReader) -> Writes:
        fields = Fields(tx.payload, required=("patient", "delegate"))
        patient = fields.did("patient")
        delegate = fields.did("delegate")
        require_sender(state, tx.sender)
        self._require_patient_self(state, patient, tx.sender)
        key = delegate_key(patient, delegate)
        if state.get(key) is None:
            raise ContractError(UNKNOWN_DELEGATE, "delegate: no such delegation")
        return {key: None}

    # --- who may act for a patient ----------------------------------------------------------
    @staticmethod
    def _require_patient(state: StateReader, patient: str) -> None:
        participant = read_participant(state, patient)
        if participant is None or participant.kind != PATIENT or not participant.active:
            raise ContractError(UNKNOWN_PATIENT, "patient: not a registered, active patient")

    def _require_patient_self(self, state: StateReader, patient: str, sender: str) -> None:
        self._require_patient(state, patient)
        if sender != patient:
            raise ContractError(NOT_PATIENT, "only the patient themself may do this")

    def _require_patient_or_delegate(
        self, state: StateReader, patient: str, sender: str, now_ms: int
    ) -> None:
        self._require_patient(state, patient)
        if sender != patient and not delegation_holds(state, patient, sender, now_ms):
            raise ContractError(
                NOT_PATIENT_OR_DELEGATE, "only the patient or their delegate may do this"
            )
