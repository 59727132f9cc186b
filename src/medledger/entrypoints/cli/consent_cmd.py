"""`medledger consent grant/revoke/list/export/delegate/undelegate`: a patient's consents.

Each change is a transaction signed by the patient (or a delegate) with their key file; the node
only relays it, and the ledger's consent contract checks it. ``grant`` takes either a FHIR R4
``Consent`` (``--file``; its references resolved with ``--ref Practitioner/f204=did:key:...``
or carried as DIDs) or the common case on the command line: ``--to`` a practitioner or
organization, for purposes, resource types and a period.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from medledger.entrypoints.cli.remote import load_key, submit
from medledger.errors import MedledgerError

consent_app = typer.Typer(help="Patient consent: grant, revoke, delegate.", no_args_is_help=True)

NodeOpt = Annotated[str, typer.Option("--node", help="The node's base URL.")]
KeyOpt = Annotated[
    Path, typer.Option("--key", help="The patient's (or delegate's) key file: signs.")
]
PatientOpt = Annotated[
    str | None,
    typer.Option("--patient", help="The patient's did:key (default: the key's own, for a patient)"),
]


def _instant(value: str | None, option: str) -> int | None:
    from medledger.core.access.facts import parse_fhir_instant
    from medledger.entrypoints.cli.main import fail

    if value is None:
        return None
    parsed = parse_fhir_instant(value)
    if parsed is None:
        fail(f"{option}: not a date or date-time (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)")
    return parsed


def _refs(pairs: list[str]) -> dict[str, str]:
    from medledger.core.identity.did_key import is_did_key
    from medledger.entrypoints.cli.main import fail

    refs: dict[str, str] = {}
    for pair in pairs:
        reference, _, did = pair.partition("=")
        if not reference or not is_did_key(did):
            fail(f"--ref {pair[:80]!r}: expected Type/id=did:key:...")
        refs[reference] = did
    return refs


def _from_file(file: Path, refs: dict[str, str], patient: str) -> Any:
    from medledger.core.consent.fhir import from_fhir
    from medledger.core.consent.model import parse_consent
    from medledger.entrypoints.cli.main import _read_small, fail

    try:
        body = json.loads(_read_small(file, "consent"))
    except (ValueError, RecursionError):
        fail(f"{file} is not JSON")
    if not isinstance(body, dict):
        fail(f"{file} must hold a JSON object")
    try:
        if body.get("resourceType") == "Consent":
            # The consent's own patient reference is the signing patient unless --ref says.
            subject = body.get("patient")
            own = subject.get("reference") if isinstance(subject, dict) else None
            resolve = {**({own: patient} if isinstance(own, str) else {}), **refs}
            return from_fhir(body, resolve.get)
        return parse_consent(body)
    except MedledgerError as e:
        fail(f"{file}: {e}")


@consent_app.command("grant")
def grant(
    key: KeyOpt,
    node: NodeOpt = "http://127.0.0.1:8000",
    patient: PatientOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A FHIR R4 Consent (or policy-form) JSON file.")
    ] = None,
    ref: Annotated[
        list[str], typer.Option("--ref", help="Resolve a FHIR reference: Type/id=did:key:...")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    to: Annotated[
        str | None, typer.Option("--to", help="Grant to this practitioner or organization DID.")
    ] = None,
    purpose: Annotated[
        list[str], typer.Option("--purpose", help="Purpose of use (v3-ActReason).")
    ] = ["TREAT"],  # noqa: B006
    resource_class: Annotated[
        list[str], typer.Option("--class", help="Only these FHIR resource types.")
    ] = [],  # noqa: B006
    until: Annotated[str | None, typer.Option(help="Valid until this date(-time).")] = None,
    consent_id: Annotated[str | None, typer.Option("--id", help="The consent's id.")] = None,
) -> None:
    """Grant access on the ledger: signed by the patient (or their delegate)."""
    from medledger.core.consent.simple import permit_to
    from medledger.entrypoints.cli.main import fail, out

    signer = load_key(key).did
    owner = patient or signer
    if (file is None) == (to is None):
        fail("give either --file (a FHIR Consent) or --to (a DID to grant to)")
    try:
        if to is not None:
            new_id = consent_id or f"consent-{secrets.token_hex(6)}"
            consent = permit_to(
                new_id,
                owner,
                to,
                purposes=purpose,
                classes=resource_class,
                until_ms=_instant(until, "--until"),
            )
        elif file is not None:
            consent = _from_file(file, _refs(ref), owner)
    except MedledgerError as e:
        fail(f"consent not granted: {e}")
    result = submit(node, key, "consent.grant", {"consent": consent.to_json()})
    out.print(
        f"[bold green]granted[/] {consent.consent_id} for {consent.patient} "
        f"(block {result.get('height')}, log index {result.get('log_index')})"
    )


@consent_app.command("revoke")
def revoke(
    key: KeyOpt,
    consent_id: Annotated[str, typer.Option("--id", help="The consent to revoke.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    patient: PatientOpt = None,
) -> None:
    """Revoke a consent: no access under it from the block that includes this."""
    from medledger.entrypoints.cli.main import out

    owner = patient or load_key(key).did
    result = submit(node, key, "consent.revoke", {"patient": owner, "consent_id": consent_id})
    out.print(f"[bold green]revoked[/] {consent_id} (block {result.get('height')})")


@consent_app.command("delegate")
def delegate(
    key: KeyOpt,
    to: Annotated[str, typer.Option("--to", help="The delegate's did:key.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    until: Annotated[str | None, typer.Option(help="The delegation ends at this time.")] = None,
) -> None:
    """Let someone manage your consents and see your access events (the patient only)."""
    from medledger.entrypoints.cli.main import out

    payload: dict[str, Any] = {"patient": load_key(key).did, "delegate": to}
    ends = _instant(until, "--until")
    if ends is not None:
        payload["until_ms"] = ends
    result = submit(node, key, "consent.delegate", payload)
    out.print(f"[bold green]delegated[/] to {to} (block {result.get('height')})")


@consent_app.command("undelegate")
def undelegate(
    key: KeyOpt,
    to: Annotated[str, typer.Option("--to", help="The delegate's did:key.")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """End a delegation."""
    from medledger.entrypoints.cli.main import out

    payload = {"patient": load_key(key).did, "delegate": to}
    result = submit(node, key, "consent.undelegate", payload)
    out.print(f"[bold green]ended[/] the delegation to {to} (block {result.get('height')})")


@consent_app.command("list")
def list_consents(
    patient: Annotated[str, typer.Option("--patient", help="The patient's did:key.")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """A patient's consents on the ledger, active and revoked."""
    from rich.table import Table

    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    try:
        with LedgerClient(node) as client:
            listing = client.consents(patient)
    except MedledgerError as e:
        fail(f"consents not listed: {e}")
    table = Table("consent", "status", "granted at", "revoked at", "permits / denies")
    for row in listing["consents"]:
        body = row.get("consent") or {}
        provision = body.get("provision") or {}
        table.add_row(
            row["consent_id"],
            row["status"],
            str(row.get("granted_height") or "-"),
            str(row.get("revoked_height") or "-"),
            _summary(provision),
        )
    out.print(table)


def _summary(provision: dict[str, Any]) -> str:
    actors = ", ".join(
        (a.get("reference") or a.get("practitioner_role") or "?")[:24]
        for a in provision.get("actors", [])
    )
    purposes = ",".join(provision.get("purposes", [])) or "any purpose"
    nested = len(provision.get("provisions", []))
    kind = provision.get("type") or "-"
    return f"{kind} {actors or 'anyone'} for {purposes}" + (
        f" (+{nested} nested)" if nested else ""
    )


@consent_app.command("export")
def export(
    patient: Annotated[str, typer.Option("--patient", help="The patient's did:key.")],
    consent_id: Annotated[str, typer.Option("--id", help="The consent's id.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write it here.")] = None,
) -> None:
    """A consent as a FHIR R4 Consent resource."""
    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    try:
        with LedgerClient(node) as client:
            resource = client.consent_fhir(patient, consent_id)
    except MedledgerError as e:
        fail(f"consent not exported: {e}")
    if out_file is None:
        out.print_json(data=resource)
    else:
        out_file.write_text(json.dumps(resource, indent=2) + "\n")
        out.print(f"written to {out_file}")


def register(app: typer.Typer) -> None:
    app.add_typer(consent_app, name="consent")
