"""The FHIR R4 API's use cases: create, read, vread, update, delete, history, search,
``$everything``, Provenance and AuditEvent (issue 6, ADR 0018).

Every request, in order:
1. the principal's SMART scopes allow the interaction on the type (``ScopeSet.allows``), else
   denied (an access event when a patient's data was named); a ``patient/`` scope limits the
   request to the token's patient;
2. writes: the principal is a practitioner of this node's organization (or the node itself);
   the resource is validated (``core.fhir.resource``) and tied to a registered patient; the
   version goes through the records service (encrypted, stored by CID, anchored by this node,
   the custodian), then into the node-local index with its ledger anchor (the Provenance);
3. reads: the access gate decides each resource (``RecordService.authorise_many``: consent,
   break-glass, an access event per decision), and only permitted versions are decrypted and
   checked against the ledger;
4. searches: the index finds candidates, the gate decides each, and only then are results
   counted, paged and followed by ``_include``/``_revinclude``: a denied resource is never
   counted, paged, included or hinted at beyond one ``suppressed`` issue.
Not handled here: HTTP, content negotiation and the principal's token (the edge), the clock
(``now_ms`` is a parameter).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from medledger.core.access.gate import AccessRequest, Action
from medledger.core.audit.event import AccessEvent, new_event_id
from medledger.core.auth.principal import Principal
from medledger.core.auth.scopes import Context, Interaction
from medledger.core.fhir.provenance import instant, to_provenance
from medledger.core.fhir.resource import (
    PATIENT_ELEMENT,
    STORED_TYPES,
    check_id,
    parse_resource,
    patient_did,
    patient_reference,
    with_meta,
)
from medledger.core.fhir.rows import Activity, Head, VersionAnchor
from medledger.core.fhir.search import (
    MAX_CANDIDATES,
    PARAMETERS,
    Clause,
    Include,
    SearchQuery,
    extract,
)
from medledger.core.ledger.canonical import canonical_document
from medledger.core.ledger.contracts.common import (
    PATIENT,
    PRACTITIONER,
    acting_org,
    read_participant,
)
from medledger.core.ledger.runtime import StateReader
from medledger.errors import (
    AccessDeniedError,
    ConflictError,
    GoneError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
)
from medledger.services.access import AuditSink
from medledger.services.records import Authorised, RecordService

#: Resources ``_include``/``_revinclude`` and ``$everything`` may add to one answer.
MAX_INCLUDED = 200
MAX_EVERYTHING = 1000
#: Why a conditional interaction was refused, whether its condition matched several
#: resources or one the principal may not see (ADR 0021: the same words for both).
NOT_ONE_MATCH = "the condition does not select exactly one resource this request may use"


class FhirIndex(Protocol):
    def record(self, head: Head, anchor: VersionAnchor, rows: Sequence[Any]) -> None: ...
    def head(self, resource_type: str, record_id: str) -> Head | None: ...
    def versions(self, resource_type: str, record_id: str) -> list[VersionAnchor]: ...
    def anchor_of(self, record_id: str, version: int) -> VersionAnchor | None: ...
    def patient_resource(self, did: str) -> Head | None: ...
    def search(self, query: SearchQuery, *, patient: str | None, limit: int) -> list[Head]: ...
    def recent_versions(
        self, resource_type: str, *, patient: str | None, limit: int
    ) -> list[tuple[Head, VersionAnchor]]: ...
    def referencing(
        self, source_type: str, param: str, references: Sequence[str], limit: int
    ) -> list[Head]: ...


class StateSource(Protocol):
    def state_reader(self) -> StateReader: ...


@dataclass(frozen=True, slots=True)
class Written:
    resource: dict[str, Any]
    version: int
    provenance: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A write checked in full (validation, patient, scopes, writer, If-Match), not yet made;
    ``base_version``: the head it was checked against (None for a create)."""

    resource: dict[str, Any]
    patient: str
    activity: Activity
    base_version: int | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    anchor: VersionAnchor
    resource: dict[str, Any] | None  # None for a deletion


