"""SMART tokens against a served node: `medledger token mint` for the demo users, discovery,
and the token endpoint refusing what it must (forged, replayed, unregistered, deactivated).

The tokens are checked offline with the node's public key, as the FHIR API will check them.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from medledger.client import LedgerClient, new_transaction
from medledger.core.auth.jws import b64url_encode
from medledger.core.auth.tokens import (
    CLIENT_ASSERTION_TYPE,
    build_client_assertion,
    read_access_token,
)

from .cli import ok, refused, run
from .conftest import DemoLedgerNode

JUSTIFICATION = "Unconscious on arrival; allergy history needed before anaesthesia"


def submit(node: DemoLedgerNode, signer: str, tx_type: str, payload: dict[str, Any]) -> None:
    with LedgerClient(node.url) as client:
        stx = new_transaction(
            node.keys[signer],
            network=node.network,
            tx_type=tx_type,
            payload=payload,
            now_s=int(time.time()),
        )
        result = client.submit(stx)
    assert result["ok"] or result["reason"] == "already_registered", result


@pytest.fixture(scope="module")
def node(demo_ledger_node: DemoLedgerNode) -> DemoLedgerNode:
    """Setup, not under test: two doctors, a nurse (deactivated) and a patient registered."""
    keys = demo_ledger_node.keys
    for name, role in (("dr-house", "physician"), ("dr-er", "emergency-physician"),
                       ("nurse-joy", "nurse")):  # fmt: skip
        payload = {"did": keys[name].did, "kind": "practitioner", "roles": [role],
                   "organization": keys["hospital"].did}  # fmt: skip
        submit(demo_ledger_node, "hospital", "participant.register", payload)
    submit(demo_ledger_node, "hospital", "participant.register",
           {"did": keys["patient-1"].did, "kind": "patient", "roles": []})  # fmt: skip
    submit(demo_ledger_node, "hospital", "participant.deactivate", {"did": keys["nurse-joy"].did})
    return demo_ledger_node


def key(node: DemoLedgerNode, name: str) -> str:
    return str(node.home / "demo-keys" / f"{name}.key")


def claims(node: DemoLedgerNode, token: str) -> Any:
    return read_access_token(
        token.strip(),
        node.keys["hospital"].public_key,
        int(time.time()),
        audience=node.url + "fhir",
    )


def token_form(node: DemoLedgerNode, who: str, **change: str) -> dict[str, str]:
    assertion = build_client_assertion(
        node.keys[who],
        token_endpoint=node.url + "auth/token",
        now=int(time.time()),
        jti=f"e2e-{who}-{time.monotonic_ns()}",
    )
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "user/*.rs",
        **change,
    }


def test_smart_configuration_is_published(node: DemoLedgerNode) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        config = node.http.get(path).json()
        assert config["token_endpoint"] == node.url + "auth/token"
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert config["token_endpoint_auth_signing_alg_values_supported"] == ["EdDSA"]


def test_cli_mints_a_token_for_a_practitioner(node: DemoLedgerNode) -> None:
    result = run("token", "mint", "--key", key(node, "dr-house"), "--node", node.url)
    token = claims(node, ok(result))
    assert token.sub == node.keys["dr-house"].did
    assert str(token.scope) == "user/*.rs"  # read-only by default
    assert token.patient is None
    assert "expires" in result.stderr


def test_cli_mints_a_capped_token_for_a_patient(node: DemoLedgerNode) -> None:
    result = run("token", "mint", "--key", key(node, "patient-1"), "--node", node.url,
                 "--scope", "patient/*.cruds user/*.rs")  # fmt: skip
    token = claims(node, ok(result))
    assert str(token.scope) == "patient/*.rs patient/Consent.cud"
    assert token.patient == node.keys["patient-1"].did
    assert "patient context" in result.stderr


def test_cli_mints_a_break_glass_token_and_names_the_headers(node: DemoLedgerNode) -> None:
    result = run("token", "mint", "--key", key(node, "dr-er"), "--node", node.url,
                 "--purpose", "ETREAT", "--justification", JUSTIFICATION)  # fmt: skip
    assert claims(node, ok(result)).purpose_of_use == "ETREAT"
    assert "X-Purpose-Of-Use: ETREAT" in result.stderr
    assert f"X-Break-Glass-Justification: {JUSTIFICATION}" in result.stderr


def test_cli_justification_without_an_emergency_purpose_is_refused(node: DemoLedgerNode) -> None:
    refused(run("token", "mint", "--key", key(node, "dr-er"), "--node", node.url,
                "--justification", JUSTIFICATION), "--purpose ETREAT or BTG")  # fmt: skip


def test_cli_refuses_scopes_the_kind_cannot_hold(node: DemoLedgerNode) -> None:
    refused(run("token", "mint", "--key", key(node, "dr-house"), "--node", node.url,
                "--scope", "system/*.rs"), "invalid_scope")  # fmt: skip


def test_unregistered_client_is_refused(node: DemoLedgerNode) -> None:
    refused(run("token", "mint", "--key", key(node, "lab-tech"), "--node", node.url),
            "not a registered participant")  # fmt: skip
    refused(run("token", "mint", "--key", key(node, "lab-tech"), "--node", node.url,
                "--scope", "user/*.rs"), "invalid_client")  # fmt: skip


def test_deactivated_client_is_refused(node: DemoLedgerNode) -> None:
    response = node.http.post("/auth/token", data=token_form(node, "nurse-joy"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_forged_client_assertion_is_refused_with_invalid_client(node: DemoLedgerNode) -> None:
    """Mallory (an unregistered key) signs an assertion naming Dr House as the client."""
    fields = token_form(node, "dr-house")
    header, payload, _ = fields["client_assertion"].split(".")
    signature = node.keys["lab-tech"].sign(f"{header}.{payload}".encode())
    fields["client_assertion"] = f"{header}.{payload}.{b64url_encode(signature)}"
    response = node.http.post("/auth/token", data=fields)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_replayed_client_assertion_is_refused_by_the_node(node: DemoLedgerNode) -> None:
    fields = token_form(node, "dr-house")
    assert node.http.post("/auth/token", data=fields).status_code == 200
    replay = node.http.post("/auth/token", data=fields)
    assert replay.status_code == 401
    assert "replay" in replay.json()["error_description"]


def test_assertion_for_another_host_name_is_refused(node: DemoLedgerNode) -> None:
    """The audience is the node's configured URL, not whatever Host the request names."""
    fields = token_form(node, "dr-house")
    other = node.url.replace("127.0.0.1", "localhost")
    assertion = build_client_assertion(
        node.keys["dr-house"], token_endpoint=other + "auth/token", now=int(time.time()),
        jti=f"e2e-host-{time.monotonic_ns()}",
    )  # fmt: skip
    fields["client_assertion"] = assertion
    response = httpx.post(other + "auth/token", data=fields, timeout=30)
    assert response.status_code == 401
    assert "aud" in response.json()["error_description"]
