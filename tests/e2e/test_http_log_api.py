"""The log's read API over real HTTP, checked the way a monitor or a patient's verifier would."""

from __future__ import annotations

import base64

import httpx
import pytest

from medledger.config import Limits
from medledger.core.checkpoint import open_checkpoint
from medledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from medledger.core.note import parse_verifier_key
from medledger.core.receipt import parse_receipt, verify_receipt
from medledger.core.tiles import decode_entry_bundle
from medledger.errors import ProofError
from medledger.testing import reference_merkle as ref

from .conftest import ServedNode

ORIGIN = "e2e.medledger.test/log"


def get(node: ServedNode, path: str) -> httpx.Response:
    return httpx.get(node.url + path.lstrip("/"), timeout=10)


def test_checkpoint_is_a_signed_note_that_verifies_under_the_served_key(served_node: ServedNode):
    vkey = get(served_node, "/log/verifier-key")
    assert vkey.status_code == 200
    assert vkey.headers["content-type"].startswith("text/plain")
    verifier = parse_verifier_key(vkey.text.strip())
    note = get(served_node, "/log/checkpoint")
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(note.content, ORIGIN, [verifier], Limits())
    assert checkpoint.size == len(served_node.entries)
    assert checkpoint.root_hash == ref.mth(served_node.entries)


def test_entries_are_served_as_the_exact_leaf_bytes(served_node: ServedNode):
    for index in (0, 255, 256, 999):
        r = get(served_node, f"/log/entries/{index}")
        assert r.status_code == 200
        assert r.content == served_node.entries[index]


@pytest.mark.parametrize(
    ("index", "size"), [(0, 1), (5, 300), (299, 300), (256, 1000), (999, 1000)]
)
def test_inclusion_proofs_verify_at_past_sizes(served_node: ServedNode, index: int, size: int):
    r = get(served_node, f"/log/proof/inclusion?index={index}&size={size}")
    assert r.status_code == 200
    body = r.json()
    assert (body["index"], body["size"]) == (index, size)
    proof = [base64.b64decode(h) for h in body["hashes"]]
    root = ref.mth(served_node.entries[:size])
    verify_inclusion(leaf_hash(served_node.entries[index]), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"not this entry"), index, size, proof, root)


@pytest.mark.parametrize(("m", "n"), [(0, 10), (1, 2), (300, 600), (257, 1000), (1000, 1000)])
def test_consistency_proofs_verify(served_node: ServedNode, m: int, n: int):
    r = get(served_node, f"/log/proof/consistency?from={m}&to={n}")
    assert r.status_code == 200
    body = r.json()
    proof = [base64.b64decode(h) for h in body["hashes"]]
    entries = served_node.entries
    verify_consistency(m, n, proof, ref.mth(entries[:m]), ref.mth(entries[:n]))


def test_receipt_verifies_offline_and_carries_its_entry(served_node: ServedNode):
    verifier = parse_verifier_key(get(served_node, "/log/verifier-key").text.strip())
    r = get(served_node, "/log/receipt/123")
    assert r.status_code == 200
    receipt = parse_receipt(r.content, Limits())
    assert receipt.extra == served_node.entries[123]
    checkpoint = verify_receipt(
        receipt,
        entry=served_node.entries[123],
        origin=ORIGIN,
        verifiers=[verifier],
        limits=Limits(),
    )
    assert checkpoint.size > 123


def test_tiles_serve_hash_rows_and_entry_bundles(served_node: ServedNode):
    entries = served_node.entries
    full = get(served_node, "/log/tile/0/001")
    assert full.status_code == 200
    assert full.content == b"".join(leaf_hash(e) for e in entries[256:512])
    assert "immutable" in full.headers["cache-control"]
    partial = get(served_node, "/log/tile/0/003.p/232")  # 1000 = 3*256 + 232
    assert partial.content == b"".join(leaf_hash(e) for e in entries[768:1000])
    assert get(served_node, "/log/tile/0/003.p/5").content == partial.content[: 5 * 32]
    level1 = get(served_node, "/log/tile/1/000.p/3")
    assert level1.content == b"".join(ref.mth(entries[i * 256 : (i + 1) * 256]) for i in range(3))
    bundle = get(served_node, "/log/tile/entries/000")
    assert decode_entry_bundle(bundle.content) == entries[:256]
    assert (
        decode_entry_bundle(get(served_node, "/log/tile/entries/003.p/7").content)
        == entries[768:775]
    )


@pytest.mark.parametrize(
    ("path", "status", "parameter"),
    [
        ("/log/entries/1000", 400, "index"),
        ("/log/entries/-1", 400, "index"),
        ("/log/entries/01", 400, "index"),
        ("/log/entries/abc", 400, "index"),
        ("/log/entries/99999999999999999999999", 400, "index"),
        ("/log/proof/inclusion?index=5&size=5", 400, "index"),
        ("/log/proof/inclusion?index=0&size=1001", 400, "size"),
        ("/log/proof/inclusion?index=0", 400, "size"),
        ("/log/proof/inclusion?index=1e3&size=10", 400, "index"),
        ("/log/proof/inclusion?index=0&size=0x10", 400, "size"),
        ("/log/proof/consistency?from=11&to=10", 400, "from"),
        ("/log/proof/consistency?from=1&to=5000", 400, "to"),
        ("/log/proof/consistency?to=5", 400, "from"),
        ("/log/receipt/1000", 400, "index"),
        ("/log/receipt/%00", 400, "index"),
        ("/log/tile/0/x001", 400, "path"),
        ("/log/tile/0/004", 404, None),
        ("/log/tile/0/003", 404, None),
        ("/log/tile/0/003.p/233", 404, None),
        ("/log/tile/0/000.p/0", 400, "path"),
        ("/log/tile/0/000.p/256", 400, "path"),
        ("/log/tile/99/000", 400, "path"),
        ("/log/tile/entries/004", 404, None),
        ("/log/tile/" + "0/" * 100 + "000", 400, "path"),
    ],
)
def test_bad_parameters_get_a_4xx_naming_them(
    served_node: ServedNode, path: str, status: int, parameter: str | None
):
    r = get(served_node, path)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error.get("parameter") == parameter
    assert "Traceback" not in r.text


def test_unknown_routes_are_json_404s(served_node: ServedNode):
    r = get(served_node, "/log/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_home_page_shows_the_log(served_node: ServedNode):
    r = get(served_node, "/")
    assert r.status_code == 200
    assert ORIGIN in r.text
    assert "/log/checkpoint" in r.text
    assert "Latest blocks" in r.text
    assert '<a href="/ledger/blocks/0">0</a>' in r.text  # the genesis block
