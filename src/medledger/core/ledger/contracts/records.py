"""The records contract: commitments to versions of FHIR resources, chained per record.

The ledger never holds clinical content: a version is an HMAC-SHA256 salted commitment (the
salt lives off-chain with the data key) and the CIDv1 of the ciphertext in the blob store, under
an opaque record id and the patient's pseudonymous did:key. Erasure is crypto-shredding off
chain; ``record.tombstone`` only marks the record closed, so nothing more can be anchored to it.

``record.anchor`` ``{"patient", "record_id", "resource_type", "version", "commitment", "cid",
"prev"}``
  1. parse (``invalid_payload``);
  2. the sender is an active participant (``sender_not_registered``) acting for an organization:
     an organization itself, or a practitioner of an active organization (``author_org``); a
     patient does not anchor (``not_allowed``); a practitioner whose organization is gone is
     ``sender_not_registered``;
  3. the patient is a registered, active patient (``patient_not_registered``);
  4. a new record starts at version 1 (``unknown_record``) with ``prev`` null
     (``chain_broken``); an existing one is extended only by its author organization
     (``not_author_org``), never after a tombstone (``tombstoned``), at exactly the next version
     (``version_conflict``), with ``prev`` = the head's hash (``chain_broken``), and keeps its
     resource type (``resource_type_mismatch``).

``record.tombstone`` ``{"patient", "record_id", "reason": "erasure" | "entered-in-error"}``
  1. parse (``invalid_payload``); 2. active sender (``sender_not_registered``);
  3. the record exists (``unknown_record``);
  4. the sender is the patient, or an active member of the author organization
     (``not_author_org``);
  5. not tombstoned already (``tombstoned``).

State: the head at ``record/<patient>/<record_id>`` and each version at
``record/<patient>/<record_id>/<version>``. A version's hash is SHA-256 of its canonical bytes
(hex), and the next version's ``prev`` is that hash, so the versions form a hash chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from medledger.core.ledger.canonical import JSON, MAX_SAFE_INTEGER, canonical
from medledger.core.ledger.contracts.common import (
    HEX64,
    PATIENT,
    SENDER_NOT_REGISTERED,
    Fields,
    Participant,
    acting_org,
    load_state_object,
    read_participant,
    require_sender,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import TamperError

ANCHOR: Final = "record.anchor"
TOMBSTONE: Final = "record.tombstone"
RECORD_PREFIX: Final = "record/"
TOMBSTONE_REASONS: Final = ("erasure", "entered-in-error")

UNKNOWN_RECORD: Final = "unknown_record"
VERSION_CONFLICT: Final = "version_conflict"
CHAIN_BROKEN: Final = "chain_broken"
NOT_AUTHOR_ORG: Final = "not_author_org"
PATIENT_NOT_REGISTERED: Final = "patient_not_registered"
TOMBSTONED: Final = "tombstoned"
RESOURCE_TYPE_MISMATCH: Final = "resource_type_mismatch"
NOT_ALLOWED: Final = "not_allowed"

RECORD_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
#: CIDv1 in multibase base32 (lowercase, "b" prefix), as the blob store names ciphertext.
CID: Final = re.compile(r"b[a-z2-7]{9,99}")


def head_key(patient: str, record_id: str) -> str:
    return f"{RECORD_PREFIX}{patient}/{record_id}"


def version_key(patient: str, record_id: str, version: int) -> str:
    return f"{head_key(patient, record_id)}/{version}"


@dataclass(frozen=True, slots=True)
class Tombstone:
    reason: str
    by: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, JSON]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class RecordHead:
    """The state record ``record/<patient>/<record_id>``: the latest version and its hash."""

    patient: str
    record_id: str
    resource_type: str
    version: int
    hash: str
    author: str
    author_org: str
    tombstone: Tombstone | None = None

    @property
    def tombstoned(self) -> bool:
        return self.tombstone is not None

    def to_state(self) -> bytes:
        return canonical(
            {
                "patient": self.patient,
                "record_id": self.record_id,
                "resource_type": self.resource_type,
                "version": self.version,
                "hash": self.hash,
                "author": self.author,
                "author_org": self.author_org,
                "tombstoned": self.tombstoned,
                "tombstone": None if self.tombstone is None else self.tombstone.to_json(),
            }
        )

    @classmethod
    def from_state(cls, raw: bytes) -> RecordHead:
        """Read back what ``to_state`` wrote; anything else is ``TamperError``."""
        obj = load_state_object(raw)
        try:
            tombstone = obj["tombstone"]
            head = cls(
                patient=obj["patient"],
                record_id=obj["record_id"],
                resource_type=obj["resource_type"],
                version=obj["version"],
                hash=obj["hash"],
                author=obj["author"],
                author_org=obj["author_org"],
                tombstone=None if tombstone is None else Tombstone(**tombstone),
            )
        except (KeyError, TypeError) as e:
            raise TamperError("a record head has the wrong fields") from e
        if not isinstance(head.version, int) or not isinstance(head.hash, str):
            raise TamperError("a record head is malformed")
        return head


@dataclass(frozen=True, slots=True)
class Anchor:
    """A parsed ``record.anchor`` payload."""

    patient: str
    record_id: str
    resource_type: str
    version: int
    commitment: str
    cid: str
    prev: str | None


class RecordsContract:
    """Anchors record versions as a hash chain per record; tombstones records."""

    name: Final = "records"
    namespace: Final = RECORD_PREFIX
    tx_types: Final = frozenset({ANCHOR, TOMBSTONE})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type == ANCHOR:
            return _anchor(tx, state, ctx)
        if tx.type == TOMBSTONE:
            return _tombstone(tx, state, ctx)
        raise ContractError("unknown_type", f"the records contract has no {tx.type}")


def _anchor(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    anchor = _parse_anchor(tx)
    sender = require_sender(state, tx.sender)
    author_org = _anchoring_org(state, sender)
    patient = read_participant(state, anchor.patient)
    if patient is None or patient.kind != PATIENT or not patient.active:
        raise ContractError(PATIENT_NOT_REGISTERED, "patient: not a registered, active patient")
    key = head_key(anchor.patient, anchor.record_id)
    raw_head = state.get(key)
    if raw_head is None:
        _check_first_version(anchor)
    else:
        _check_next_version(anchor, RecordHead.from_state(raw_head), author_org)
    version = canonical(
        {
            "version": anchor.version,
            "commitment": anchor.commitment,
            "cid": anchor.cid,
            "author": sender.did,
            "author_org": author_org,
            "prev": anchor.prev,
            "height": ctx.height,
            "time_ms": ctx.time_ms,
        }
    )
    head = RecordHead(
        patient=anchor.patient,
        record_id=anchor.record_id,
        resource_type=anchor.resource_type,
        version=anchor.version,
        hash=hashlib.sha256(version).hexdigest(),
        author=sender.did,
        author_org=author_org,
    )
    return {
        version_key(anchor.patient, anchor.record_id, anchor.version): version,
        key: head.to_state(),
    }


def _parse_anchor(tx: Transaction) -> Anchor:
    fields = Fields(
        tx.payload,
        required=("patient", "record_id", "resource_type", "version", "commitment", "cid", "prev"),
    )
    return Anchor(
        patient=fields.did("patient"),
        record_id=fields.text("record_id", RECORD_ID, "must be 1-64 of [A-Za-z0-9._-]"),
        resource_type=fields.text(
            "resource_type", RESOURCE_TYPE, "must be a FHIR resource type name"
        ),
        version=fields.integer("version", 1, MAX_SAFE_INTEGER),
        commitment=fields.text("commitment", HEX64, "must be 64 lowercase hex digits"),
        cid=fields.text("cid", CID, "must be a base32 CIDv1 (b + 9-99 of [a-z2-7])"),
        prev=fields.optional_text("prev", HEX64, "must be null or 64 lowercase hex digits"),
    )


def _anchoring_org(state: StateReader, sender: Participant) -> str:
    """Step 2: the organization the sender anchors for."""
    if sender.kind == PATIENT:
        raise ContractError(NOT_ALLOWED, "a patient does not anchor records")
    org = acting_org(state, sender)
    if org is None:
        raise ContractError(
            SENDER_NOT_REGISTERED, "the sender's organization is not an active organization"
        )
    return org


def _check_first_version(anchor: Anchor) -> None:
    if anchor.version != 1:
        raise ContractError(UNKNOWN_RECORD, "version: no such record; a new one starts at 1")
    if anchor.prev is not None:
        raise ContractError(CHAIN_BROKEN, "prev: must be null for version 1")


def _check_next_version(anchor: Anchor, head: RecordHead, author_org: str) -> None:
    if author_org != head.author_org:
        raise ContractError(NOT_AUTHOR_ORG, "only the author organization extends a record")
    if head.tombstoned:
        raise ContractError(TOMBSTONED, "the record is tombstoned")
    if anchor.version != head.version + 1:
        raise ContractError(VERSION_CONFLICT, f"version: the next version is {head.version + 1}")
    if anchor.prev != head.hash:
        raise ContractError(CHAIN_BROKEN, "prev: must be the hash of the head version")
    if anchor.resource_type != head.resource_type:
        raise ContractError(RESOURCE_TYPE_MISMATCH, "resource_type: differs from the record's")


def _tombstone(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    fields = Fields(tx.payload, required=("patient", "record_id", "reason"))
    patient = fields.did("patient")
    record_id = fields.text("record_id", RECORD_ID, "must be 1-64 of [A-Za-z0-9._-]")
    reason = fields.choice("reason", TOMBSTONE_REASONS)
    sender = require_sender(state, tx.sender)
    key = head_key(patient, record_id)
    raw_head = state.get(key)
    if raw_head is None:
        raise ContractError(UNKNOWN_RECORD, "no such record")
    head = RecordHead.from_state(raw_head)
    is_patient = sender.kind == PATIENT and sender.did == head.patient
    if not is_patient and acting_org(state, sender) != head.author_org:
        raise ContractError(
            NOT_AUTHOR_ORG, "only the patient or the author organization tombstones a record"
        )
    if head.tombstoned:
        raise ContractError(TOMBSTONED, "the record is already tombstoned")
    tombstone = Tombstone(reason=reason, by=sender.did, height=ctx.height, time_ms=ctx.time_ms)
    return {key: dataclasses.replace(head, tombstone=tombstone).to_state()}
