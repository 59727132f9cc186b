"""`medledger token mint`: an access token for a participant, as a SMART backend client gets one.

1. read the participant's key file (its did:key is the OAuth client id);
2. discover the node's token endpoint (``/.well-known/smart-configuration``);
3. sign a client assertion (RFC 7523, ``aud`` = that endpoint, 60 s, random ``jti``);
4. ``POST`` it (``client_credentials``, ``private_key_jwt``) with the scopes asked for --
   by default read-only for the participant's kind: ``patient/*.rs``, ``user/*.rs`` or
   ``system/*.rs``;
5. print the access token on stdout (so ``TOKEN=$(medledger token mint ...)`` works) and what
   was granted on stderr.

With ``--purpose ETREAT --justification ...`` the token is bound to that purpose, and the
headers a break-glass request sends with it are printed: the justification travels with each
request (``X-Break-Glass-Justification``), never inside the token.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer

token_app = typer.Typer(help="SMART on FHIR access tokens.", no_args_is_help=True)

DEFAULT_SCOPES = {
    "patient": "patient/*.rs",
    "practitioner": "user/*.rs",
    "organization": "system/*.rs",
}
ASSERTION_LIFETIME_S = 60
TIMEOUT_S = 30.0


def _get_json(http: Any, url: str, not_found: str) -> dict[str, Any]:
    from medledger.entrypoints.cli.main import fail

    response = http.get(url)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 404:
        fail(not_found)
    if response.status_code != 200 or not isinstance(body, dict):
        fail(f"{url}: the node answered {response.status_code}")
    return body


def _token_endpoint(http: Any, node: str) -> str:
    from medledger.entrypoints.cli.main import fail

    config = _get_json(
        http, f"{node}/.well-known/smart-configuration", "the node publishes no SMART configuration"
    )
    endpoint = config.get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        fail("the node's SMART configuration names no token endpoint")
    return endpoint


def _default_scope(http: Any, node: str, did: str) -> str:
    from medledger.entrypoints.cli.main import fail

    kind = _get_json(
        http, f"{node}/ledger/participants/{did}", f"{did} is not a registered participant"
    ).get("kind")
    if kind not in DEFAULT_SCOPES:
        fail(f"{did} is not a participant that can hold a token")
    return DEFAULT_SCOPES[str(kind)]


@token_app.command("mint")
def mint(
    key: Annotated[Path, typer.Option("--key", help="The participant's key file (the client).")],
    node: Annotated[str, typer.Option("--node", help="The node's base URL.")] = (
        "http://127.0.0.1:8000"
    ),
    scope: Annotated[
        str | None,
        typer.Option(help='SMART scopes, e.g. "user/*.rs" (default: read-only for your kind).'),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(help="Bind the token to a purpose of use (v3-ActReason: TREAT, ETREAT, BTG)."),
    ] = None,
    justification: Annotated[
        str | None,
        typer.Option(help="Break-glass justification (10-500 characters; with ETREAT or BTG)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole token response as JSON.")
    ] = False,
) -> None:
    """Mint an access token with a participant's key (OAuth client_credentials, private_key_jwt)."""
    import httpx

    from medledger.core.access.gate import (
        BREAK_GLASS_PURPOSES,
        MAX_JUSTIFICATION,
        MIN_JUSTIFICATION,
    )
    from medledger.core.auth.tokens import CLIENT_ASSERTION_TYPE, build_client_assertion
    from medledger.entrypoints.cli.main import err, fail, out
    from medledger.entrypoints.cli.remote import load_key
    from medledger.errors import MedledgerError

    if justification is not None:
        if purpose not in BREAK_GLASS_PURPOSES:
            fail("--justification asks for break-glass: give --purpose ETREAT or BTG with it")
        if not MIN_JUSTIFICATION <= len(justification.strip()) <= MAX_JUSTIFICATION:
            fail(f"--justification: {MIN_JUSTIFICATION}-{MAX_JUSTIFICATION} characters")
    base = node.rstrip("/")
    try:
        participant = load_key(key)
        with httpx.Client(timeout=TIMEOUT_S) as http:
            endpoint = _token_endpoint(http, base)
            asked = scope or _default_scope(http, base, participant.did)
            assertion = build_client_assertion(
                participant,
                token_endpoint=endpoint,
                now=int(time.time()),
                jti=secrets.token_urlsafe(18),
                lifetime_s=ASSERTION_LIFETIME_S,
            )
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion,
                "scope": asked,
                **({"purpose_of_use": purpose} if purpose else {}),
            }
            response = http.post(endpoint, data=form)
    except MedledgerError as e:
        fail(str(e))
    except httpx.HTTPError as e:
        fail(f"cannot reach the node: {type(e).__name__}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body.get("access_token"), str):
        error = body.get("error", response.status_code) if isinstance(body, dict) else "?"
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        fail(f"token refused ({error}): {description}".rstrip(": "))
    if as_json:
        out.print_json(json.dumps(body))
    else:
        typer.echo(body["access_token"])
    lifetime = body.get("expires_in")
    lifetime = lifetime if isinstance(lifetime, int) else 0
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
    err.print(f"token for {participant.did}: scope {body.get('scope')!r}, expires {expires}")
    if body.get("patient"):
        err.print(f"  patient context {body['patient']}")
    if purpose:
        err.print(f"  send with each request: X-Purpose-Of-Use: {purpose}")
    if justification is not None:
        err.print(f"  and X-Break-Glass-Justification: {justification.strip()}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
