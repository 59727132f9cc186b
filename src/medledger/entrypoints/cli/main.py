"""`medledger`: set up a node, serve it, run the demo, and verify logs and receipts offline.

Every failure ends with a one-line message naming the problem and a non-zero exit code; no
traceback reaches the user.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medledger.errors import MedledgerError

if TYPE_CHECKING:
    from medledger.adapters.sqlite_ledger import SqliteLedger
    from medledger.core.ledger.genesis import Genesis
    from medledger.core.ledger.runtime import Contract
    from medledger.core.note import NoteVerifier

app = typer.Typer(
    name="medledger",
    help="medledger: a permissioned, FHIR-native ledger for medical records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
log_app = typer.Typer(help="Inspect and verify the transparency log.", no_args_is_help=True)
chain_app = typer.Typer(help="Verify the ledger's chain of blocks.", no_args_is_help=True)
tx_app = typer.Typer(help="Build, sign and submit transactions.", no_args_is_help=True)
blocks_app = typer.Typer(help="Show blocks.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Participant keys (did:key, passphrase-encrypted).", no_args_is_help=True
)
receipt_app = typer.Typer(help="Verify C2SP tlog-proof receipts offline.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(receipt_app, name="receipt")
app.add_typer(chain_app, name="chain")
app.add_typer(tx_app, name="tx")
app.add_typer(blocks_app, name="blocks")
app.add_typer(keys_app, name="keys")

out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)

HomeOption = Annotated[
    Path, typer.Option("--home", help="The node's home directory.", file_okay=False)
]
MAX_FILE_BYTES = 1024 * 1024


@contextlib.contextmanager
def progress_bar(label: str, *, offset: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields ``progress(done, total)`` for long work."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done + offset, total=total + offset)

        yield progress


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _passphrase(*, confirm: bool) -> str:
    """The key passphrase: $MEDLEDGER_PASSPHRASE, or asked for on a terminal."""
    from medledger.bootstrap import PASSPHRASE_ENV

    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        fail(f"set {PASSPHRASE_ENV} (no terminal to ask for the key passphrase)")
    entered: str = typer.prompt("key passphrase", hide_input=True, confirmation_prompt=confirm)
    return entered


@app.command()
def init(
    home: HomeOption = Path(".medledger"),
    origin: Annotated[
        str | None, typer.Option(help="Log origin, e.g. hospital.example/log")
    ] = None,
    network: Annotated[
        str, typer.Option(help="Network id written to the genesis.")
    ] = "medledger-dev",
    organization: Annotated[
        str, typer.Option(help="This node's organization name.")
    ] = "Local Hospital",
    port: Annotated[int, typer.Option(help="Port written to node.toml.")] = 8000,
) -> None:
    """Create a node home: a one-authority network led by this node, keys and empty stores."""
    from medledger.bootstrap import init_home, load_genesis

    try:
        settings = init_home(
            home,
            passphrase=_passphrase(confirm=True),
            origin=origin,
            network=network,
            organization=organization,
            port=port,
        )
        genesis = load_genesis(home)
    except MedledgerError as e:
        fail(str(e))
    out.print(f"initialised [bold]{home}[/] for network [bold]{genesis.network}[/]")
    out.print(f"  log origin  {settings.origin}")
    out.print(f"  node DID    {genesis.authorities[0].did}")


def _serve(home: Path, host: str | None, port: int | None, *, demo: bool) -> None:
    import uvicorn

    from medledger.bootstrap_consortium import is_consortium_home

    if not demo and is_consortium_home(home):  # issue 7: blocks come from the etcd log
        from medledger.entrypoints.cli.network_cmd import serve_consortium

        serve_consortium(home, host, port)
        return

    from medledger.bootstrap import open_node
    from medledger.core.note import format_verifier_key
    from medledger.entrypoints.cli.demo import DEMO_KEYS, DEMO_PASSPHRASE, demo_feed, demo_users
    from medledger.entrypoints.http.app import create_app
    from medledger.entrypoints.portal import portal_context
    from medledger.entrypoints.portal.app import DemoUser

    try:
        node = open_node(home)
        node.start()
    except MedledgerError as e:
        fail(str(e))
    host = host or node.settings.host
    port = port or node.settings.port
    background = [demo_feed(node)] if demo else []
    url = f"http://{host}:{port}/"
    portal = portal_context(
        node,
        base_url=url,
        demo_users=tuple(DemoUser(n, d) for n, d in demo_users(home)) if demo else (),
        demo_keys_dir=home / DEMO_KEYS if demo else None,
        demo_passphrase=DEMO_PASSPHRASE if demo else None,
    )
    application = create_app(node, background=background, base_url=url, portal=portal)
    out.print(f"[bold green]medledger node[/] for network [bold]{node.genesis.network}[/]")
    out.print(f"  open          {url}")
    out.print(f"  portal        {url}portal")
    out.print(f"  ledger        {url}ledger/blocks/latest")
    out.print(f"  checkpoint    {url}log/checkpoint")
    out.print(f"  API docs      {url}docs")
    out.print(f"  node DID      {node.key.did}")
    out.print(f"  verifier key  {format_verifier_key(node.log.verifier)}")
    if demo:
        keys = home / "demo-keys"
        out.print(f"  demo keys     {keys} (passphrase: medledger-demo)")
        out.print(
            f"  portal logins {url}portal -> pick patient-1 (who looked at my data), "
            "officer-hospital (break-glass review) or dr-house; passphrase medledger-demo"
        )
        out.print("  demo traffic  synthetic records, consents and read attempts, marked demo")
        out.print("  try (as patient-1: who looked at my data, each line with a receipt):")
        out.print(
            f"    MEDLEDGER_PASSPHRASE=medledger-demo .venv/bin/medledger audit list "
            f"--node {url} --key {keys / 'patient-1.key'} --receipts receipts"
        )
        out.print(
            f"    .venv/bin/medledger receipt verify receipts/<event>.json "
            f"--key '{format_verifier_key(node.log.verifier)}'"
        )
        out.print(f"  FHIR R4 API   {url}fhir/metadata (SMART bearer tokens; demo data as FHIR)")
        out.print(
            f"    TOKEN=$(MEDLEDGER_PASSPHRASE=medledger-demo .venv/bin/medledger token mint "
            f"--node {url} --key {keys / 'dr-house.key'} --scope 'user/*.cruds')"
        )
        out.print(f'    curl -H "Authorization: Bearer $TOKEN" "{url}fhir/Patient"')
    try:
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
    finally:
        node.close()


@app.command()
def serve(
    home: HomeOption = Path(".medledger"),
    host: Annotated[
        str | None, typer.Option(help="Listen address (default from node.toml).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default from node.toml).")] = None,
) -> None:
    """Serve a node's API until interrupted (the node key's passphrase: $MEDLEDGER_PASSPHRASE)."""
    _serve(home, host, port, demo=False)


@app.command()
def demo(
    home: HomeOption = Path(".medledger-demo"),
    port: Annotated[int, typer.Option(help="Listen port.")] = 8000,
) -> None:
    """Start the demo network's node on 127.0.0.1 with transactions flowing (`make run`)."""
    from medledger.bootstrap import SETTINGS_FILE
    from medledger.entrypoints.cli.demo import create_demo_home

    if not (home / SETTINGS_FILE).exists():
        try:
            create_demo_home(home, port=port)
        except MedledgerError as e:
            fail(str(e))
        out.print(f"created demo home [bold]{home}[/]")
    _serve(home, "127.0.0.1", port, demo=True)


