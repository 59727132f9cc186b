"""Cross-organization records: a record held by another organization's node, read through
this node (issue 7).

A requester permitted by the custodian's policy (today: the patient) signs a
``request.key_release`` whose ``session_key`` is THIS node's X25519 encryption key: it
authorizes the custodian to release the data key to this organization. Steps:
1. from this node's own replica of the ledger, the record's anchor: the custodian
   organization (``author_org``), the version's CID and salted commitment;
2. the custodian's node (its peer URL, found by its did:key) releases the data key, wrapped
   (HPKE) to this node's encryption key; its policy decides and records the access event;
3. the ciphertext is fetched peer to peer by CID (the custodian first, then other peers) and
   checked by hash (the CID); it is kept in this node's blob store;
4. the data key is unwrapped with this node's key, the record decrypted (AES-256-GCM, AAD
   binding patient, record, version, type), and the salted commitment checked against the
   anchor in this node's own ledger, so neither the custodian nor a peer is trusted.
Not handled here: HTTP (``PeerRecordsPort``), who may call this node (the edge's hook).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medledger.core.cid import verify_cid
from medledger.core.crypto.key_wrap import WrapInfo, X25519KeyPair, unwrap_key
from medledger.core.crypto.record_cipher import RecordAad, open_record, verify_commitment
from medledger.core.ledger.envelope import TxLimits, decode_transaction
from medledger.errors import (
    InvalidInputError,
    MedledgerError,
    NetworkError,
    NotFoundError,
    TamperError,
    VerificationError,
)
from medledger.ports import BlobStore


class PeerRecordsPort(Protocol):
    def peer_did(self, url: str) -> str: ...
    def key_release(self, url: str, request: bytes) -> dict[str, Any]: ...
    def blob(self, url: str, cid: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    custodian: str
    version: int
    resource_type: str
    cid: str
    content: bytes


class PeerRecords:
    def __init__(
        self,
        *,
        state_get: Callable[[str], bytes | None],
        node_encryption: X25519KeyPair,
        blobs: BlobStore,
        peers: Sequence[str],
        port: PeerRecordsPort,
    ) -> None:
        self._state_get = state_get
        self._enc = node_encryption
        self._blobs = blobs
        self._peers = tuple(peers)
        self._port = port
        self._urls: dict[str, str] = {}

    @property
    def encryption_key(self) -> bytes:
        return self._enc.public_key

    def read(self, request: bytes) -> RemoteRecord:
        stx = decode_transaction(request, TxLimits())
        payload = stx.tx.payload
        if stx.tx.type != "request.key_release":
            raise InvalidInputError("give a signed request.key_release", parameter="type")
        if payload.get("session_key") != self._enc.public_key.hex():
            raise InvalidInputError(
                "session_key must be this node's encryption key", parameter="session_key"
            )
        patient, record_id = str(payload.get("patient")), str(payload.get("record_id"))
        # 1. The anchor, from this node's own ledger.
        head = self._state(f"record/{patient}/{record_id}")
        if head is None or head.get("tombstoned"):
            raise NotFoundError("no such record on the ledger (or it was erased)")
        custodian = str(head["author_org"])
        # 2. The custodian releases the data key to this node's key.
        url = self._url_of(custodian)
        release = self._port.key_release(url, request)
        try:
            version = int(release["version"])
            cid, grant = str(release["cid"]), str(release["grant"])
            resource_type = str(release["resource_type"])
            salt = bytes.fromhex(str(release["salt"]))
            wrap = base64.b64decode(str(release["wrap"]), validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise VerificationError("the custodian's key release is malformed") from e
        anchored = self._state(f"record/{patient}/{record_id}/{version}")
        if anchored is None or anchored.get("cid") != cid:
            raise TamperError("the custodian released a version that is not the one anchored")
        # 3. The ciphertext, peer to peer by CID, checked by hash.
        blob = self._fetch_blob(cid, url)
        # 4. Unwrap, decrypt, check the commitment against our own ledger.
        data_key = unwrap_key(
            wrap, self._enc.private_key, WrapInfo(record_id, version, stx.tx.sender, grant)
        )
        content = open_record(blob, data_key, RecordAad(record_id, version, resource_type, patient))
        verify_commitment(salt, content, bytes.fromhex(str(anchored["commitment"])))
        return RemoteRecord(custodian, version, resource_type, cid, content)

    def _state(self, key: str) -> dict[str, Any] | None:
        raw = self._state_get(key)
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def _url_of(self, did: str) -> str:
        if did not in self._urls:
            for url in self._peers:
                try:
                    self._urls[self._port.peer_did(url)] = url
                except MedledgerError:
                    continue
        if did not in self._urls:
            raise NotFoundError("the custodian organization's node is not a known peer")
        return self._urls[did]

    def _fetch_blob(self, cid: str, first: str) -> bytes:
        with_local = self._local(cid)
        if with_local is not None:
            return with_local
        for url in (first, *(p for p in self._peers if p != first)):
            try:
                blob = self._port.blob(url, cid)
                verify_cid(cid, blob)
            except (NetworkError, NotFoundError, VerificationError):
                continue
            self._blobs.put(blob)
            return blob
        raise NotFoundError(f"no peer holds the ciphertext {cid}")

    def _local(self, cid: str) -> bytes | None:
        try:
            blob = self._blobs.get(cid)
        except NotFoundError:
            return None
        verify_cid(cid, blob)
        return blob
