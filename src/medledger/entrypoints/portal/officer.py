"""The privacy officer's console, the practitioner's page and the ledger explorer (issue 8).

Page shells only: each route renders a template whose ES module does the work in the browser
as a client of the node's public, signed API (ADR 0020) -- the server grants these pages
nothing it would not grant the CLI, and they carry no data of their own:

- ``/portal/officer``: break-glass review queue (signed ``request.review_queue``), each ruling
  an ``access.review`` transaction signed in the browser; access-decision charts (signed
  ``request.access_stats``, ``entrypoints.http.officer_api``); ledger status with the latest
  checkpoint verified against the pinned log key.
- ``/portal/clinician``: a practitioner picks a registered patient, lists their anchored
  records and reads one with a signed ``request.read`` (break-glass with a justification for
  emergency physicians); a denial is shown as such, and is an access event the patient sees.
- ``/portal/explorer``: blocks, transactions, checkpoints, and a consistency check between any
  two checkpoints run in the browser (``GET /log/checkpoints``, ``/log/proof/consistency``).
"""

from __future__ import annotations

from fastapi import APIRouter

from medledger.entrypoints.portal.app import PortalContext
from medledger.entrypoints.portal.templating import Page, page_router

PAGES = (
    Page("/officer", "officer.html", "Privacy officer's console", "officer"),
    Page("/clinician", "clinician.html", "Patient records", "clinician"),
    Page("/explorer", "explorer.html", "Ledger explorer", "explorer"),
)


def router(context: PortalContext) -> APIRouter:
    return page_router(context, PAGES)