@log_app.command("verify")
def log_verify(home: HomeOption = Path(".medledger")) -> None:
    """Re-derive every root from the stored entries and check every stored checkpoint."""
    from medledger.adapters.sqlite_log import SqliteLog
    from medledger.bootstrap import LOG_DB_FILE, load_settings, load_signer
    from medledger.services.log_audit import verify_stored_log

    try:
        settings = load_settings(home)
        signer = load_signer(home)
        if not (home / LOG_DB_FILE).exists():
            fail(f"{home} has no log database")
        store = SqliteLog(home / LOG_DB_FILE, readonly=True)
    except MedledgerError as e:
        fail(str(e))
    try:
        with store.snapshot(), progress_bar("verifying log") as progress:
            report = verify_stored_log(store, settings.origin, signer.verifier(), progress=progress)
    except MedledgerError as e:
        fail(f"log does not verify: {e}")
    finally:
        store.close()
    out.print(
        f"[bold green]OK[/] {report.size} entries, {report.tiles} tiles and "
        f"{report.checkpoints} checkpoints verify; root {report.root.hex()}"
    )


def _read_small(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        fail(f"cannot read {what} {path}: {e.strerror}")
    if len(data) > MAX_FILE_BYTES:
        fail(f"{what} {path} is larger than {MAX_FILE_BYTES} bytes")
    return data


@receipt_app.command("verify")
def receipt_verify(
    file: Annotated[
        Path,
        typer.Argument(
            help="A tlog-proof@v1 receipt, or an access-event receipt (JSON) ('-' for stdin)."
        ),
    ],
    key: Annotated[
        str, typer.Option("--key", help="The log's verifier key, or a file holding it.")
    ],
    entry: Annotated[
        Path | None, typer.Option("--entry", help="The entry's exact bytes, to check inclusion.")
    ] = None,
    origin: Annotated[
        str | None, typer.Option(help="Expected log origin (default: the key's name).")
    ] = None,
) -> None:
    """Verify a receipt offline: the checkpoint's signature, then the entry's inclusion.

    An access-event receipt (what `medledger audit list --receipts` writes) is checked all the
    way: the event in its batch, the batch's signed anchor transaction in the log, the log's
    checkpoint signature."""
    from medledger.config import Limits
    from medledger.core.note import parse_verifier_key
    from medledger.core.receipt import parse_receipt, verify_receipt

    limits = Limits()
    raw = (
        sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        if str(file) == "-"
        else _read_small(file, "receipt")
    )
    key_path = Path(key)
    key_text = (
        _read_small(key_path, "key file").decode("ascii", "replace")
        if ("+" not in key and key_path.is_file())
        else key
    )
    try:
        verifier = parse_verifier_key(key_text.strip())
        if raw.lstrip()[:1] == b"{":
            _verify_event_receipt(raw, verifier, origin)
            return
        receipt = parse_receipt(raw, limits)
        entry_bytes = _read_small(entry, "entry") if entry is not None else receipt.extra
        if entry_bytes is None:
            fail("the receipt carries no entry: give the entry's bytes with --entry")
        if entry is not None and receipt.extra is not None and receipt.extra != entry_bytes:
            fail("receipt does not verify: the receipt is for a different entry than --entry")
        checkpoint = verify_receipt(
            receipt,
            entry=entry_bytes,
            leaf_hash=None,
            origin=origin or verifier.name,
            verifiers=[verifier],
            limits=limits,
        )
    except MedledgerError as e:
        fail(f"receipt does not verify: {e}")
    out.print(
        f"[bold green]OK[/] entry {receipt.index} ({len(entry_bytes)} bytes) is in checkpoint "
        f"{checkpoint.origin} of size {checkpoint.size}, signed by {verifier.name}"
    )


def _verify_event_receipt(raw: bytes, verifier: NoteVerifier, origin: str | None) -> None:
    from medledger.core.audit.receipt import verify_event_receipt

    event = verify_event_receipt(raw, verifier, origin=origin)
    flag = " [bold red](BREAK-GLASS)[/]" if event.decision == "break-glass" else ""
    out.print(
        f"[bold green]OK[/] access event {event.event_id}: {event.decision}{flag} "
        f"{event.action} by {event.actor} for {event.patient} ({event.purpose}), "
        f"anchored by {event.node} in a log signed by {verifier.name}"
    )


NodeOption = Annotated[str, typer.Option("--node", help="The node's base URL.")]


@keys_app.command("new")
def keys_new(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the key file.")],
) -> None:
    """Generate a participant key and write it passphrase-encrypted; print its did:key."""
    from medledger.adapters.keystore import generate_key, write_key_file

    if out_file.exists():
        fail(f"{out_file} exists: refusing to overwrite a key")
    key = generate_key()
    try:
        write_key_file(out_file, key, _passphrase(confirm=True))
    except MedledgerError as e:
        fail(str(e))
    out.print(key.did)


@tx_app.command("submit")
def tx_submit(
    key: Annotated[Path | None, typer.Option("--key", help="Signer's key file.")] = None,
    tx_type: Annotated[str | None, typer.Option("--type", help="e.g. participant.register")] = None,
    payload: Annotated[str | None, typer.Option(help="JSON object, or @FILE.")] = None,
    raw: Annotated[
        Path | None, typer.Option("--raw", help="A signed envelope to submit as is.")
    ] = None,
    node: NodeOption = "http://127.0.0.1:8000",
    wait: Annotated[bool, typer.Option(help="Wait until committed.")] = True,
    ttl: Annotated[int, typer.Option(help="Seconds until the transaction expires.")] = 600,
) -> None:
    """Sign a transaction with a key file and submit it (or submit a prepared envelope)."""
    from medledger.adapters.keystore import read_key_file
    from medledger.client import LedgerClient, new_transaction

    try:
        with LedgerClient(node) as client:
            if raw is not None:
                wire = _read_small(raw, "envelope")
            else:
                if key is None or tx_type is None or payload is None:
                    fail("give --key, --type and --payload (or --raw FILE)")
                text = (
                    _read_small(Path(payload[1:]), "payload").decode()
                    if payload.startswith("@")
                    else payload
                )
                try:
                    body = json.loads(text)
                except ValueError:
                    fail("--payload is not valid JSON")
                if not isinstance(body, dict):
                    fail("--payload must be a JSON object")
                signer = read_key_file(key, _passphrase(confirm=False))
                stx = new_transaction(
                    signer,
                    network=client.network(),
                    tx_type=tx_type,
                    payload=body,
                    now_s=int(time.time()),
                    ttl_s=ttl,
                )
                wire = stx.wire
            result = client.submit(wire, wait=wait)
    except MedledgerError as e:
        reason = getattr(e, "reason", None)
        fail(f"transaction refused ({reason}): {e}" if reason else f"transaction refused: {e}")
    out.print_json(data={k: v for k, v in result.items() if k != "receipt"})
    if result.get("status") == "committed" and not result.get("ok"):
        raise typer.Exit(2)


@blocks_app.command("show")
def blocks_show(
    height: Annotated[str, typer.Argument(help="A height, or 'latest'.")] = "latest",
    node: NodeOption = "http://127.0.0.1:8000",
) -> None:
    """Print a block: header, proposer signature and transaction outcomes."""
    from medledger.client import LedgerClient

    if height != "latest" and not height.isdigit():
        fail("height must be a number or 'latest'")
    try:
        with LedgerClient(node) as client:
            block = client.block(None if height == "latest" else int(height))
    except MedledgerError as e:
        fail(str(e))
    out.print_json(data=block)


@chain_app.command("verify")
def chain_verify(home: HomeOption = Path(".medledger")) -> None:
    """Replay every block from genesis into a fresh state; check headers, signatures, roots."""
    import sqlite3
    import tempfile

    from medledger.adapters.sqlite_ledger import SqliteLedger, iter_state_rows
    from medledger.adapters.sqlite_log import SqliteLog
    from medledger.adapters.sqlite_state import ScratchState
    from medledger.bootstrap import LEDGER_DB_FILE, LOG_DB_FILE, load_genesis, load_settings
    from medledger.core.ledger.contracts import default_contracts
    from medledger.core.ledger.runtime import Runtime
    from medledger.services.chain_audit import verify_chain, verify_live_state

    try:
        load_settings(home)
        genesis = load_genesis(home)
        for db in (LEDGER_DB_FILE, LOG_DB_FILE):
            if not (home / db).exists():
                fail(f"{home} has no {db}")
        ledger = SqliteLedger(home / LEDGER_DB_FILE, readonly=True)
        log_store = SqliteLog(home / LOG_DB_FILE, readonly=True)
    except MedledgerError as e:
        fail(str(e))
    with tempfile.TemporaryDirectory(prefix="medledger-replay-") as scratch_dir:
        conn = sqlite3.connect(Path(scratch_dir) / "replay.db", isolation_level=None)
        # A throwaway replay: no need to fsync it.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA journal_mode=MEMORY")
        try:
            with (
                ledger.snapshot(),
                log_store.snapshot(),
                progress_bar("replaying blocks", offset=1) as progress,
            ):
                scratch = ScratchState(conn)
                contracts, signers = _consortium_chain_rules(home, genesis, ledger)
                report = verify_chain(
                    ledger,
                    genesis,
                    Runtime([*default_contracts(), *contracts]),
                    scratch,
                    log_store,
                    progress=progress,
                    node_signers=signers,
                )
                verify_live_state(
                    ledger.state_root(),
                    ledger.iter_state(),
                    report.state_root,
                    iter_state_rows(conn),
                )
        except MedledgerError as e:
            fail(f"chain does not verify: {e}")
        finally:
            conn.close()
            ledger.close()
            log_store.close()
    out.print(
        f"[bold green]OK[/] {report.height + 1} blocks and {report.transactions} transactions "
        f"replay to state root {report.state_root.hex()}"
    )


def _consortium_chain_rules(
    home: Path, genesis: Genesis, ledger: SqliteLedger
) -> tuple[list[Contract], list[str]]:
    """A consortium home (ADR 0016): the governance contract, and every authority's signature
    accepted on a header (each node stores its own)."""
    from medledger.bootstrap_consortium import is_consortium_home
    from medledger.core.ledger.contracts.governance import (
        GovernanceContract,
        current_authorities,
    )

    if not is_consortium_home(home):
        return [], []

    class _Committed:
        def get(self, key: str) -> bytes | None:
            return ledger.state_get(key)

    dids = [a.did for a in genesis.authorities]
    ever = sorted({*dids, *current_authorities(_Committed(), dids)})
    return [GovernanceContract(dids)], ever


def _register_subcommands() -> None:
    from medledger.entrypoints.cli import (
        audit_cmd,
        consent_cmd,
        escrow_cmd,
        network_cmd,
        records_cmd,
        recovery,
        token_cmd,
    )

    records_cmd.register(app)
    consent_cmd.register(app)
    audit_cmd.register(app)
    escrow_cmd.register(app)
    token_cmd.register(app)
    recovery.register(keys_app)
    network_cmd.register(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console script shim
    app()
