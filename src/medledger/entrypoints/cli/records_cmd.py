"""`medledger records put/get/erase`: off-chain records through a node's API.

``get`` is the end-to-end key-release path a grantee uses: a per-session X25519 key, a signed
``request.key_release``, the ciphertext fetched by CID and checked, the data key unwrapped and
the record decrypted here, and the salted commitment checked against the ledger.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from medledger.entrypoints.cli.remote import load_key, signed_request
from medledger.errors import MedledgerError

records_app = typer.Typer(help="Encrypted off-chain records.", no_args_is_help=True)

NodeOpt = Annotated[str, typer.Option("--node", help="The node's base URL.")]
PatientOpt = Annotated[str, typer.Option("--patient", help="The patient's did:key.")]
RecordOpt = Annotated[str, typer.Option("--record-id", help="The record's id.")]


def _request(client: Any, key_file: Path, tx_type: str, payload: dict[str, Any]) -> Any:
    key = load_key(key_file)
    return key, signed_request(client, key, tx_type, payload)


@records_app.command("put")
def put(
    patient: PatientOpt,
    record_id: RecordOpt,
    resource_type: Annotated[str, typer.Option("--type", help="FHIR resource type.")],
    file: Annotated[Path, typer.Option("--file", help="The FHIR resource (JSON).")],
    node: NodeOpt = "http://127.0.0.1:8000",
) -> None:
    """Store a record version: the node encrypts it, stores the ciphertext and anchors it."""
    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import _read_small, fail, out

    try:
        content = json.loads(_read_small(file, "record"))
    except (ValueError, RecursionError):
        fail(f"{file} is not JSON")
    if not isinstance(content, dict):
        fail(f"{file} must hold a JSON object")
    try:
        with LedgerClient(node) as client:
            result = client.put_record(
                patient=patient,
                record_id=record_id,
                resource_type=resource_type,
                content=content,
            )
    except MedledgerError as e:
        fail(f"record not stored: {e}")
    out.print_json(data=result)


@records_app.command("get")
def get(
    patient: PatientOpt,
    record_id: RecordOpt,
    key: Annotated[Path, typer.Option("--key", help="The requester's key file.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    version: Annotated[int | None, typer.Option(help="A version (default: latest).")] = None,
    purpose: Annotated[str, typer.Option(help="Purpose of use (v3-ActReason).")] = "TREAT",
    justification: Annotated[
        str | None,
        typer.Option(help="Break-glass: why (with --purpose BTG or ETREAT); logged, reviewed."),
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the record here.")] = None,
) -> None:
    """Obtain the data key through key release, then fetch, check and decrypt locally."""
    from medledger.client import LedgerClient
    from medledger.core.cid import verify_cid
    from medledger.core.crypto.key_wrap import WrapInfo, unwrap_key, x25519_from_seed
    from medledger.core.crypto.record_cipher import RecordAad, open_record, verify_commitment
    from medledger.entrypoints.cli.main import err, fail, out

    session = x25519_from_seed(secrets.token_bytes(32))
    payload: dict[str, Any] = {
        "patient": patient,
        "record_id": record_id,
        "purpose": purpose,
        "session_key": session.public_key.hex(),
    }
    if version is not None:
        payload["version"] = version
    if justification is not None:
        payload["justification"] = justification
    try:
        with LedgerClient(node) as client:
            requester, request = _request(client, key, "request.key_release", payload)
            release = client.key_release(request)
            blob = client.blob(release["cid"])
            anchored = client.record(patient, record_id)
        verify_cid(release["cid"], blob)
        info = WrapInfo(record_id, release["version"], requester.did, release["grant"])
        data_key = unwrap_key(base64.b64decode(release["wrap"]), session.private_key, info)
        aad = RecordAad(record_id, release["version"], release["resource_type"], patient)
        content = open_record(blob, data_key, aad)
        entry = next(v for v in anchored["versions"] if v["version"] == release["version"])
        if entry["cid"] != release["cid"]:
            fail("the node served a ciphertext that is not the one anchored on the ledger")
        verify_commitment(
            bytes.fromhex(release["salt"]), content, bytes.fromhex(entry["commitment"])
        )
    except MedledgerError as e:
        fail(f"record not read: {e}")
    except (KeyError, StopIteration, ValueError) as e:
        fail(f"the node's answer is malformed: {type(e).__name__}")
    if release["grant"] == "break-glass":
        err.print(
            "[bold red]BREAK-GLASS[/] access: recorded, shown to the patient and queued for "
            "review by your organization's privacy officer"
        )
    if out_file is not None:
        out_file.write_bytes(content)
        out.print(
            f"version {release['version']} written to {out_file} (verified against the ledger)"
        )
    else:
        out.print_json(data=json.loads(content))


@records_app.command("erase")
def erase(
    patient: PatientOpt,
    record_id: RecordOpt,
    key: Annotated[Path, typer.Option("--key", help="The requester's key file.")],
    node: NodeOpt = "http://127.0.0.1:8000",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a record (GDPR art. 17): destroy its keys and ciphertexts, record a tombstone."""
    from medledger.client import LedgerClient
    from medledger.entrypoints.cli.main import fail, out

    if not yes and not typer.confirm(
        f"Erase every version of {record_id}? Nothing will be recoverable.", default=False
    ):
        fail("not erased")
    payload = {"patient": patient, "record_id": record_id, "purpose": "PATRQT"}
    try:
        with LedgerClient(node) as client:
            _, request = _request(client, key, "request.erase", payload)
            result = client.erase_record(request)
    except MedledgerError as e:
        fail(f"record not erased: {e}")
    out.print_json(data=result)


def register(app: typer.Typer) -> None:
    app.add_typer(records_app, name="records")
