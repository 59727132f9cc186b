"""`medledger network up|down|status`: a consortium dev network on loopback (issue 7), and
serving a consortium node home (``medledger serve`` on a home with consortium.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medledger.errors import MedledgerError

network_app = typer.Typer(
    help="A consortium network: N authority nodes ordered by a 3-member etcd cluster.",
    no_args_is_help=True,
)
NetHome = Annotated[Path, typer.Option("--home", help="The network's directory.", file_okay=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(network_app, name="network")


@network_app.command("up")
def up(
    nodes: Annotated[int, typer.Option("--nodes", help="Authority nodes (1-5).")] = 3,
    home: NetHome = Path(".medledger-network"),
    base_port: Annotated[int, typer.Option(help="Port of node1; node k gets +k-1.")] = 8101,
    etcd_port: Annotated[int, typer.Option(help="First etcd client port.")] = 23790,
) -> None:
    """Create (first time) and start etcd and the nodes on 127.0.0.1; print their URLs."""
    from medledger.devnet import NETWORK_FILE, create_network, start_network
    from medledger.entrypoints.cli.main import fail, out

    try:
        if not (home / NETWORK_FILE).exists():
            create_network(home, nodes=nodes, base_port=base_port, etcd_port=etcd_port)
            out.print(f"created network [bold]{home}[/] with {nodes} authorities")
        infos = start_network(home)
    except MedledgerError as e:
        fail(str(e))
    from medledger.devnet import etcd_cluster

    out.print("[bold green]medledger network up[/]")
    out.print(f"  etcd   {', '.join(etcd_cluster(home).endpoints)}")
    for n in infos:
        out.print(f"  {n.name}  {n.url}/  ({n.did[:32]}...)")
    out.print(f"  stop with: medledger network down --home {home}")


@network_app.command("down")
def down(home: NetHome = Path(".medledger-network")) -> None:
    """Stop the network's nodes and etcd members by PID (data is kept)."""
    from medledger.devnet import stop_network
    from medledger.entrypoints.cli.main import fail, out

    try:
        stopped = stop_network(home)
    except MedledgerError as e:
        fail(str(e))
    out.print(f"stopped {stopped} processes")


@network_app.command("status")
def status(home: NetHome = Path(".medledger-network")) -> None:
    """Each node's height, final height and state root; names any diverged node (exit 1)."""
    from medledger.devnet import diverged, network_status
    from medledger.entrypoints.cli.main import fail, out

    try:
        statuses = network_status(home)
    except MedledgerError as e:
        fail(str(e))
    bad = diverged(statuses)
    for s in statuses:
        if "error" in s:
            out.print(f"{s['name']}  {s['url']}  [red]{s['error']}[/]")
            continue
        flag = "[bold red]DIVERGED[/]" if s["name"] in bad else "ok"
        role = " submitter" if s.get("is_submitter") else ""
        out.print(
            f"{s['name']}  {s['url']}  height {s['height']}  final {s['final_height']}  "
            f"state {s['state_root'][:16]}  {flag}{role}"
        )
    for name, why in bad.items():
        out.print(f"[bold red]diverged:[/] {name}: {why}")
    if bad or any("error" in s for s in statuses):
        raise typer.Exit(1)


def serve_consortium(home: Path, host: str | None, port: int | None) -> None:
    import uvicorn

    from medledger.bootstrap_consortium import open_consortium_node
    from medledger.entrypoints.cli.main import fail, out
    from medledger.entrypoints.http import consortium_routes
    from medledger.entrypoints.http.app import create_app, open_on_loopback

    try:
        runtime = open_consortium_node(home)
        runtime.start()
    except MedledgerError as e:
        fail(str(e))
    node = runtime.node
    application = create_app(
        node,
        routers=[
            consortium_routes.router(
                consortium=runtime.consortium,
                ledger=node.ledger,
                peer_records=runtime.peer_records,
                authorize=open_on_loopback,
            )
        ],
        wait_final=runtime.consortium.wait_final,
    )
    host = host or node.settings.host
    port = port or node.settings.port
    out.print(f"[bold green]medledger consortium node[/] {node.key.did} on http://{host}:{port}/")
    try:
        uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
    finally:
        runtime.close()
