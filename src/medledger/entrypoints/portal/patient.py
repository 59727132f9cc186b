"""The patient's pages: who looked at my data, consent, my records.

Shells only: each page is a template and an ES module that calls the node's public API signed
in the browser with the patient's key (``request.list_audit``, ``request.read``,
``request.erase``, ``consent.grant`` / ``consent.revoke`` transactions, a SMART token for
``$everything``) and verifies receipts there against the log key pinned at sign-in (ADR 0020).
The server renders no patient data: it has none it would give a page without a signature.
"""

from __future__ import annotations

from fastapi import APIRouter

from medledger.entrypoints.portal.app import PortalContext
from medledger.entrypoints.portal.templating import Page, page_router

PAGES = (
    Page("/timeline", "timeline.html", "Who looked at my data", "timeline"),
    Page("/consent", "consent.html", "Who can see my data", "consent"),
    Page("/records", "records.html", "My records", "records"),
)


def router(context: PortalContext) -> APIRouter:
    return page_router(context, PAGES)
