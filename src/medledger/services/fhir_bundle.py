"""Transaction and batch Bundles (FHIR R4 §3.1.0.11): the use case.

A transaction is all-or-nothing in the sense a ledger allows (ADR 0018):
1. parse the Bundle, assign ids to its creates and resolve its ``urn:uuid`` references
   (``core.fhir.bundle``);
2. check EVERY entry in full before writing anything: validation, the patient (Patients the
   Bundle creates count), scopes, who writes, ``If-Match``; one failure and nothing is written;
3. write the entries (Patients first, so references to them hold), each anchored on the
   ledger; if a write still fails (the ledger or storage refusing mid-way), the entries already
   written are reverted by new versions (a create is logically deleted, an update or delete
   restored to the version before), since an anchored version cannot be unwritten.
A batch runs each entry on its own (§3.1.0.11.1) and reports each outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medledger.core.auth.principal import Principal
from medledger.core.fhir.bundle import Entry, parse_bundle, resolve_references
from medledger.core.fhir.resource import patient_did
from medledger.errors import InvalidInputError, MedledgerError
from medledger.services.fhir import FhirService, Prepared, Written

log = logging.getLogger("medledger.fhir")


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
class BundleResult:
    """``transaction-response`` or ``batch-response``: per entry, in Bundle order, what was
    written (None: nothing, e.g. deleting what was deleted) or the error it met (batch)."""

    kind: str
    entries: list[tuple[Entry, Written | None, MedledgerError | None]]


class BundleService:
    def __init__(self, fhir: FhirService) -> None:
        self._fhir = fhir

    def process(self, principal: Principal, body: object, now_ms: int) -> BundleResult:
        kind, entries = parse_bundle(body)
        entries = resolve_references(entries, self._fhir.new_id)
        if kind == "batch":
            return self._batch(principal, entries, now_ms)
        return self._transaction(principal, entries, now_ms)

    # --- transaction ------------------------------------------------------------------------
    def _prepare(
        self, principal: Principal, entry: Entry, pending: dict[str, str]
    ) -> Prepared | None:
        try:
            if entry.method == "POST":
                return self._fhir.prepare_create(
                    principal, entry.resource_type, entry.resource,
                    record_id=entry.record_id, pending=pending,
                )  # fmt: skip
            if entry.method == "PUT":
                return self._fhir.prepare_update(
                    principal, entry.resource_type, str(entry.record_id), entry.resource,
                    if_match=entry.if_match, pending=pending,
                )  # fmt: skip
            return self._fhir.prepare_delete(principal, entry.resource_type, str(entry.record_id))
        except MedledgerError as e:
            raise _located(entry, e) from e

    def _transaction(self, principal: Principal, entries: list[Entry], now_ms: int) -> BundleResult:
        targets = [(e.resource_type, e.record_id) for e in entries]
        if len(set(targets)) < len(targets):
            raise InvalidInputError(
                "Bundle.entry: a transaction names each resource once", parameter="Bundle.entry"
            )
        # Step 2: Patients first (others may reference them), then the rest, in Bundle order.
        pending: dict[str, str] = {}
        order = sorted(entries, key=lambda e: (e.resource_type != "Patient", e.index))
        prepared: list[tuple[Entry, Prepared | None]] = []
        for entry in order:
            item = self._prepare(principal, entry, pending)
            if item is not None and entry.method == "POST" and entry.resource_type == "Patient":
                pending[str(item.resource["id"])] = patient_did(item.resource)
            prepared.append((entry, item))
        # Step 3: write; on a failure, revert what was written.
        written: list[tuple[Entry, Prepared, Written]] = []
        results: dict[int, Written | None] = {}
        for entry, item in prepared:
            if item is None:
                results[entry.index] = None
                continue
            try:
                done = self._fhir.commit(principal, item, now_ms)
            except MedledgerError as e:
                self._revert(principal, written, now_ms)
                raise _located(entry, e) from e
            written.append((entry, item, done))
            results[entry.index] = done
        return BundleResult("transaction-response", [(e, results[e.index], None) for e in entries])

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
        out: list[tuple[Entry, Written | None, MedledgerError | None]] = []
        for entry in entries:
            try:
                item = self._prepare(principal, entry, {})
                done = None if item is None else self._fhir.commit(principal, item, now_ms)
            except MedledgerError as e:
                out.append((entry, None, e))
            else:
                out.append((entry, done, None))
        return BundleResult("batch-response", out)
