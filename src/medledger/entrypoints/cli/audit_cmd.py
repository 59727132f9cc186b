"""`medledger audit list/reviews/review`: who tried to see a patient's data, and the review of
emergency accesses.

``list`` asks the node (a signed request from the patient, their delegate or a privacy officer)
for the patient's access events, shows them as a table, and writes each event's receipt to
``--receipts DIR/<event_id>.json``: ``medledger receipt verify`` checks each one offline against
the log's key, trusting nothing the node says. ``reviews`` shows a privacy officer the
break-glass accesses awaiting review (or, with ``--reviewed``, the rulings with their notes);
``review`` records a ruling on the ledger, and with ``--note`` commits to a note there and sends
the note itself to the node (ADR 0022: free text never goes on the ledger); ``note`` sends a
committed note again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from medledger.entrypoints.cli.remote import load_key, signed_request, submit
from medledger.errors import InvalidInputError, MedledgerError

audit_app = typer.Typer(
    help="A patient's access events, and break-glass reviews.", no_args_is_help=True
)

NodeOpt = Annotated[str, typer.Option("--node", help="The node's base URL.")]
KeyOpt = Annotated[Path, typer.Option("--key", help="Your key file (signs the request).")]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _filters(
    since: str | None,
    until: str | None,
    actor: str | None,
    decision: str | None,
    purpose: str | None,
) -> dict[str, Any]:
    from medledger.core.access.facts import parse_fhir_instant
    from medledger.entrypoints.cli.main import fail

    payload: dict[str, Any] = {}
    for option, value, name in (("--since", since, "since_ms"), ("--until", until, "until_ms")):
        if value is not None:
            parsed = parse_fhir_instant(value)
            if parsed is None:
                fail(f"{option}: not a date or date-time")
            payload[name] = parsed
    if actor is not None:
        payload["actor"] = actor
    if decision is not None:
        if decision not in ("permit", "deny", "break-glass"):
            fail("--decision: one of permit, deny, break-glass")
        payload["decision"] = decision
    if purpose is not None:
        payload["filter_purpose"] = purpose
    return payload


@audit_app.command("list")
def list_events(
    key: KeyOpt,
    patient: Annotated[
        str | None, typer.Option("--patient", help="The patient (default: the key's own).")
    ] = None,
    node: NodeOpt = "http://127.0.0.1:8000",
    since: Annotated[str | None, typer.Option(help="From this date(-time).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date(-time).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's attempts.")] = None,
    decision: Annotated[str | None, typer.Option(help="Only permit, deny or break-glass.")] = None,
    purpose: Annotated[str | None, typer.Option(help="Only this purpose of use.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    receipts: Annotated[
        Path | None, typer.Option("--receipts", help="Write each receipt to this directory.")
    ] = None,
    fhir: Annotated[bool, typer.Option("--fhir", help="Print FHIR AuditEvents.")] = False,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="The most recent first (default: oldest).")
    ] = False,
    others_only: Annotated[
        bool,
        typer.Option("--others-only", help="Leave out what the patient did (e.g. listing)."),
    ] = False,
    as_of: Annotated[
        str, typer.Option("--purpose-of-use", help="Why you are listing (v3-ActReason).")
    ] = "PATRQT",
) -> None:
    """List a patient's access events (granted, denied, break-glass) with their receipts."""
    from rich.table import Table

    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    requester = load_key(key)
    payload: dict[str, Any] = {
        "patient": patient or requester.did,
        "purpose": as_of,
        "limit": limit,
        "wait_ms": 2000,
        **_filters(since, until, actor, decision, purpose),
    }
    if fhir:
        payload["format"] = "fhir"
    if newest_first:
        payload["order"] = "newest"
    if others_only:
        payload["others_only"] = True
    try:
        with LedgerClient(node) as client:
            listing = client.list_audit(
                signed_request(client, requester, "request.list_audit", payload)
            )
    except MedledgerError as e:
        fail(f"access events not listed: {e}")
    if fhir:
        out.print_json(data=listing)
        return
    names = _organization_names(node, {row["event"].get("actor_org") for row in listing["events"]})
    table = Table(
        "time (UTC)", "actor", "organization", "action", "purpose", "decision", "reasons",
        "receipt",
    )  # fmt: skip
    missing = 0
    for row in listing["events"]:
        event = row["event"]
        decision_text = event["decision"]
        if decision_text == "break-glass":
            review = row.get("review")
            reviewed = f"reviewed: {review['outcome']}" if review else "awaiting review"
            decision_text = f"[bold red]BREAK-GLASS[/] ({reviewed})"
        elif decision_text == "deny":
            decision_text = "[yellow]denied[/]"
        else:
            decision_text = "[green]permitted[/]"
        has_receipt = row.get("receipt") is not None
        missing += not has_receipt
        table.add_row(
            _when(event["time_ms"]),
            event["actor"][:20] + "…",
            names.get(event.get("actor_org") or "", "-"),
            event["action"],
            event["purpose"],
            decision_text,
            ", ".join(event["reasons"]),
            "yes" if has_receipt else "pending",
        )
        if receipts is not None and has_receipt:
            receipts.mkdir(parents=True, exist_ok=True)
            (receipts / f"{event['event_id']}.json").write_text(row["receipt"])
    out.print(table)
    _print_notes(listing["events"])
    out.print(f"{listing['count']} events" + (f", {missing} receipts pending" if missing else ""))
    if receipts is not None:
        out.print(f"receipts written to {receipts}/ (check with: medledger receipt verify)")


