"""Transaction and batch Bundles (FHIR R4 §3.1.0.11), and the conditional interactions
(create ``If-None-Exist``, update and delete by search; §3.1.0.8, §3.1.0.4.3, §3.1.0.7.1):
the use case.

A transaction is all-or-nothing in the sense a ledger allows (ADR 0018, 0020):
1. parse the Bundle (``core.fhir.bundle``);
2. resolve every condition against the index, through the gate (``FhirService.match``): a
   condition selecting several resources, or one the principal may not see, fails (412);
3. assign ids (fresh ones to creates, the matched ones to conditional updates and deletes)
   and resolve ``urn:uuid`` references; no resource may be written twice;
4. check EVERY write in full before writing anything, in the specification's order
   (DELETE, POST, PUT; Patients first within each, so references to them hold): validation,
   the patient, scopes, who writes, ``If-Match``; one failure and nothing is written;
5. write them, each anchored on the ledger; then run the GET/HEAD entries (reads see the
   writes). If a write or a read still fails, the entries already written are reverted by
   new versions (a create is logically deleted, an update or delete restored to the version
   before), since an anchored version cannot be unwritten.
A batch runs each entry on its own and reports each outcome. A direct conditional
interaction is a transaction of one entry (``conditional``). Whatever has a condition runs
under one lock, matching to last write, so concurrent conditional creates cannot duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medledger.core.auth.principal import Principal
from medledger.core.fhir.bundle import ORDER, Entry, parse_bundle, resolve_references
from medledger.core.fhir.resource import STORED_TYPES, patient_did
from medledger.core.fhir.rows import Head
from medledger.core.fhir.search import date_range, parse_condition, parse_query
from medledger.errors import (
    InvalidInputError,
    MedledgerError,
    NotFoundError,
    PreconditionFailedError,
)
from medledger.services.fhir import FhirService, Prepared, SearchResult, Written

log = logging.getLogger("medledger.fhir")

Action = Literal["create", "update", "delete", "matched", "nothing", "get"]
_WRITES = ("create", "update", "delete")


def _located(entry: Entry, error: MedledgerError) -> MedledgerError:
    """The error, naming the entry it is about."""
    where = f"Bundle.entry[{entry.index}]"
    if isinstance(error, InvalidInputError):
        parameter = error.parameter or "resource"
        located = InvalidInputError(f"{where}: {error}", parameter=f"{where}.{parameter}")
        located.__cause__ = error
        return located
    try:
        return type(error)(f"{where}: {error}")
    except TypeError:  # pragma: no cover - every error of the tree takes a message
        return error


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one entry did: ``status`` (200, 201, 204, 304) and what goes with it -- the
    version written, the resource a conditional create matched (``matched``), what a GET read
    or searched -- or, in a batch, the error it met."""

    status: int
    written: Written | None = None
    matched: Head | None = None
    resource: dict[str, Any] | None = None
    search: SearchResult | None = None
    error: MedledgerError | None = None


@dataclass(frozen=True, slots=True)
class BundleResult:
    """``transaction-response`` or ``batch-response``: per entry, in Bundle order."""

    kind: str
    entries: list[tuple[Entry, Outcome]]


@dataclass(frozen=True, slots=True)
class _Step:
    entry: Entry
    action: Action
    matched: Head | None = None


def _action(entry: Entry, found: Mapping[int, Head | None]) -> Action:
    if entry.method in ("GET", "HEAD"):
        return "get"
    if entry.condition is None:
        return "create" if entry.method == "POST" else (
            "update" if entry.method == "PUT" else "delete")  # fmt: skip
    head = found[entry.index]
    if entry.method == "POST":
        return "create" if head is None else "matched"
    if entry.method == "PUT":
        return "create" if head is None else "update"
    return "nothing" if head is None else "delete"


def _order(step: _Step) -> tuple[int, bool, int]:
    entry = step.entry
    return ORDER[entry.method], entry.resource_type != "Patient", entry.index


