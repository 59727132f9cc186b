"""The node's landing page: what the log holds now and where to read it. Server-rendered."""

from __future__ import annotations

from html import escape

from medledger.bootstrap import Node
from medledger.core.note import format_verifier_key

_RECENT = 10

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b}
pre{background:#f4f4f4;padding:.75rem;overflow-x:auto;font-size:.85rem}
code{background:#f4f4f4;padding:0 .2rem}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #ddd;vertical-align:top}td.e{font-family:monospace;font-size:.8rem;
word-break:break-all}
"""


def _entry_preview(data: bytes) -> str:
    text = data[:200].decode("utf-8", errors="replace")
    return escape(text + ("…" if len(data) > 200 else ""))


def _recent_blocks(node: Node) -> list[tuple[int, int, str]]:
    """(height, transaction count, hash hex) of the newest blocks, newest first."""
    latest = node.ledger_store.latest()
    if latest is None:
        return []
    out = []
    for height in range(latest.height, max(-1, latest.height - _RECENT), -1):
        block = node.ledger_store.block(height)
        if block is not None:
            out.append((height, len(node.ledger_store.block_txs(height)), block.hash.hex()))
    return out


def render_home(node: Node) -> str:
    log = node.log
    size = log.size()
    checkpoint = log.latest_checkpoint()
    vkey = format_verifier_key(log.verifier)
    start = max(0, size - _RECENT)
    recent = node.store.entries(start, size) if size else []
    rows = "".join(
        f'<tr><td><a href="/log/receipt/{start + i}">{start + i}</a></td>'
        f'<td class="e">{_entry_preview(e)}</td></tr>'
        for i, e in reversed(list(enumerate(recent)))
    )
    blocks = _recent_blocks(node)
    latest_height = blocks[0][0] if blocks else 0
    block_rows = "".join(
        f'<tr><td><a href="/ledger/blocks/{h}">{h}</a></td><td>{n}</td>'
        f'<td class="e">{escape(block_hash[:16])}…</td></tr>'
        for h, n, block_hash in blocks
    )
    endpoints = [
        ("/ledger/blocks/latest", "latest block: header, proposer signature, outcomes"),
        ("/ledger/participants", "registered participants (pseudonymous did:keys)"),
        ("/log/checkpoint", "latest signed checkpoint (C2SP tlog-checkpoint)"),
        ("/log/verifier-key", "signed-note verifier key"),
        (f"/log/entries/{max(size - 1, 0)}", "exact bytes of an entry"),
        (f"/log/proof/inclusion?index=0&size={size}", "RFC 9162 inclusion proof"),
        (f"/log/proof/consistency?from=1&to={size}", "RFC 9162 consistency proof"),
        (f"/log/receipt/{max(size - 1, 0)}", "C2SP tlog-proof@v1 receipt"),
        ("/log/tile/0/000.p/1", "C2SP tlog-tiles hash tile"),
        ("/docs", "OpenAPI documentation"),
    ]
    links = "".join(
        f'<li><a href="{escape(href)}"><code>{escape(href)}</code></a> — {escape(what)}</li>'
        for href, what in endpoints
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>medledger node — {escape(log.origin)}</title><style>{_STYLE}</style></head>
<body><main>
<h1>medledger node</h1>
<p>Network <strong>{escape(node.genesis.network)}</strong> is at block
<strong>{latest_height}</strong>; this node signs as <code>{escape(node.key.did)}</code>.
Transparency log <strong>{escape(log.origin)}</strong> holds <strong>{size}</strong>
entries: every committed transaction is an RFC 9162 leaf that anyone can check against the
signed checkpoint below, offline, with <code>medledger receipt verify</code>.</p>
<h2>Latest blocks</h2>
<table><thead><tr><th scope="col">height</th><th scope="col">transactions</th>
<th scope="col">hash</th></tr></thead><tbody>{block_rows}</tbody></table>
<h2>Latest checkpoint</h2>
<pre>{escape(checkpoint.note.decode("utf-8"))}</pre>
<h2>Verifier key</h2>
<pre>{escape(vkey)}</pre>
<h2>Read the log</h2>
<ul>{links}</ul>
<h2>Most recent entries</h2>
<table><thead><tr><th scope="col">index</th><th scope="col">entry</th></tr></thead>
<tbody>{rows}</tbody></table>
</main></body></html>"""
