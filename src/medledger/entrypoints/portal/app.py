"""Mounting the portal on the node's app: its context, static files and page routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from medledger.bootstrap import Node
from medledger.core.note import format_verifier_key

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A demo user whose encrypted key file the demo serves (passphrase published)."""

    name: str  # the key file's stem, e.g. "patient-1"
    did: str


@dataclass(frozen=True, slots=True)
class PortalContext:
    """What every page tells the browser about this node (public facts only, no PHI)."""

    network: str
    node_did: str
    node_name: str
    log_origin: str
    verifier_key: str
    base_url: str
    demo_keys_dir: Path | None = None
    demo_users: tuple[DemoUser, ...] = ()
    demo_passphrase: str | None = None

    def public(self) -> dict[str, object]:
        """The JSON a page embeds as ``<script type="application/json" id="node-info">``."""
        return {
            "network": self.network,
            "nodeDid": self.node_did,
            "nodeName": self.node_name,
            "logOrigin": self.log_origin,
            "verifierKey": self.verifier_key,
            "baseUrl": self.base_url,
            "fhirBase": f"{self.base_url}/fhir",
            "demo": [{"name": u.name, "did": u.did} for u in self.demo_users],
            "demoPassphrase": self.demo_passphrase,
        }


def portal_context(
    node: Node,
    *,
    base_url: str,
    demo_users: tuple[DemoUser, ...] = (),
    demo_keys_dir: Path | None = None,
    demo_passphrase: str | None = None,
) -> PortalContext:
    name = next((a.name for a in node.genesis.authorities if a.did == node.key.did), node.key.did)
    return PortalContext(
        network=node.genesis.network,
        node_did=node.key.did,
        node_name=name,
        log_origin=node.log.verifier.name,
        verifier_key=format_verifier_key(node.log.verifier),
        base_url=base_url.rstrip("/"),
        demo_keys_dir=demo_keys_dir,
        demo_users=demo_users,
        demo_passphrase=demo_passphrase,
    )


def mount_portal(app: FastAPI, context: PortalContext) -> None:
    from medledger.entrypoints.portal import officer, patient, shell

    app.mount("/portal/static", StaticFiles(directory=STATIC), name="portal-static")
    app.include_router(shell.router(context))
    app.include_router(patient.router(context))
    app.include_router(officer.router(context))
