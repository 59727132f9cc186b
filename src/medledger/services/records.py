"""Off-chain records: encrypt, store and anchor; read and release keys under the access
policy; erase by crypto-shredding.

Handles, per use case:
- ``put``: a fresh data key, nonce and salt per version; AES-256-GCM with AAD binding the
  record; the ciphertext stored by CID; the salted commitment and CID anchored on the ledger
  (a ``record.anchor`` transaction signed by this node, the custodian); the resource's
  security labels, codes and data time (``core.access.facts``) kept off-chain; the data key
  kept only as HPKE wraps (to this node's encryption key and to the patient's, if
  published). Key material is saved before the anchor is submitted and becomes readable only
  once the anchor committed; ``reconcile`` settles versions a crash left in between.
- ``read`` / ``release_key``: the access gate decides from the patient's consents (deny by
  default, ``AccessService``), every decision is an access event, and a permit waits for its
  event to be durable; the version's labels, codes and data time (kept in the vault since
  its put) are what consent limits match; a read checks the blob's CID and the salted
  commitment against the ledger. A key release wraps the data key to the requester's
  per-session ephemeral key, at that moment: a later denial yields no new releases.
- ``erase``: shreds salts and wraps, deletes the ciphertexts, then records a tombstone.
Not handled here: randomness and clocks (parameters), storage (ports), who the requester is
(the HTTP edge verifies signed requests).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from medledger.core.access.facts import ResourceFacts, resource_facts
from medledger.core.access.gate import AccessDecision, AccessRequest, RecordFacts
from medledger.core.crypto.key_wrap import WrapInfo, X25519KeyPair, unwrap_key, wrap_key
from medledger.core.crypto.record_cipher import (
    RecordAad,
    open_record,
    salted_commitment,
    seal_record,
    verify_commitment,
)
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.envelope import sign_transaction
from medledger.core.ledger.tx import Transaction
from medledger.errors import (
    ConflictError,
    InvalidInputError,
    MedledgerError,
    NotFoundError,
    TamperError,
)
from medledger.ports import BlobStore, KeyedVersion
from medledger.services.access import DURABLE_WAIT_S, AccessService
from medledger.services.key_cache import DataKeyCache
from medledger.services.ledger import LedgerNode

TX_TTL_S = 120
ANCHOR_WAIT_S = 30.0


class KeyVault(Protocol):
    def save_pending(self, version: KeyedVersion, wraps: list[tuple[str, bytes]]) -> None: ...
    def mark_anchored(self, patient: str, record_id: str, version: int) -> None: ...
    def drop_version(self, patient: str, record_id: str, version: int) -> None: ...
    def version(self, patient: str, record_id: str, version: int) -> KeyedVersion | None: ...
    def pending(self) -> list[KeyedVersion]: ...
    def shred(self, patient: str, record_id: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class PutResult:
    patient: str
    record_id: str
    version: int
    cid: str
    tx_id: str
    height: int
    log_index: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    version: int
    resource_type: str
    cid: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Authorised:
    """A version the access gate permitted (its event durable), verified against the ledger,
    not yet decrypted (``RecordService.open``)."""

    request: AccessRequest
    stored: KeyedVersion
    anchored: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeyRelease:
    version: int
    resource_type: str
    cid: str
    salt: bytes
    wrap: bytes
    grant: str


class RecordService:
    def __init__(
        self,
        *,
        ledger: LedgerNode,
        access: AccessService,
        vault: KeyVault,
        blobs: BlobStore,
        node_key: ParticipantKey,
        node_encryption: X25519KeyPair,
        random_bytes: Callable[[int], bytes],
        on_erase: Callable[[str, str], None] | None = None,
    ) -> None:
        self._on_erase = on_erase
        self._ledger = ledger
        self._access = access
        self._vault = vault
        self._blobs = blobs
        self._node_key = node_key
        self._node_enc = node_encryption
        self._random = random_bytes
        # Puts to one record are serialised (its next version depends on the head); puts to
        # different records share a block. Lock striping keeps the lock set bounded.
        self._put_locks = tuple(threading.Lock() for _ in range(64))
        self._keys = DataKeyCache()
        self._published = False

    # --- ledger state -----------------------------------------------------------------------
    def _state(self, key: str) -> dict[str, Any] | None:
        raw = self._ledger.state_get(key)
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def _head(self, patient: str, record_id: str) -> dict[str, Any] | None:
        return self._state(f"record/{patient}/{record_id}")

    def _submit(self, tx_type: str, payload: dict[str, Any], now_s: int) -> tuple[str, Any]:
        tx = Transaction(
            network=self._ledger.network,
            type=tx_type,
            payload=payload,
            sender=self._node_key.did,
            nonce=self._random(18).hex(),
            expires=now_s + TX_TTL_S,
        )
        stx = sign_transaction(tx, self._node_key.sign)
        self._ledger.submit(stx.wire, now_s)
        status = self._ledger.wait(stx.tx_id, ANCHOR_WAIT_S)
        return stx.tx_id.hex(), status

    def publish_encryption_key(self, now_s: int) -> None:
        """Make sure this node's encryption key is on the ledger (recipients need it).
        Called before the node stores its first record."""
        if self._published:
            return
        me = self._state(f"participant/{self._node_key.did}")
        if me is not None and me.get("enc_key") == self._node_enc.public_key.hex():
            self._published = True
            return
        _, status = self._submit(
            "participant.set_encryption_key", {"enc_key": self._node_enc.public_key.hex()}, now_s
        )
        if not status.ok:
            raise ConflictError(f"could not publish the node's encryption key: {status.reason}")
        self._published = True

    # --- put --------------------------------------------------------------------------------
    def _record_lock(self, patient: str, record_id: str) -> threading.Lock:
        """The lock serialising one record's puts and erasure."""
        return self._put_locks[hash((patient, record_id)) % len(self._put_locks)]

    def put(
        self, *, patient: str, record_id: str, resource_type: str, content: bytes, now_s: int
    ) -> PutResult:
        """Encrypt, store and anchor a new version of a record."""
        self.publish_encryption_key(now_s)
        with self._record_lock(patient, record_id):
            head = self._head(patient, record_id)
            if head is not None and head.get("tombstoned"):
                raise ConflictError("the record was erased")
            version = 1 if head is None else int(head["version"]) + 1
            if self._vault.version(patient, record_id, version) is not None:
                raise ConflictError(f"version {version} is still being anchored")
            if head is not None and head.get("resource_type") != resource_type:
                raise InvalidInputError("resource type cannot change", parameter="resource_type")
            aad = RecordAad(record_id, version, resource_type, patient)
            data_key, nonce, salt = self._random(32), self._random(12), self._random(32)
            blob = seal_record(content, data_key, nonce, aad)
            cid = self._blobs.put(blob)
            wraps = self._wraps(data_key, patient, record_id, version)
            stored = KeyedVersion(
                patient=patient,
                record_id=record_id,
                version=version,
                resource_type=resource_type,
                cid=cid,
                salt=salt,
                node_wrap=dict(wraps)[self._node_key.did],
                anchored=False,
                facts=_facts_of(content).to_bytes(),
            )
            self._vault.save_pending(stored, wraps)
            payload = {
                "patient": patient,
                "record_id": record_id,
                "resource_type": resource_type,
                "version": version,
                "commitment": salted_commitment(salt, content).hex(),
                "cid": cid,
                "prev": None if head is None else head["hash"],
            }
            try:
                tx_id, status = self._submit("record.anchor", payload, now_s)
            except MedledgerError:
                self._abandon(patient, record_id, version, cid)
                raise
            if status.status != "committed":
                # Still queued, so it may yet commit: keep its keys and ciphertext (pending).
                # A read settles it once the ledger has it; ``reconcile`` at the latest.
                raise ConflictError("the record's anchor is not committed yet")
            if not status.ok:
                self._abandon(patient, record_id, version, cid)
                raise ConflictError(f"the record was not anchored: {status.reason}")
            self._vault.mark_anchored(patient, record_id, version)
            return PutResult(
                patient, record_id, version, cid, tx_id, int(status.height), int(status.log_index)
            )

    def _wraps(
        self, data_key: bytes, patient: str, record_id: str, version: int
    ) -> list[tuple[str, bytes]]:
        """The node's own wrap, and the patient's if the patient published a key."""
        node = self._node_key.did
        wraps = [
            (
                node,
                wrap_key(
                    data_key,
                    self._node_enc.public_key,
                    WrapInfo(record_id, version, node, "custodian"),
                ),
            )
        ]
        published = (self._state(f"participant/{patient}") or {}).get("enc_key")
        if isinstance(published, str):
            info = WrapInfo(record_id, version, patient, "patient")
            wraps.append((patient, wrap_key(data_key, bytes.fromhex(published), info)))
        return wraps

    def _abandon(self, patient: str, record_id: str, version: int, cid: str) -> None:
        self._keys.forget(patient, record_id)
        self._vault.drop_version(patient, record_id, version)
        self._blobs.delete(cid)

    def reconcile(self) -> int:
        """Settle versions a crash left between saving keys and the anchor's commit."""
        settled = 0
        for pending in self._vault.pending():
            anchored = self._state(
                f"record/{pending.patient}/{pending.record_id}/{pending.version}"
            )
            if anchored is not None and anchored.get("cid") == pending.cid:
                self._vault.mark_anchored(pending.patient, pending.record_id, pending.version)
            else:
                self._abandon(pending.patient, pending.record_id, pending.version, pending.cid)
            settled += 1
        return settled

    def _settle(self, stored: KeyedVersion, anchored: dict[str, Any]) -> KeyedVersion:
        """A pending version the ledger has since committed (its put stopped waiting)."""
        if anchored.get("cid") != stored.cid:
            return stored
        self._vault.mark_anchored(stored.patient, stored.record_id, stored.version)
        return dataclasses.replace(stored, anchored=True)

    # --- read and key release ---------------------------------------------------------------
    def _facts(self, head: dict[str, Any] | None, stored: KeyedVersion | None) -> RecordFacts:
        """What the gate knows of a version: its custodian and type from the ledger, its labels,
        codes and data time from the vault (none for a version this node does not hold)."""
        custodian = None if head is None else head.get("author_org")
        resource_type = None if head is None else head.get("resource_type")
        known = ResourceFacts() if stored is None else ResourceFacts.from_bytes(stored.facts)
        return RecordFacts(
            custodian=custodian if isinstance(custodian, str) else None,
            resource_type=resource_type if isinstance(resource_type, str) else None,
            security_labels=known.security_labels,
            codes=known.codes,
            data_time_ms=known.data_time_ms,
        )

    def _authorised_version(
        self, request: AccessRequest, version: int | None, now_ms: int
    ) -> tuple[AccessDecision, KeyedVersion, dict[str, Any]]:
        """The gate's decision (recorded as an access event), then the version, verified."""
        record_id = _record_id(request)
        head = self._head(request.patient, record_id)
        live = head if head is not None and not head.get("tombstoned") else None
        number = version
        if number is None and live is not None:
            number = int(live["version"])
        stored = None if number is None else self._vault.version(request.patient, record_id, number)
        decision = self._access.require(request, self._facts(head, stored), now_ms, version=number)
        if live is None or number is None:
            raise NotFoundError("no such record (or it was erased)")
        anchored = self._state(f"record/{request.patient}/{record_id}/{number}")
        if stored is not None and not stored.anchored and anchored is not None:
            stored = self._settle(stored, anchored)
        if anchored is None or stored is None or not stored.anchored:
            raise NotFoundError("no such version held by this node")
        if anchored.get("cid") != stored.cid:
            raise TamperError("the stored ciphertext is not the one anchored on the ledger")
        return decision, stored, anchored

    def _data_key(self, stored: KeyedVersion) -> bytes:
        """A version's data key, unwrapped from the node's wrap (recently used ones cached)."""
        info = WrapInfo(stored.record_id, stored.version, self._node_key.did, "custodian")
        return self._keys.get_or_unwrap(
            stored.patient,
            stored.record_id,
            stored.version,
            stored.node_wrap,
            lambda: unwrap_key(stored.node_wrap, self._node_enc.private_key, info),
        )

    def read(self, request: AccessRequest, version: int | None, now_ms: int) -> ReadResult:
        """Decrypt a version for a permitted requester; verify CID and commitment."""
        _, stored, anchored = self._authorised_version(request, version, now_ms)
        record_id = _record_id(request)
        aad = RecordAad(record_id, stored.version, stored.resource_type, request.patient)
        data_key = self._data_key(stored)
        content = open_record(self._blobs.get(stored.cid), data_key, aad)
        verify_commitment(stored.salt, content, bytes.fromhex(str(anchored["commitment"])))
        return ReadResult(stored.version, stored.resource_type, stored.cid, content)

    def authorise_many(
        self, requests: list[tuple[AccessRequest, int | None]], now_ms: int
    ) -> list[Authorised | None]:
        """For a search: every request decided and recorded as an access event, the permits'
        events awaited together (one batch seal, not one per resource), each permitted version
        verified like ``read``. None where access was denied or the version is gone."""
        looked_up: list[tuple[AccessRequest, int | None, KeyedVersion | None, RecordFacts]] = []
        for request, version in requests:
            record_id = _record_id(request)
            head = self._head(request.patient, record_id)
            live = head if head is not None and not head.get("tombstoned") else None
            number = version if version is not None or live is None else int(live["version"])
            stored = (
                None if number is None else self._vault.version(request.patient, record_id, number)
            )
            looked_up.append((request, number, stored, self._facts(head, stored)))
        decided = self._access.decide_many(
            [(request, facts, number) for request, number, _, facts in looked_up], now_ms
        )
        for decision, ticket in decided:
            if decision.permit:
                ticket.wait_durable(DURABLE_WAIT_S)  # raises: then nothing is released
        out: list[Authorised | None] = []
        for (request, number, stored, _), (decision, _) in zip(looked_up, decided, strict=True):
            out.append(
                self._verified(request, number, stored)
                if decision.permit and number is not None
                else None
            )
        return out

    def _verified(
        self, request: AccessRequest, number: int, stored: KeyedVersion | None
    ) -> Authorised | None:
        anchored = self._state(f"record/{request.patient}/{_record_id(request)}/{number}")
        if stored is not None and not stored.anchored and anchored is not None:
            stored = self._settle(stored, anchored)
        if anchored is None or stored is None or not stored.anchored:
            return None
        if anchored.get("cid") != stored.cid:
            raise TamperError("the stored ciphertext is not the one anchored on the ledger")
        return Authorised(request, stored, anchored)

    def open(self, authorised: Authorised) -> ReadResult:
        """Decrypt an authorised version; verify CID and commitment (as ``read``)."""
        request, stored, anchored = authorised.request, authorised.stored, authorised.anchored
        record_id = _record_id(request)
        aad = RecordAad(record_id, stored.version, stored.resource_type, request.patient)
        data_key = self._data_key(stored)
        content = open_record(self._blobs.get(stored.cid), data_key, aad)
        verify_commitment(stored.salt, content, bytes.fromhex(str(anchored["commitment"])))
        return ReadResult(stored.version, stored.resource_type, stored.cid, content)

    def release_key(
        self, request: AccessRequest, version: int | None, session_key: bytes, now_ms: int
    ) -> KeyRelease:
        """Wrap a version's data key to the requester's ephemeral session key, if permitted."""
        decision, stored, _ = self._authorised_version(request, version, now_ms)
        record_id = _record_id(request)
        data_key = self._data_key(stored)
        grant = decision.basis or "unknown"
        release = WrapInfo(record_id, stored.version, request.requester, grant)
        wrap = wrap_key(data_key, session_key, release)
        return KeyRelease(
            stored.version, stored.resource_type, stored.cid, stored.salt, wrap, grant
        )

    # --- erasure ----------------------------------------------------------------------------
    def erase(self, request: AccessRequest, now_ms: int) -> dict[str, Any]:
        """GDPR art. 17 by crypto-shredding, then a tombstone on the ledger.

        Holds the record's put lock throughout, so no version is saved between the shred and
        the tombstone (it would outlive the erasure)."""
        record_id = _record_id(request)
        with self._record_lock(request.patient, record_id):
            return self._erase(request, record_id, now_ms)

    def _erase(self, request: AccessRequest, record_id: str, now_ms: int) -> dict[str, Any]:
        head = self._head(request.patient, record_id)
        self._access.require(request, self._facts(head, None), now_ms)
        if head is None:
            raise NotFoundError("no such record")
        self._keys.forget(request.patient, record_id)
        cids = self._vault.shred(request.patient, record_id)
        for cid in cids:
            self._blobs.delete(cid)
        if self._on_erase is not None:  # e.g. the FHIR search index's rows (PHI) go too
            self._on_erase(request.patient, record_id)
        if head.get("tombstoned"):
            return {"erased_versions": len(cids), "tombstone": None}
        payload = {"patient": request.patient, "record_id": record_id, "reason": "erasure"}
        tx_id, status = self._submit("record.tombstone", payload, now_ms // 1000)
        if status.status != "committed" or not status.ok:
            raise ConflictError(
                f"key material destroyed, but the tombstone failed: {status.reason}"
            )
        return {"erased_versions": len(cids), "tombstone": tx_id, "height": status.height}


def _facts_of(content: bytes) -> ResourceFacts:
    """The gate's facts of a FHIR resource; none if the content is not a JSON object."""
    try:
        resource = json.loads(content)
    except (ValueError, RecursionError):
        return ResourceFacts()
    return resource_facts(resource) if isinstance(resource, dict) else ResourceFacts()


def _record_id(request: AccessRequest) -> str:
    if request.record_id is None:
        raise InvalidInputError("a record request names its record_id", parameter="record_id")
    return request.record_id