@dataclass(slots=True)
class SearchResult:
    matches: list[dict[str, Any]]
    included: list[dict[str, Any]]
    total: int
    suppressed: bool
    query: SearchQuery | None = None
    offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class FhirService:
    def __init__(
        self,
        *,
        records: RecordService,
        index: FhirIndex,
        ledger: StateSource,
        audit: AuditSink,
        node_did: str,
        new_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._records = records
        self._index = index
        self._ledger = ledger
        self._audit = audit
        self._node = node_did
        self._new_id = new_id
        self._locks = tuple(threading.Lock() for _ in range(64))

    # --- step 1: scopes --------------------------------------------------------------------
    def _scope(
        self,
        principal: Principal,
        resource_type: str,
        interaction: Interaction,
        *,
        patient: str | None = None,
        now_ms: int | None = None,
        record_id: str | None = None,
    ) -> Context:
        context = principal.scopes.allows(resource_type, interaction)
        if context == "patient" and patient is not None and principal.patient != patient:
            context = None
        if context is None:
            if patient is not None and now_ms is not None:
                self._record_denial(principal, patient, resource_type, record_id, now_ms)
            raise AccessDeniedError(
                f"the token's scopes do not allow {interaction!r} on {resource_type}"
            )
        return context

    def _record_denial(
        self,
        principal: Principal,
        patient: str,
        resource_type: str,
        record_id: str | None,
        now_ms: int,
    ) -> None:
        """A scope denial about a named patient is an access event like any other."""
        state = self._ledger.state_reader()
        requester = read_participant(state, principal.did)
        try:
            self._audit.record(
                AccessEvent(
                    event_id=new_event_id(secrets.token_bytes(16)),
                    time_ms=now_ms,
                    node=self._node,
                    actor=principal.did,
                    actor_org=None if requester is None else acting_org(state, requester),
                    patient=patient,
                    action="read",
                    resource_type=resource_type,
                    record_id=record_id,
                    version=None,
                    purpose=principal.purpose,
                    decision="deny",
                    reasons=("insufficient-scope",),
                )
            )
        except InvalidInputError:  # pragma: no cover - an unloggable principal is refused anyway
            return

    # --- step 2: writes --------------------------------------------------------------------
    def _writer(self, principal: Principal) -> None:
        if principal.did == self._node:
            return
        state = self._ledger.state_reader()
        who = read_participant(state, principal.did)
        if (
            who is None
            or not who.active
            or who.kind != PRACTITIONER
            or acting_org(state, who) != self._node
        ):
            raise AccessDeniedError("only practitioners of this node's organization write here")

    def _patient_of(self, resource: dict[str, Any], pending: Mapping[str, str]) -> str:
        if resource["resourceType"] == "Patient":
            did = patient_did(resource)
            who = read_participant(self._ledger.state_reader(), did)
            if who is None or not who.active or who.kind != PATIENT:
                raise InvalidInputError(
                    "Patient.identifier: the did:key is not a registered patient",
                    parameter="Patient.identifier",
                )
            return did
        patient_id = patient_reference(resource)
        if patient_id in pending:
            return pending[patient_id]
        head = self._index.head("Patient", patient_id)
        if head is None or head.deleted:
            element = PATIENT_ELEMENT[resource["resourceType"]]
            raise InvalidInputError(
                f"{resource['resourceType']}.{element}: no such Patient on this server",
                parameter=f"{resource['resourceType']}.{element}",
            )
        return head.patient

    def _lock(self, record_id: str) -> threading.Lock:
        return self._locks[hash(record_id) % len(self._locks)]

    def _put(
        self,
        principal: Principal,
        resource: dict[str, Any],
        patient: str,
        activity: Activity,
        now_ms: int,
        *,
        rows: Sequence[Any],
    ) -> Written:
        resource_type, record_id = str(resource["resourceType"]), str(resource["id"])
        result = self._records.put(
            patient=patient,
            record_id=record_id,
            resource_type=resource_type,
            content=canonical_document(resource),
            now_s=now_ms // 1000,
        )
        anchor = VersionAnchor(
            resource_type,
            record_id,
            result.version,
            now_ms,
            activity,
            principal.did,
            result.tx_id,
            result.height,
            result.log_index,
        )
        head = Head(resource_type, record_id, patient, result.version, now_ms, activity == "delete")
        self._index.record(head, anchor, rows)
        served = with_meta(resource, result.version, instant(now_ms))
        return Written(served, result.version, to_provenance(anchor, custodian=self._node))

    def prepare_create(
        self,
        principal: Principal,
        resource_type: str,
        body: object,
        *,
        record_id: str | None = None,
        pending: Mapping[str, str] | None = None,
    ) -> Prepared:
        """Everything a create checks, before anything is written; ``pending``: the Patients
        (id -> did:key) a transaction creates before this entry."""
        resource = parse_resource(body, resource_type)
        patient = self._patient_of(resource, pending or {})
        self._scope(principal, resource_type, "c", patient=patient)
        self._writer(principal)
        if resource_type == "Patient" and self._index.patient_resource(patient) is not None:
            raise ConflictError("a Patient resource for this did:key exists already")
        resource["id"] = record_id or self._new_id()
        return Prepared(resource, patient, "create", None)

    def prepare_update(
        self,
        principal: Principal,
        resource_type: str,
        record_id: str,
        body: object,
        *,
        if_match: int | None,
        pending: Mapping[str, str] | None = None,
    ) -> Prepared:
        check_id(record_id)
        resource = parse_resource(body, resource_type)
        if resource.get("id") != record_id:
            raise InvalidInputError("id: must equal the id in the URL", parameter="id")
        head = self._index.head(resource_type, record_id)
        if head is None:
            raise NotFoundError("no such resource (ids are assigned by the server)")
        patient = self._patient_of(resource, pending or {})
        self._scope(principal, resource_type, "u", patient=head.patient)
        self._writer(principal)
        if patient != head.patient:
            raise InvalidInputError(
                "the resource's patient cannot change",
                parameter=PATIENT_ELEMENT.get(resource_type, "Patient.identifier"),
            )
        if if_match is not None and if_match != head.version:
            raise PreconditionFailedError("If-Match: the resource is at another version")
        return Prepared(resource, patient, "update", head.version)

    def prepare_delete(
        self, principal: Principal, resource_type: str, record_id: str
    ) -> Prepared | None:
        check_id(record_id)
        head = self._index.head(resource_type, record_id)
        if head is None:
            raise NotFoundError("no such resource")
        self._scope(principal, resource_type, "d", patient=head.patient)
        self._writer(principal)
        if head.deleted:
            return None
        marker = {"resourceType": resource_type, "id": record_id}
        return Prepared(marker, head.patient, "delete", head.version)

    def commit(self, principal: Principal, prepared: Prepared, now_ms: int) -> Written:
        """Write a prepared version (its record's lock held; the head re-checked)."""
        resource = prepared.resource
        with self._lock(str(resource["id"])):
            head = self._index.head(str(resource["resourceType"]), str(resource["id"]))
            if (None if head is None else head.version) != prepared.base_version:
                raise PreconditionFailedError("the resource changed meanwhile")
            rows = () if prepared.activity == "delete" else extract(resource)
            return self._put(principal, resource, prepared.patient, prepared.activity, now_ms,
                             rows=rows)  # fmt: skip

    def new_id(self) -> str:
        """A fresh logical id (= the record id on the ledger)."""
        return self._new_id()

    def revert(self, principal: Principal, prepared: Prepared, done: Written, now_ms: int) -> None:
        """Undo a write of a failed transaction with a new version: a create is deleted, an
        update or delete restored to the version before (read as the custodian)."""
        resource = prepared.resource
        resource_type, record_id = str(resource["resourceType"]), str(resource["id"])
        if prepared.activity == "create":
            marker = {"resourceType": resource_type, "id": record_id}
            self.commit(principal, Prepared(marker, prepared.patient, "delete", done.version),
                        now_ms)  # fmt: skip
            return
        request = AccessRequest(self._node, prepared.patient, record_id, "read", "TREAT")
        (authorised,) = self._records.authorise_many([(request, prepared.base_version)], now_ms)
        if authorised is None:
            raise ConflictError("the version before could not be read back")
        before = json.loads(self._records.open(authorised).content)
        self.commit(principal, Prepared(before, prepared.patient, "update", done.version), now_ms)

    def create(
        self, principal: Principal, resource_type: str, body: object, now_ms: int
    ) -> Written:
        """FHIR create: the server assigns the id (the ledger's record id)."""
        return self.commit(principal, self.prepare_create(principal, resource_type, body), now_ms)

    def update(
        self,
        principal: Principal,
        resource_type: str,
        record_id: str,
        body: object,
        *,
        if_match: int | None,
        now_ms: int,
    ) -> Written:
        """FHIR update of an existing resource; ``if_match``: the version it must be at."""
        prepared = self.prepare_update(principal, resource_type, record_id, body, if_match=if_match)
        return self.commit(principal, prepared, now_ms)

    def delete(
        self, principal: Principal, resource_type: str, record_id: str, now_ms: int
    ) -> int | None:
        """FHIR delete: a new version marked deleted (history kept); not erasure."""
        prepared = self.prepare_delete(principal, resource_type, record_id)
        return None if prepared is None else self.commit(principal, prepared, now_ms).version

    # --- step 3: reads ---------------------------------------------------------------------
    def _request(
        self, principal: Principal, patient: str, record_id: str, action: Action
    ) -> AccessRequest:
        return AccessRequest(
            requester=principal.did,
            patient=patient,
            record_id=record_id,
            action=action,
            purpose=principal.purpose,
            justification=principal.justification,
        )

    def _authorise(
        self,
        principal: Principal,
        heads: Sequence[tuple[Head, int | None]],
        action: Action,
        now_ms: int,
    ) -> list[Authorised | None]:
        requests = [(self._request(principal, h.patient, h.record_id, action), v) for h, v in heads]
        return self._records.authorise_many(requests, now_ms) if requests else []

    def _served(self, authorised: Authorised, time_ms: int) -> dict[str, Any]:
        content = self._records.open(authorised).content
        resource = json.loads(content)
        return with_meta(resource, authorised.stored.version, instant(time_ms))

    def _version_time(self, resource_type: str, record_id: str, version: int) -> VersionAnchor:
        for anchor in self._index.versions(resource_type, record_id):
            if anchor.version == version:
                return anchor
        raise NotFoundError("no such version")

    def read(
        self, principal: Principal, resource_type: str, record_id: str, now_ms: int
    ) -> dict[str, Any]:
        check_id(record_id)
        head = self._index.head(resource_type, record_id)
        if head is None:
            raise NotFoundError("no such resource")
        self._scope(principal, resource_type, "r", patient=head.patient, now_ms=now_ms,
                    record_id=record_id)  # fmt: skip
        (authorised,) = self._authorise(principal, [(head, head.version)], "read", now_ms)
        if authorised is None:
            raise AccessDeniedError("access denied")
        if head.deleted:
            raise GoneError("the resource was deleted")
        return self._served(authorised, head.time_ms)

    def vread(
        self, principal: Principal, resource_type: str, record_id: str, version: int, now_ms: int
    ) -> dict[str, Any]:
        check_id(record_id)
        head = self._index.head(resource_type, record_id)
        if head is None or not 1 <= version <= head.version:
            raise NotFoundError("no such version")
        self._scope(principal, resource_type, "r", patient=head.patient, now_ms=now_ms,
                    record_id=record_id)  # fmt: skip
        anchor = self._version_time(resource_type, record_id, version)
        (authorised,) = self._authorise(principal, [(head, version)], "read", now_ms)
        if authorised is None:
            raise AccessDeniedError("access denied")
        if anchor.activity == "delete":
            raise GoneError("this version is a deletion")
        return self._served(authorised, anchor.time_ms)

    def history(
        self, principal: Principal, resource_type: str, record_id: str, now_ms: int
    ) -> list[HistoryEntry]:
        """Instance history, newest first; each version decided by the gate."""
        check_id(record_id)
        head = self._index.head(resource_type, record_id)
        if head is None:
            raise NotFoundError("no such resource")
        self._scope(principal, resource_type, "r", patient=head.patient, now_ms=now_ms,
                    record_id=record_id)  # fmt: skip
        anchors = self._index.versions(resource_type, record_id)[:MAX_INCLUDED]
        decided = self._authorise(principal, [(head, a.version) for a in anchors], "read", now_ms)
        if any(d is None for d in decided):
            raise AccessDeniedError("access denied")
        return [
            HistoryEntry(
                a, None if a.activity == "delete" or d is None else self._served(d, a.time_ms)
            )
            for a, d in zip(anchors, decided, strict=True)
        ]

    def type_history(
        self, principal: Principal, resource_type: str, count: int, now_ms: int
    ) -> tuple[list[HistoryEntry], bool]:
        """Type history, newest first: only versions the gate permits (and whether any were
        withheld); at most ``count``."""
        patient = self._patient_scope(principal, resource_type)
        rows = self._index.recent_versions(resource_type, patient=patient, limit=MAX_INCLUDED)
        decided = self._authorise(principal, [(h, a.version) for h, a in rows], "search", now_ms)
        permitted = [(a, d) for (_, a), d in zip(rows, decided, strict=True) if d is not None]
        entries = [
            HistoryEntry(a, None if a.activity == "delete" else self._served(d, a.time_ms))
            for a, d in permitted[:count]
        ]
        return entries, len(permitted) < len(rows)

    def provenance_of(self, principal: Principal, target: str, now_ms: int) -> list[dict[str, Any]]:
        """``Provenance?target=Type/id``: every version's Provenance, if the target may be read."""
        resource_type, _, record_id = target.partition("/")
        record_id = record_id.split("/_history/")[0]
        check_id(record_id, "target")
        head = self._index.head(resource_type, record_id)
        if head is None:
            return []
        self._scope(principal, "Provenance", "s")
        (authorised,) = self._authorise(principal, [(head, head.version)], "search", now_ms)
        if authorised is None:
            return []
        return [
            to_provenance(a, custodian=self._node)
            for a in self._index.versions(resource_type, record_id)
        ]

    def provenance(self, principal: Principal, provenance: str, now_ms: int) -> dict[str, Any]:
        """A write's Provenance; readable by whoever may read the version it is about."""
        check_id(provenance)
        record_id, _, number = provenance.rpartition("-")
        if not number.isdigit() or not record_id:
            raise NotFoundError("no such Provenance")
        anchor = self._index.anchor_of(record_id, int(number))
        head = None if anchor is None else self._index.head(anchor.resource_type, record_id)
        if anchor is None or head is None:
            raise NotFoundError("no such Provenance")
        self._scope(principal, "Provenance", "r", patient=head.patient, now_ms=now_ms,
                    record_id=record_id)  # fmt: skip
        (authorised,) = self._authorise(principal, [(head, anchor.version)], "read", now_ms)
        if authorised is None:
            raise AccessDeniedError("access denied")
        return to_provenance(anchor, custodian=self._node)

    # --- step 4: search --------------------------------------------------------------------
    def _patient_scope(self, principal: Principal, resource_type: str) -> str | None:
        context = self._scope(principal, resource_type, "s")
        if context != "patient":
            return None
        if principal.patient is None:
            raise AccessDeniedError("a patient/ scope needs the token's patient")
        return principal.patient

    def search(self, principal: Principal, query: SearchQuery, now_ms: int) -> SearchResult:
        """Candidates from the index, each decided by the gate; then count, page, include."""
        patient = self._patient_scope(principal, query.resource_type)
        heads = self._index.search(query, patient=patient, limit=MAX_CANDIDATES + 1)
        if len(heads) > MAX_CANDIDATES:
            raise InvalidInputError(
                f"the search matches more than {MAX_CANDIDATES} resources: narrow it",
                parameter="query",
            )
        decided = self._authorise(principal, [(h, h.version) for h in heads], "search", now_ms)
        permitted = [(h, d) for h, d in zip(heads, decided, strict=True) if d is not None]
        suppressed = len(permitted) < len(heads)
        page = permitted[query.offset : query.offset + query.count]
        matches = [self._served(d, h.time_ms) for h, d in page]
        included, withheld = self._includes(principal, query.includes, page, matches, now_ms)
        return SearchResult(
            matches, included, len(permitted), suppressed or withheld, query, query.offset
        )

    def _includes(
        self,
        principal: Principal,
        includes: Sequence[Include],
        page: Sequence[tuple[Head, Authorised]],
        matches: Sequence[dict[str, Any]],
        now_ms: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        seen = {(h.resource_type, h.record_id) for h, _ in page}
        wanted: list[Head] = []
        for include in includes:
            if include.reverse:
                refs = [f"{h.resource_type}/{h.record_id}" for h, _ in page]
                found = self._index.referencing(
                    include.source_type, include.param, refs, MAX_INCLUDED
                )
            else:
                found = []
                for resource in matches:
                    for ref in _references(resource, include.source_type, include.param):
                        target_type, _, target_id = ref.partition("/")
                        head = self._index.head(target_type, target_id)
                        if head is not None and not head.deleted:
                            found.append(head)
            for head in found:
                key = (head.resource_type, head.record_id)
                if key not in seen and len(wanted) < MAX_INCLUDED:
                    seen.add(key)
                    wanted.append(head)
        decided = self._authorise(principal, [(h, h.version) for h in wanted], "search", now_ms)
        included = [self._served(d, h.time_ms) for h, d in zip(wanted, decided, strict=True) if d]
        return included, len(included) < len(wanted)

    def everything(self, principal: Principal, patient_id: str, now_ms: int) -> SearchResult:
        """``Patient/{id}/$everything``: the Patient and every resource of theirs the
        principal may read (each decided by the gate), up to ``MAX_EVERYTHING``."""
        check_id(patient_id)
        head = self._index.head("Patient", patient_id)
        if head is None or head.deleted:
            raise NotFoundError("no such Patient")
        wanted = [head]
        for resource_type in STORED_TYPES[1:]:
            if principal.scopes.allows(resource_type, "s") is None:
                continue
            param = "patient" if "patient" in PARAMETERS[resource_type] else "subject"
            clause = Clause(
                param,
                "reference",
                exact=False,
                raw=f"Patient/{patient_id}",
                values=(f"Patient/{patient_id}",),
            )
            query = SearchQuery(resource_type, (clause,))
            wanted += self._index.search(query, patient=head.patient, limit=MAX_EVERYTHING)
        self._scope(principal, "Patient", "r", patient=head.patient, now_ms=now_ms,
                    record_id=patient_id)  # fmt: skip
        wanted = wanted[:MAX_EVERYTHING]
        decided = self._authorise(principal, [(h, h.version) for h in wanted], "search", now_ms)
        matches = [self._served(d, h.time_ms) for h, d in zip(wanted, decided, strict=True) if d]
        return SearchResult(matches, [], len(matches), len(matches) < len(wanted))

    # --- conditional interactions (ADR 0021) -----------------------------------------------
    def match(self, principal: Principal, query: SearchQuery, now_ms: int) -> Head | None:
        """The one live resource a condition selects (FHIR R4 §3.1.0.8, §3.1.0.4.3,
        §3.1.0.7.1), or None when it selects none. Matching is a search: the scopes must
        allow ``s`` on the type, and the one candidate is decided by the gate (an access
        event). More than one candidate, or one the gate denies: ``PreconditionFailedError``
        with the same words, so a denied resource is told apart neither from an ambiguous
        match nor by its id, content or version."""
        patient = self._patient_scope(principal, query.resource_type)
        heads = self._index.search(query, patient=patient, limit=2)
        if not heads:
            return None
        if len(heads) == 1:
            (authorised,) = self._authorise(principal, [(heads[0], heads[0].version)],
                                            "search", now_ms)  # fmt: skip
            if authorised is not None:
                return heads[0]
        raise PreconditionFailedError(NOT_ONE_MATCH)


def _references(resource: dict[str, Any], resource_type: str, param: str) -> list[str]:
    """``Type/id`` references a resource's reference parameter holds (for ``_include``)."""
    spec = PARAMETERS.get(resource_type, {}).get(param)
    if spec is None:
        return []
    out = []
    for path in spec.paths:
        node = resource.get(path)
        reference = node.get("reference") if isinstance(node, dict) else None
        if isinstance(reference, str) and reference.count("/") == 1:
            out.append(reference)
    return out
