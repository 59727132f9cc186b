"""`medledger`: set up a node, serve it, run the demo, and verify logs and receipts offline.

Every failure ends with a one-line message naming the problem and a non-zero exit code; no
traceback reaches the user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medledger.errors import MedledgerError

app = typer.Typer(
    name="medledger",
    help="medledger: a permissioned, FHIR-native ledger for medical records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
log_app = typer.Typer(help="Inspect and verify the transparency log.", no_args_is_help=True)
receipt_app = typer.Typer(help="Verify C2SP tlog-proof receipts offline.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(receipt_app, name="receipt")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

HomeOption = Annotated[
    Path, typer.Option("--home", help="The node's home directory.", file_okay=False)
]
MAX_FILE_BYTES = 1024 * 1024


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def init(
    home: HomeOption = Path(".medledger"),
    origin: Annotated[
        str | None, typer.Option(help="Log origin, e.g. hospital.example/log")
    ] = None,
    port: Annotated[int, typer.Option(help="Port written to node.toml.")] = 8000,
) -> None:
    """Create a node home: settings, a log signing key and an empty log."""
    from medledger.bootstrap import init_home

    try:
        settings = init_home(home, origin=origin, port=port)
    except MedledgerError as e:
        fail(str(e))
    out.print(f"initialised [bold]{home}[/] for log [bold]{settings.origin}[/]")


def _serve(home: Path, host: str | None, port: int | None, *, demo: bool) -> None:
    import uvicorn

    from medledger.bootstrap import open_node
    from medledger.core.note import format_verifier_key
    from medledger.entrypoints.cli.demo import demo_feed
    from medledger.entrypoints.http.app import create_app

    try:
        node = open_node(home)
    except MedledgerError as e:
        fail(str(e))
    host = host or node.settings.host
    port = port or node.settings.port
    background = [demo_feed(node)] if demo else []
    application = create_app(node, background=background)
    url = f"http://{host}:{port}/"
    out.print(f"[bold green]medledger node[/] serving log [bold]{node.settings.origin}[/]")
    out.print(f"  open        {url}")
    out.print(f"  checkpoint  {url}log/checkpoint")
    out.print(f"  API docs    {url}docs")
    out.print(f"  verifier key {format_verifier_key(node.log.verifier)}")
    if demo:
        out.print("  demo feed   appending synthetic, clearly fake audit entries")
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
    """Serve a node's API until interrupted."""
    _serve(home, host, port, demo=False)


@app.command()
def demo(
    home: HomeOption = Path(".medledger-demo"),
    port: Annotated[int, typer.Option(help="Listen port.")] = 8000,
) -> None:
    """Start a demo node on 127.0.0.1 whose log keeps growing (what `make run` starts)."""
    from medledger.bootstrap import SETTINGS_FILE, init_home

    if not (home / SETTINGS_FILE).exists():
        try:
            init_home(home, origin="demo.medledger.local/log", port=port)
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
        with (
            store.snapshot(),
            Progress(
                TextColumn("verifying log"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("entries", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

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
    file: Annotated[Path, typer.Argument(help="A tlog-proof@v1 receipt file ('-' for stdin).")],
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
    """Verify a receipt offline: the checkpoint's signature, then the entry's inclusion."""
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


def main() -> None:  # pragma: no cover - console script shim
    app()
