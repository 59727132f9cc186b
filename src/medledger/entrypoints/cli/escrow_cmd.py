"""`medledger escrow create/request/approve/recover`: an organization's emergency key escrow.

1. ``create`` (the organization): split the escrowed key k-of-n, write one share file per
   custodian (hand them over out of band), and record the escrow on the ledger.
2. ``request`` (an authority, or the organization's administrator or privacy officer): ask for a
   release, naming the requester's X25519 key (derived from its key file).
3. ``approve`` (each custodian): seal its share to the requester's key, bound to the escrow,
   request and custodian, and submit the approval: every approval is a ledger transaction.
4. ``recover`` (the requester): once k approvals are on the ledger, open the shares, combine
   them, check the key against the escrow's ``key_did``, and write a new key file.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Annotated

import typer

from medledger.entrypoints.cli.remote import submit
from medledger.errors import MedledgerError

escrow_app = typer.Typer(
    help="Emergency key escrow with custodian approvals.", no_args_is_help=True
)

NodeOpt = Annotated[str, typer.Option("--node", help="The node's base URL.")]
KeyOpt = Annotated[Path, typer.Option("--key", help="Your key file (signs the transaction).")]
EscrowOpt = Annotated[str, typer.Option("--escrow-id", help="The escrow's id.")]
RequestOpt = Annotated[str, typer.Option("--request-id", help="The release request's id.")]


@escrow_app.command("create")
def create(
    key: KeyOpt,
    escrowed: Annotated[Path, typer.Option("--escrowed-key", help="The key file to escrow.")],
    custodians: Annotated[list[str], typer.Option("--custodian", help="A custodian's did:key.")],
    threshold: Annotated[int, typer.Option("--threshold", help="Approvals needed (k).")],
    escrow_id: EscrowOpt,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the share files go.")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Split a key among custodians and record the escrow on the ledger."""
    from medledger.adapters.files import atomic_write
    from medledger.adapters.keystore import read_key_file
    from medledger.core.recovery.shamir import format_share, split
    from medledger.entrypoints.cli.main import _passphrase, fail, out

    if not 2 <= threshold <= len(custodians) <= 16:
        fail("need 2 <= --threshold <= number of --custodian <= 16")
    # Share x goes to the x-th custodian in sorted order (as the ledger lists them), so a
    # custodian's tooling can check it holds its own share before approving.
    custodians = sorted(set(custodians))
    files = [out_dir / f"{escrow_id}-share-{i + 1}.txt" for i in range(len(custodians))]
    if any(f.exists() for f in files):
        fail("share files exist already: refusing to overwrite")
    try:
        secret = read_key_file(escrowed, _passphrase(confirm=False))
        shares = split(secret.export_seed(), threshold, len(custodians), secrets.token_bytes)
        for path, custodian, share in zip(files, custodians, shares, strict=True):
            text = f"# escrow {escrow_id} share for custodian {custodian}\n{format_share(share)}\n"
            atomic_write(path, text.encode())
        payload = {
            "escrow_id": escrow_id,
            "threshold": threshold,
            "custodians": custodians,
            "key_did": secret.did,
        }
        result = submit(node, key, "escrow.create", payload)
    except MedledgerError as e:
        fail(f"escrow not created: {e}")
    out.print(f"escrow {escrow_id} of {secret.did} created at height {result.get('height')}")
    for path, custodian in zip(files, custodians, strict=True):
        out.print(f"  give {path} to {custodian}")