def _print_notes(rows: list[dict[str, Any]]) -> None:
    """Each review's note, checked here against the commitment the review carries."""
    from rich.markup import escape

    from medledger.core.audit.review_note import is_note_committed
    from medledger.entrypoints.cli.main import out

    for row in rows:
        review = row.get("review") or {}
        if review.get("note") is None:
            continue
        event_id = row["event"]["event_id"]
        try:
            salt = bytes.fromhex(review["note_salt"])
            verified = is_note_committed(review["note_commitment"], event_id, review["note"], salt)
        except (ValueError, TypeError, InvalidInputError):
            verified = False
        check = "matches the ledger's commitment" if verified else "[red]DOES NOT MATCH[/]"
        out.print(f"note on {event_id} ({review['outcome']}, {check}): {escape(review['note'])}")


def _organization_names(node: str, dids: set[str | None]) -> dict[str, str]:
    """Organizations' public names from the ledger (people have none: DIDs only)."""
    from medledger.client import LedgerClient

    names: dict[str, str] = {}
    with LedgerClient(node) as client:
        for did in sorted(d for d in dids if d):
            try:
                names[did] = str(client.participant(did).get("name") or did[:20])
            except MedledgerError:
                names[did] = did[:20] + "…"
    return names


@audit_app.command("reviews")
def reviews(
    key: KeyOpt,
    node: NodeOpt = "http://127.0.0.1:8000",
    reviewed: Annotated[
        bool, typer.Option("--reviewed", help="The rulings made (with notes), not the queue.")
    ] = False,
) -> None:
    """Break-glass accesses at this node's organization awaiting a privacy officer's review."""
    from rich.table import Table

    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    officer = load_key(key)
    payload: dict[str, Any] = {"purpose": "HOPERAT"}
    if reviewed:
        payload["reviewed"] = True
    try:
        with LedgerClient(node) as client:
            queue = client.review_queue(
                signed_request(client, officer, "request.review_queue", payload)
            )
    except MedledgerError as e:
        fail(f"review queue not read: {e}")
    if reviewed:
        ruled = Table("event", "time (UTC)", "outcome", "officer", "block")
        for row in queue["events"]:
            r = row["review"]
            ruled.add_row(
                row["event"]["event_id"], _when(row["event"]["time_ms"]), r["outcome"],
                r["officer"][:20] + "…", str(r["height"]),
            )  # fmt: skip
        out.print(ruled)
        _print_notes(queue["events"])
        out.print(f"{queue['count']} reviewed")
        return
    table = Table("event", "batch", "time (UTC)", "actor", "patient", "justification")
    for row in queue["events"]:
        event = row["event"]
        table.add_row(
            event["event_id"],
            row["batch_id"] or "(anchoring)",
            _when(event["time_ms"]),
            event["actor"][:20] + "…",
            event["patient"][:20] + "…",
            event.get("justification") or "",
        )
    out.print(table)
    out.print(f"{queue['count']} awaiting review")


@audit_app.command("review")
def review(
    key: KeyOpt,
    event_id: Annotated[str, typer.Option("--event-id", help="The break-glass event.")],
    batch_id: Annotated[str, typer.Option("--batch-id", help="Its batch.")],
    outcome: Annotated[str, typer.Option(help="justified, unjustified or referred.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    note: Annotated[
        str | None,
        typer.Option(
            "--note",
            help="Why (1-2,000 characters, shown to the patient). Kept off the ledger: the "
            "review commits to it, the node keeps it.",
        ),
    ] = None,
) -> None:
    """Rule on a break-glass access: an access.review transaction on the ledger."""
    import secrets

    from medledger.core.audit.review_note import SALT_BYTES, note_commitment, parse_note
    from medledger.entrypoints.cli.main import fail, out

    payload = {"batch_id": batch_id, "event_id": event_id, "outcome": outcome}
    salt = secrets.token_bytes(SALT_BYTES)
    if note is not None:
        try:  # checked before anything is signed: a refused note must not leave a ruling alone
            parse_note(note)
            payload["note_commitment"] = note_commitment(event_id, note, salt)
        except InvalidInputError as e:
            fail(f"--note: {e}")
    result = submit(node, key, "access.review", payload)
    out.print(f"[bold green]reviewed[/] {event_id}: {outcome} (block {result.get('height')})")
    if note is not None:
        _send_note(node, key, event_id, note, salt.hex())


def _send_note(node: str, key: Path, event_id: str, note: str, salt: str) -> None:
    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    officer = load_key(key)
    request = {"event_id": event_id, "note": note, "salt": salt}
    try:
        with LedgerClient(node) as client:
            answer = client.review_note(
                signed_request(client, officer, "request.review_note", request)
            )
    except MedledgerError as e:
        fail(
            f"the ruling is on the ledger, but its note was not stored: {e}. Send it again "
            f"with: medledger audit note --event-id {event_id} --salt {salt} --note '...'"
        )
    verified = answer["review"]["note_verified"]
    out.print(
        "note stored off the ledger by the node"
        + (" (it matches the review's commitment)" if verified else " [red](UNVERIFIED)[/]")
    )


@audit_app.command("note")
def send_note(
    key: KeyOpt,
    event_id: Annotated[str, typer.Option("--event-id", help="The reviewed event.")],
    note: Annotated[str, typer.Option("--note", help="The note the review committed to.")],
    salt: Annotated[str, typer.Option("--salt", help="Its salt (printed by `audit review`).")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Send the note of a review you made with --note again (e.g. after a network failure)."""
    _send_note(node, key, event_id, note, salt)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
