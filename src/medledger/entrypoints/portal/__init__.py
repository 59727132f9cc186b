"""The patient portal and the privacy officer's console (issue 8, ADR 0020), under ``/portal``.

The portal is a client of the node's public, signed API, not a privileged session: its pages are
server-rendered shells (Jinja2, autoescaped) and small ES modules that sign every request and
transaction in the user's browser with the user's own key (kept in IndexedDB as a
non-extractable WebCrypto key) and verify every receipt, checkpoint and proof there, against
the log verifier key pinned at sign-in. The server never sees a private key and grants the
portal nothing it would not grant the CLI.

The path a page takes: ``shell`` (sign-in, demo keys) -> ``patient`` (who looked at my data,
consent, records) / ``officer`` (break-glass review, charts, ledger status, explorer); each a
router of pages over the templates in ``templates/`` and the modules in ``static/js``.
"""

from medledger.entrypoints.portal.app import PortalContext, mount_portal, portal_context

__all__ = ["PortalContext", "mount_portal", "portal_context"]