class BundleService:
    def __init__(self, fhir: FhirService) -> None:
        self._fhir = fhir
        # Bundles and interactions with a condition run one at a time, from matching to the
        # last write: two conditional creates of the same thing cannot both match nothing.
        self._conditional = threading.Lock()

    def process(self, principal: Principal, body: object, now_ms: int) -> BundleResult:
        kind, entries = parse_bundle(body)
        run = self._batch if kind == "batch" else self._transaction
        if not any(e.condition is not None for e in entries):
            return run(principal, entries, now_ms)
        with self._conditional:
            return run(principal, entries, now_ms)

    def conditional(self, principal: Principal, entry: Entry, now_ms: int) -> Outcome:
        """A direct conditional create, update or delete: a transaction of that one entry (its
        errors as they are, not located in a Bundle)."""
        try:
            with self._conditional:
                return self._transaction(principal, [entry], now_ms).entries[0][1]
        except MedledgerError as e:
            cause = e.__cause__
            raise (cause if isinstance(cause, MedledgerError) else e) from None

    # --- steps 2-3: conditions and ids --------------------------------------------------------
    def _match(self, principal: Principal, entry: Entry, now_ms: int) -> Head | None:
        query = parse_condition(entry.resource_type, entry.condition or ())
        return self._fhir.match(principal, query, now_ms)

    def _steps(self, entries: list[Entry], found: Mapping[int, Head | None]) -> list[_Step]:
        ids = {i: None if h is None else h.record_id for i, h in found.items()}
        resolved = resolve_references(entries, self._fhir.new_id, ids)
        return [_Step(e, _action(e, found), found.get(e.index)) for e in resolved]

    # --- step 4: check a write ----------------------------------------------------------------
    def _prepare(
        self, principal: Principal, step: _Step, pending: dict[str, str]
    ) -> Prepared | None:
        try:
            return self._check(principal, step, pending)
        except MedledgerError as e:
            raise _located(step.entry, e) from e

    def _check(self, principal: Principal, step: _Step, pending: dict[str, str]) -> Prepared | None:
        entry = step.entry
        resource, record_id = entry.resource, str(entry.record_id)
        if step.action == "create":
            if entry.method == "PUT" and resource is not None and "id" in resource:
                raise InvalidInputError(
                    "id: ids are assigned by the server: a conditional update that matches "
                    "nothing creates, without an id", parameter="id")  # fmt: skip
            created = self._fhir.prepare_create(principal, entry.resource_type, resource,
                                                record_id=record_id, pending=pending)  # fmt: skip
            if entry.resource_type == "Patient":
                pending[record_id] = patient_did(created.resource)
            return created
        if step.action == "update":
            if step.matched is not None and resource is not None:
                if resource.get("id", record_id) != record_id:
                    raise InvalidInputError(
                        "id: not the id of the resource the condition selected", parameter="id"
                    )
                resource = {**resource, "id": record_id}
            return self._fhir.prepare_update(principal, entry.resource_type, record_id, resource,
                                             if_match=entry.if_match, pending=pending)  # fmt: skip
        deleted = self._fhir.prepare_delete(principal, entry.resource_type, record_id)
        if entry.if_match is not None and (
            deleted is None or deleted.base_version != entry.if_match
        ):
            raise PreconditionFailedError("If-Match: the resource is at another version")
        return deleted

    # --- step 5: GET and HEAD -----------------------------------------------------------------
    def _get(self, principal: Principal, entry: Entry, now_ms: int) -> Outcome:
        if entry.resource_type not in STORED_TYPES:
            raise NotFoundError("this server does not serve that resource type")
        if entry.record_id is None:
            query = parse_query(entry.resource_type, entry.query or ())
            return Outcome(200, search=self._fhir.search(principal, query, now_ms))
        if entry.version is None:
            resource = self._fhir.read(principal, entry.resource_type, entry.record_id, now_ms)
        else:
            resource = self._fhir.vread(principal, entry.resource_type, entry.record_id,
                                        entry.version, now_ms)  # fmt: skip
        meta = resource["meta"]
        if entry.if_none_match is not None and str(entry.if_none_match) == meta["versionId"]:
            return Outcome(304)
        since = entry.if_modified_since_ms
        if since is not None and date_range(meta["lastUpdated"])[0] <= since:
            return Outcome(304)
        return Outcome(200, resource=None if entry.method == "HEAD" else resource)

    # --- transaction ------------------------------------------------------------------------
    def _transaction(self, principal: Principal, entries: list[Entry], now_ms: int) -> BundleResult:
        found: dict[int, Head | None] = {}
        for entry in entries:
            if entry.condition is not None:
                try:
                    found[entry.index] = self._match(principal, entry, now_ms)
                except MedledgerError as e:
                    raise _located(entry, e) from e
        steps = self._steps(entries, found)
        targets = [(s.entry.resource_type, s.entry.record_id) for s in steps
                   if s.action in _WRITES]  # fmt: skip
        if len(set(targets)) < len(targets):
            raise InvalidInputError(
                "Bundle.entry: a transaction writes each resource once", parameter="Bundle.entry"
            )
        order = sorted(steps, key=_order)
        pending: dict[str, str] = {}
        prepared = [
            (s, self._prepare(principal, s, pending) if s.action in _WRITES else None)
            for s in order
        ]
        results: dict[int, Outcome] = {}
        written: list[tuple[Entry, Prepared, Written]] = []
        for step, item in prepared:
            entry = step.entry
            try:
                if step.action == "get":
                    results[entry.index] = self._get(principal, entry, now_ms)
                elif step.action == "matched":
                    results[entry.index] = Outcome(200, matched=step.matched)
                elif item is None:  # nothing matched, or deleting what was deleted
                    results[entry.index] = Outcome(204)
                else:
                    done = self._fhir.commit(principal, item, now_ms)
                    written.append((entry, item, done))
                    status = {"create": 201, "update": 200}.get(step.action, 204)
                    results[entry.index] = Outcome(status, written=done)
            except MedledgerError as e:
                self._revert(principal, written, now_ms)
                raise _located(entry, e) from e
        return BundleResult("transaction-response", [(e, results[e.index]) for e in entries])

    def _revert(
        self, principal: Principal, written: list[tuple[Entry, Prepared, Written]], now_ms: int
    ) -> None:
        for entry, item, done in reversed(written):
            try:
                self._fhir.revert(principal, item, done, now_ms)
            except MedledgerError as e:
                log.error("transaction entry %d not reverted: %s", entry.index, type(e).__name__)

    # --- batch -------------------------------------------------------------------------------
    def _batch(self, principal: Principal, entries: list[Entry], now_ms: int) -> BundleResult:
        found: dict[int, Head | None] = {}
        failed: dict[int, MedledgerError] = {}
        for entry in entries:
            if entry.condition is not None:
                try:
                    found[entry.index] = self._match(principal, entry, now_ms)
                except MedledgerError as e:
                    failed[entry.index] = e
        ready = [e for e in entries if e.index not in failed]
        steps = {s.entry.index: s for s in self._steps(ready, found)}
        out: list[tuple[Entry, Outcome]] = []
        for entry in entries:
            if entry.index in failed:
                out.append((entry, Outcome(0, error=failed[entry.index])))
                continue
            try:
                out.append((entry, self._transaction_of_one(principal, steps[entry.index],
                                                            now_ms)))  # fmt: skip
            except MedledgerError as e:
                out.append((entry, Outcome(0, error=e)))
        return BundleResult("batch-response", out)

    def _transaction_of_one(self, principal: Principal, step: _Step, now_ms: int) -> Outcome:
        entry = step.entry
        if step.action == "get":
            return self._get(principal, entry, now_ms)
        if step.action == "matched":
            return Outcome(200, matched=step.matched)
        item = self._prepare(principal, step, {})
        if item is None:
            return Outcome(204)
        done = self._fhir.commit(principal, item, now_ms)
        return Outcome({"create": 201, "update": 200}.get(step.action, 204), written=done)