@escrow_app.command("request")
def request(
    key: KeyOpt,
    escrow_id: EscrowOpt,
    request_id: RequestOpt,
    reason: Annotated[str, typer.Option(help="Why, e.g. lost-node-key.")] = "lost-node-key",
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Ask the custodians to release the escrowed key to you."""
    from medledger.adapters.keystore import read_key_file
    from medledger.core.identity.keys import encryption_keypair
    from medledger.entrypoints.cli.main import _passphrase, fail, out

    try:
        me = read_key_file(key, _passphrase(confirm=False))
        payload = {
            "escrow_id": escrow_id,
            "request_id": request_id,
            "reason": reason,
            "enc_key": encryption_keypair(me).public_key.hex(),
        }
        result = submit(node, key, "escrow.request", payload)
    except MedledgerError as e:
        fail(f"request not recorded: {e}")
    out.print(f"request {request_id} recorded at height {result.get('height')}")


@escrow_app.command("approve")
def approve(
    key: KeyOpt,
    escrow_id: EscrowOpt,
    request_id: RequestOpt,
    share_file: Annotated[Path, typer.Option("--share", help="Your share file.")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Approve a release: your share, sealed to the requester, goes on the ledger."""
    from medledger.adapters.keystore import read_key_file
    from medledger.client import LedgerClient
    from medledger.core.crypto.key_wrap import seal_message
    from medledger.core.ledger.contracts.escrow import share_wrap_info
    from medledger.core.recovery.shamir import format_share, parse_share
    from medledger.entrypoints.cli.main import _passphrase, _read_small, fail, out

    try:
        me = read_key_file(key, _passphrase(confirm=False))
        lines = [
            line.strip()
            for line in _read_small(share_file, "share file").decode("utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        if len(lines) != 1:
            fail("the share file must hold exactly one share")
        share = parse_share(lines[0])
        with LedgerClient(node) as client:
            escrow = client.escrow(escrow_id)
            wanted = client.escrow_request(escrow_id, request_id)
        if me.did not in escrow["custodians"]:
            fail("you are not a custodian of this escrow")
        if share.x != escrow["custodians"].index(me.did) + 1 or share.k != escrow["threshold"]:
            fail("this share file is not yours for this escrow")
        sealed = seal_message(
            format_share(share).encode(),
            bytes.fromhex(wanted["enc_key"]),
            share_wrap_info(escrow_id, request_id, me.did),
        )
        payload = {
            "escrow_id": escrow_id,
            "request_id": request_id,
            "share_wrap": base64.b64encode(sealed).decode("ascii"),
        }
        result = submit(node, key, "escrow.approve", payload)
    except (MedledgerError, UnicodeDecodeError, KeyError, ValueError) as e:
        fail(f"approval not recorded: {e}")
    out.print(f"approval of {request_id} by {me.did} recorded at height {result.get('height')}")


@escrow_app.command("recover")
def recover(
    key: KeyOpt,
    escrow_id: EscrowOpt,
    request_id: RequestOpt,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the recovered key.")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Once k custodians approved, open their shares and rebuild the escrowed key."""
    from medledger.adapters.keystore import read_key_file, write_key_file
    from medledger.client import LedgerClient
    from medledger.core.crypto.key_wrap import open_message
    from medledger.core.identity.keys import ParticipantKey, encryption_keypair
    from medledger.core.ledger.contracts.escrow import share_wrap_info
    from medledger.core.recovery.shamir import combine, parse_share
    from medledger.entrypoints.cli.main import _passphrase, fail, out

    if out_file.exists():
        fail(f"{out_file} exists: refusing to overwrite a key")
    try:
        me = read_key_file(key, _passphrase(confirm=False))
        with LedgerClient(node) as client:
            escrow = client.escrow(escrow_id)
            wanted = client.escrow_request(escrow_id, request_id)
        if wanted.get("requester") != me.did:
            fail("this request was made by someone else")
        if not wanted.get("released"):
            have, need = len(wanted.get("approvals", [])), escrow["threshold"]
            fail(f"not released yet: {have} of {need} approvals")
        private = encryption_keypair(me).private_key
        shares = [
            parse_share(
                open_message(
                    base64.b64decode(a["share_wrap"]),
                    private,
                    share_wrap_info(escrow_id, request_id, a["custodian"]),
                ).decode()
            )
            for a in wanted["approvals"]
        ]
        recovered = ParticipantKey.from_seed(combine(shares))
        if recovered.did != escrow["key_did"]:
            fail("the shares rebuild a different key than the one escrowed")
        write_key_file(out_file, recovered, _passphrase(confirm=True))
    except (MedledgerError, KeyError, ValueError) as e:
        fail(f"key not recovered: {e}")
    out.print(f"recovered {recovered.did} into {out_file}")


def register(app: typer.Typer) -> None:
    app.add_typer(escrow_app, name="escrow")
