"""The portal's in-browser crypto library (issue 8, ADR 0019) in real Chromium, against Python.

Every input comes from the Python side: key files written by ``medledger.adapters.keystore``,
transactions signed by ``envelope.sign_transaction``, the RFC 9162 vectors under
``tests/vectors/merkle``, and checkpoints and access-event receipts from a real node. The
modules are served over loopback (``crypto_server``) as the portal will serve them and run in
the page with ``page.evaluate``. Each check compares the browser's answer with Python's, and
every tampered input must fail in both, in the browser with the reason that names the step.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from medledger.adapters.keystore import KeyFile, write_key_file
from medledger.bootstrap import Node
from medledger.config import Limits
from medledger.core.audit.receipt import verify_event_receipt
from medledger.core.checkpoint import Checkpoint, parse_checkpoint_body, sign_checkpoint
from medledger.core.cosignature import Cosigner, cosign, format_cosigner_key
from medledger.core.identity.did_key import did_from_public_key, is_did_key
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.envelope import (
    TxLimits,
    decode_transaction,
    sign_transaction,
    verify_transaction_signature,
)
from medledger.core.ledger.tx import Transaction
from medledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from medledger.core.note import Signer, format_verifier_key, parse_verifier_key
from medledger.core.receipt import Receipt, format_receipt, parse_receipt
from medledger.errors import MedledgerError
from tests.e2e.browser.conftest import (
    OpenBrowser,
    Screenshot,
)
from tests.e2e.browser.crypto_node import NodeReceipts, build_node_receipts
from tests.e2e.browser.crypto_server import STATIC, serve_static

REPO = Path(__file__).parents[3]
VECTORS = REPO / "tests" / "vectors" / "merkle"
PASSPHRASE_NFD = "Cafe\u0301 au lait, s'il vous pla\u0131t"
PASSPHRASE_NFC = "Caf\u00e9 au lait, s'il vous pla\u0131t"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_static() as url:
        yield url


@pytest.fixture(scope="module")
def browser(module_browser: BrowserContext) -> BrowserContext:
    return module_browser


@pytest.fixture
def page(browser: BrowserContext, base_url: str) -> Iterator[Page]:
    page = browser.new_page()
    page.goto(f"{base_url}/__test__.html")
    yield page
    page.close()


@pytest.fixture(scope="module")
def node_receipts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeReceipts]:
    node: Node | None = None
    try:
        node, receipts = build_node_receipts(tmp_path_factory.mktemp("portal-crypto") / "home")
        yield receipts
    finally:
        if node is not None:
            node.close()


def run(page: Page, script: str, arg: Any = None) -> Any:
    """Evaluate an async function body with the library imported as ``lib.<module>``."""
    modules = [
        "encoding",
        "jcs",
        "did",
        "ed25519",
        "keyfile",
        "keyring",
        "tx",
        "merkle",
        "note",
        "receipt",
        "verify",
    ]
    imports = ", ".join(f"{m}: await import('/js/lib/{m}.js')" for m in modules)
    return page.evaluate(f"async (arg) => {{ const lib = {{ {imports} }}; {script} }}", arg)


# --- vendoring ------------------------------------------------------------------------------
def test_vendored_files_match_their_sums_and_the_locked_version() -> None:
    vendor = STATIC / "vendor"
    lines = (vendor / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    lock = json.loads((REPO / "portal-vendor" / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/@noble/hashes"]
    assert lines[0] == f"# @noble/hashes {locked['version']} {locked['integrity']}"
    sums: dict[str, str] = {}
    for line in lines[1:]:
        digest, name = line.split("  ", 1)
        sums[name] = digest
    on_disk = {str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file()}
    assert on_disk == set(sums) | {"SHA256SUMS"}, "a vendored file is missing from the sums"
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "noble-hashes/scrypt.js" in sums and "noble-hashes/LICENSE" in sums
    package = json.loads((REPO / "portal-vendor" / "package.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["@noble/hashes"] == locked["version"]  # an exact pin


# --- encodings, did:key, Ed25519 and JCS ---------------------------------------------------
def test_did_key_and_ed25519_vectors_and_jcs_edge_cases_agree_with_python(page: Page) -> None:
    vectors = json.loads((REPO / "tests/vectors/did_key/ed25519.json").read_text(encoding="utf-8"))
    did = vectors["vectors"][0]["did"]
    not_dids = [
        did[:-1],
        did + "a",
        did.replace("did:key:z", "did:key:f"),
        "did:key:z1111" + did[13:],
        did_from_public_key(bytes(32))[:-2],
    ]
    values = {
        "emoji vs private use": {"\ue000": 1, "\U0001f600": 2, "a": [True, None, -0]},
        "escapes": ['\u0000\u001f"\\/\u007f\u2028'],
        "big": 2**53 - 1,
    }
    out = run(
        page,
        """
        const { hexDecode, hexEncode } = lib.encoding;
        const dids = [];
        for (const v of arg.vectors) {
          const publicKey = await lib.ed25519.publicKeyOf(hexDecode(v.seed));
          const parsed = hexEncode(lib.did.publicKeyFromDid(v.did));
          dids.push([lib.did.didFromPublicKey(publicKey), parsed]);
        }
        const sigs = [];
        for (const v of arg.rfc8032) {
          const key = await lib.ed25519.importSeed(hexDecode(v.seed));
          const sig = await lib.ed25519.sign(key, hexDecode(v.message));
          const [publicKey, message] = [hexDecode(v.public_key), hexDecode(v.message)];
          const ok = await lib.ed25519.verify(publicKey, message, sig);
          const flipped = sig.slice();
          flipped[0] ^= 1;
          const bad = await lib.ed25519.verify(publicKey, message, flipped);
          sigs.push([hexEncode(sig), ok, bad]);
        }
        const notDids = arg.notDids.map(lib.did.isDidKey);
        const jcs = Object.fromEntries(Object.entries(arg.values).map(([k, v]) =>
          [k, lib.jcs.canonicalize(v)]));
        const refuses = (f) => { try { f(); return false; } catch { return true; } };
        const refused = {
          float: refuses(() => lib.jcs.canonicalize({ a: 1.5 })),
          unsafe: refuses(() => lib.jcs.canonicalize(2 ** 53)),
          surrogate: refuses(() => lib.jcs.canonicalize("\ud800")),
          dupKey: refuses(() => lib.jcs.parseJson('{"a":1,"a":2}')),
          floatText: refuses(() => lib.jcs.parseJson('{"a":1.0}')),
          exponent: refuses(() => lib.jcs.parseJson('1e3')),
          surrogateEscape: refuses(() => lib.jcs.parseJson('"\\ud800"')),
          trailing: refuses(() => lib.jcs.parseJson('{} x')),
          b64NonCanonical: refuses(() => lib.encoding.b64decode("AB==")),
          b64NoPad: refuses(() => lib.encoding.b64decode("AA")),
          hexUpper: refuses(() => lib.encoding.hexDecode("AB")),
        };
        const proto = lib.jcs.parseJson('{"__proto__":{"x":1}}');
        return { dids, sigs, notDids, jcs, refused, proto: [Object.keys(proto), proto.x ?? null] };
        """,
        {
            "vectors": vectors["vectors"],
            "rfc8032": vectors["rfc8032_signatures"]["vectors"],
            "notDids": not_dids,
            "values": values,
        },
    )
    assert out["dids"] == [[v["did"], v["public_key"]] for v in vectors["vectors"]]
    assert out["sigs"] == [
        [v["signature"], True, False] for v in vectors["rfc8032_signatures"]["vectors"]
    ]
    assert out["notDids"] == [is_did_key(d) for d in not_dids] == [False] * len(not_dids)
    assert out["jcs"] == {k: canonical(v).decode("utf-8") for k, v in values.items()}
    assert all(out["refused"].values()), out["refused"]
    assert out["proto"] == [["__proto__"], None]  # a key, never the object's prototype


# --- key files ------------------------------------------------------------------------------
def test_key_files_written_by_python_open_in_the_browser(page: Page, tmp_path: Path) -> None:
    key = ParticipantKey.from_seed(hashlib.sha256(b"portal key file").digest())
    path = tmp_path / "patient.key"
    write_key_file(path, key, PASSPHRASE_NFD, n=2**14)
    text = path.read_text(encoding="utf-8")
    document = json.loads(text)

    def variant(**changes: Any) -> str:
        return json.dumps({**document, **changes}, indent=2)

    ciphertext = bytearray(base64.b64decode(document["ciphertext"]))
    ciphertext[5] ^= 0x01
    other_did = ParticipantKey.from_seed(bytes(32)).did
    cases = {
        "right": (text, PASSPHRASE_NFC),  # typed precomposed, written decomposed: NFC opens it
        "wrong-passphrase": (text, PASSPHRASE_NFC + "!"),
        "flipped-ciphertext": (
            variant(ciphertext=base64.b64encode(ciphertext).decode()),
            PASSPHRASE_NFC,
        ),
        "edited-did": (variant(did=other_did), PASSPHRASE_NFC),  # the AAD binds the did
        "huge-n": (variant(kdf={**document["kdf"], "n": 2**21}), PASSPHRASE_NFC),
        "float-n": (text.replace('"n": 16384', '"n": 16384.0'), PASSPHRASE_NFC),
        "duplicate-key": (text.replace('"cipher":', '"cipher": "x", "cipher":'), PASSPHRASE_NFC),
    }
    results = run(
        page,
        """
        const out = {};
        for (const [name, [text, passphrase]] of Object.entries(arg)) {
          const began = performance.now();
          try {
            const { did, seed } = await lib.keyfile.openKeyFile(text, passphrase);
            const derived = lib.did.didFromPublicKey(await lib.ed25519.publicKeyOf(seed));
            out[name] = { ok: true, did, derived, ms: performance.now() - began };
          } catch (e) {
            out[name] = { ok: false, kind: e.kind, parameter: e.parameter, message: e.message,
                          ms: performance.now() - began };
          }
        }
        return out;
        """,
        cases,
    )
    assert results["right"]["ok"], results["right"]
    assert results["right"]["did"] == results["right"]["derived"] == key.did
    for name in ("wrong-passphrase", "flipped-ciphertext", "edited-did"):
        assert results[name]["ok"] is False
        assert results[name]["kind"] == "decryption"
        assert results[name]["message"] == "wrong passphrase or damaged key file"
    assert (results["huge-n"]["kind"], results["huge-n"]["parameter"]) == ("invalid", "kdf.n")
    assert results["huge-n"]["ms"] < 50, "bounds are checked before scrypt runs"
    # Python's loader takes 16384.0 as a float and refuses kdf.n; the browser's strict JSON
    # refuses the number itself. Both refuse before any scrypt work.
    assert results["float-n"]["kind"] == "invalid" and results["float-n"]["ms"] < 50
    assert results["duplicate-key"]["parameter"] == "key_file"
    with pytest.raises(MedledgerError):  # Python refuses the same edits
        KeyFile.from_bytes(cases["float-n"][0].encode())


# --- keyring --------------------------------------------------------------------------------
def test_the_keyring_keeps_only_a_non_extractable_key(
    open_browser: OpenBrowser, base_url: str
) -> None:
    page = open_browser().new_page()  # a profile of its own: the keyring is IndexedDB state
    page.goto(f"{base_url}/__test__.html")
    key = ParticipantKey.from_seed(hashlib.sha256(b"portal keyring").digest())
    vkey = format_verifier_key(Signer("medledger.local/log/test", bytes(range(32))).verifier())
    saved = run(
        page,
        """
        const seed = lib.encoding.hexDecode(arg.seed);
        const privateKey = await lib.ed25519.importSeed(seed);
        const refused = [];
        const who = { did: arg.did, name: "Pat", kind: "patient", logKey: arg.vkey };
        try {
          await lib.keyring.saveIdentity({ ...who,
            privateKey: await lib.ed25519.importSeed(seed, { extractable: true }) });
        } catch (e) { refused.push(e.message); }
        try {
          const other = await lib.ed25519.importSeed(new Uint8Array(32));
          await lib.keyring.saveIdentity({ ...who, privateKey: other });
        } catch (e) { refused.push(e.message); }
        await lib.keyring.saveIdentity({ ...who, privateKey });
        return refused;
        """,
        {"seed": key.export_seed().hex(), "did": key.did, "vkey": vkey},
    )
    assert len(saved) == 2 and "non-extractable" in saved[0] and "not the key of did" in saved[1]
    page.reload()  # a new document: only IndexedDB carries the identity over
    loaded = run(
        page,
        """
        const id = await lib.keyring.loadIdentity();
        const message = lib.encoding.utf8("sign in probe");
        const signature = await lib.ed25519.sign(id.privateKey, message);
        let exported = "refused";
        try {
          await crypto.subtle.exportKey("jwk", id.privateKey);
          exported = "exported!";
        } catch {}
        const fields = Object.keys(id).sort();
        await lib.keyring.forgetIdentity();
        return { did: id.did, logKey: id.logKey, extractable: id.privateKey.extractable,
                 exported, fields, signature: lib.encoding.hexEncode(signature),
                 after: await lib.keyring.loadIdentity() };
        """,
    )
    assert loaded["did"] == key.did and loaded["logKey"] == vkey
    assert loaded["extractable"] is False and loaded["exported"] == "refused"
    assert loaded["fields"] == ["did", "kind", "logKey", "name", "privateKey"]  # no seed
    assert bytes.fromhex(loaded["signature"]) == key.sign(b"sign in probe")
    assert loaded["after"] is None


# --- transactions ---------------------------------------------------------------------------
TRICKY_PAYLOAD: dict[str, Any] = {
    "patient": "did:key:z6MkgYkD2agkfnhVSJbSCq5KsEUePVo6HrXn1faGe4Mb5YnJ",
    "purpose": ["TREAT", "ETREAT"],
    "period": {"start": 1_700_000_000, "end": 9_007_199_254_740_991, "neg": -42},
    "note": 'quote " backslash \\ bell \u0007 tab \t newline \n del \u007f é ✓',
    "\ue000 private use": True,  # sorts after the emoji key by UTF-16 code units, not code points
    "\U0001f600 emoji": None,
    "a": [[], {}, [1, [2, [3]]]],
}


def test_envelopes_signed_in_the_browser_are_byte_identical_to_python(page: Page) -> None:
    key = ParticipantKey.from_seed(hashlib.sha256(b"portal tx").digest())
    tx = Transaction(
        network="medledger-dev",
        type="consent.grant",
        payload=TRICKY_PAYLOAD,
        sender=key.did,
        nonce="n0nce-portal_01",
        expires=1_900_000_000,
    )
    python_wire = sign_transaction(tx, key.sign).wire
    out = run(
        page,
        """
        const privateKey = await lib.ed25519.importSeed(lib.encoding.hexDecode(arg.seed));
        const identity = { did: arg.did, privateKey };
        const fields = { network: "medledger-dev", type: "consent.grant", payload: arg.payload,
                         expires: 1900000000 };
        const fixed = await lib.tx.signEnvelope(identity, { ...fields, nonce: "n0nce-portal_01" });
        const fresh = [await lib.tx.signEnvelope(identity, fields),
                       await lib.tx.signEnvelope(identity, fields)];
        const refused = {};
        for (const [name, change] of Object.entries({
          float: { payload: { x: 1.5 } }, network: { network: "Bad Net" },
          nonce: { nonce: "short" },
          deep: { payload: { a: [[[[[[[[[1]]]]]]]]] } },
        })) {
          try {
            await lib.tx.signEnvelope(identity, { ...fields, ...change });
            refused[name] = "signed!";
          }
          catch (e) { refused[name] = `${e.reason}:${e.parameter}`; }
        }
        const decoded = await lib.tx.decodeTransaction(arg.pythonWire);
        await lib.tx.verifyTransactionSignature(decoded);
        let spaced;
        try { await lib.tx.decodeTransaction(arg.pythonWire.replace('{"expires"', '{ "expires"')); }
        catch (e) { spaced = e.reason; }
        return { fixed, fresh, refused, txId: lib.encoding.hexEncode(decoded.txId), spaced };
        """,
        {
            "seed": key.export_seed().hex(),
            "did": key.did,
            "payload": TRICKY_PAYLOAD,
            "pythonWire": python_wire.decode("utf-8"),
        },
    )
    assert out["fixed"].encode("utf-8") == python_wire
    assert out["txId"] == sign_transaction(tx, key.sign).tx_id.hex()
    for wire in [out["fixed"], *out["fresh"]]:
        stx = decode_transaction(wire.encode("utf-8"), TxLimits())
        verify_transaction_signature(stx)
        assert stx.tx.sender == key.did
    nonces = [decode_transaction(w.encode(), TxLimits()).tx.nonce for w in out["fresh"]]
    assert nonces[0] != nonces[1] and all(re.fullmatch(r"[A-Za-z0-9_-]{22}", n) for n in nonces)
    assert out["refused"] == {
        "float": "schema_error:payload",
        "network": "schema_error:network",
        "nonce": "schema_error:nonce",
        "deep": "oversize:payload",
    }
    assert out["spaced"] == "non_canonical"


# --- Merkle ---------------------------------------------------------------------------------
def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _python_ok(check: Any) -> bool:
    try:
        check()
    except MedledgerError:
        return False
    return True


def test_merkle_vectors_agree_with_python(page: Page) -> None:
    inclusion = json.loads((VECTORS / "inclusion_proofs.json").read_text(encoding="utf-8"))
    consistency = json.loads((VECTORS / "consistency_proofs.json").read_text(encoding="utf-8"))
    roots = json.loads((VECTORS / "rfc9162_roots.json").read_text(encoding="utf-8"))
    inc = [c["vector"] for c in inclusion["cases"]]
    con = [c["vector"] for c in consistency["cases"]] + consistency["edge_cases"]["cases"]
    for v in inc + con:
        v["proof"] = v["proof"] or []
    expected_inc = [
        _python_ok(
            lambda v=v: verify_inclusion(
                _b64(v["leafHash"]),
                v["leafIdx"],
                v["treeSize"],
                [_b64(p) for p in v["proof"]],
                _b64(v["root"]),
            )
        )
        for v in inc
    ]
    expected_con = [
        _python_ok(
            lambda v=v: verify_consistency(
                v["size1"],
                v["size2"],
                [_b64(p) for p in v["proof"]],
                _b64(v["root1"]),
                _b64(v["root2"]),
            )
        )
        for v in con
    ]
    as_text = {"leafIdx", "treeSize", "size1", "size2"}  # uint64: BigInt in the page
    got = run(
        page,
        """
        const { b64decode, hexDecode, hexEncode } = lib.encoding;
        const m = lib.merkle;
        const inc = [], con = [];
        for (const v of arg.inc) {
          inc.push(await m.verifyInclusion(BigInt(v.leafIdx), BigInt(v.treeSize),
            b64decode(v.leafHash), v.proof.map(b64decode), b64decode(v.root)));
        }
        for (const v of arg.con) {
          con.push(await m.verifyConsistency(BigInt(v.size1), BigInt(v.size2),
            b64decode(v.root1), b64decode(v.root2), v.proof.map(b64decode)));
        }
        const leaves = [];
        for (const leaf of arg.leaves) leaves.push(hexEncode(await m.leafHash(hexDecode(leaf))));
        const [left, right] = arg.level0.slice(0, 2).map(hexDecode);
        const node = hexEncode(await m.nodeHash(left, right));
        return { inc, con, leaves, node };
        """,
        {
            "inc": [{k: str(x) if k in as_text else x for k, x in v.items()} for v in inc],
            "con": [{k: str(x) if k in as_text else x for k, x in v.items()} for v in con],
            "leaves": roots["leaves"],
            "level0": roots["node_hashes"]["levels"][0],
        },
    )
    assert got["inc"] == expected_inc
    assert got["con"] == expected_con
    # The oracle follows the vectors (stricter only for roots that are not 32 bytes), so the
    # browser agrees with transparency-dev's wantErr on every happy path and every mutation.
    assert expected_inc == [not v["wantErr"] for v in inc]
    well_formed = [len(_b64(v["root1"])) == len(_b64(v["root2"])) == 32 for v in con]
    assert [e for e, ok in zip(expected_con, well_formed, strict=True) if ok] == [
        not v["wantErr"] for v, ok in zip(con, well_formed, strict=True) if ok
    ]
    assert sum(expected_inc) >= 5 and sum(expected_con) >= 5 and not all(expected_con)
    assert got["leaves"] == roots["node_hashes"]["levels"][0]
    assert got["node"] == roots["node_hashes"]["levels"][1][0]


# --- checkpoints and receipts from a real node ----------------------------------------------
def _flip_hex(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def _edit(receipt: bytes, change: Any) -> bytes:
    obj = json.loads(receipt)
    change(obj)
    return canonical(obj)


def _with_anchor_line(receipt: bytes, edit: Any) -> bytes:
    """Rewrite the anchor's tlog-proof text line by line (index of line, line) -> line."""

    def change(obj: dict[str, Any]) -> None:
        lines = obj["anchor"].split("\n")
        obj["anchor"] = "\n".join(edit(i, line, lines) for i, line in enumerate(lines))

    return _edit(receipt, change)


def _flip_b64(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(raw).decode()


def _tampered(r: NodeReceipts) -> dict[str, tuple[bytes, str]]:
    """Tampered receipts and the reason the browser must give for each."""
    first, second = r.first_batch[0], r.second_batch[0]
    assert len(json.loads(first)["batch"]["proof"]) >= 1
    assert "\nindex 1\n" in json.loads(second)["anchor"]  # log index 1: a one-hash log proof

    def proof_hash(i: int, line: str, lines: list[str]) -> str:
        return _flip_b64(line, 0) if i == 3 else line  # header, extra, index, then the hash

    def checkpoint_sig(i: int, line: str, lines: list[str]) -> str:
        if not line.startswith("\u2014 "):
            return line
        name, sig = line.rsplit(" ", 1)
        return f"{name} {_flip_b64(sig, 10)}"

    def anchor_entry(i: int, line: str, lines: list[str]) -> str:
        if not line.startswith("extra "):
            return line
        entry = base64.b64decode(line[6:]).replace(b'"count":3', b'"count":4')
        return "extra " + base64.b64encode(entry).decode()

    def event_field(obj: dict[str, Any]) -> None:
        obj["event"]["purpose"] = "HPAYMT"

    def batch_proof(obj: dict[str, Any]) -> None:
        obj["batch"]["proof"][0] = _flip_hex(obj["batch"]["proof"][0])

    def other_anchor(obj: dict[str, Any]) -> None:
        obj["anchor"] = json.loads(second)["anchor"]

    return {
        "flipped batch proof hash": (_edit(first, batch_proof), "batch-root"),
        "altered event field": (_edit(first, event_field), "batch-root"),
        "flipped log proof hash": (_with_anchor_line(second, proof_hash), "log-inclusion"),
        "altered anchor entry": (_with_anchor_line(first, anchor_entry), "log-inclusion"),
        "wrong checkpoint signature": (
            _with_anchor_line(first, checkpoint_sig),
            "checkpoint-signature",
        ),
        "anchor from another batch": (_edit(first, other_anchor), "anchor-batch"),
        "not canonical": (first.replace(b'{"anchor"', b'{ "anchor"'), "malformed"),
        "batch index off by one": (
            _edit(first, lambda o: o["batch"].update(index=1)),
            "batch-root",
        ),
    }


def test_a_real_nodes_receipts_verify_in_the_browser(
    page: Page, node_receipts: NodeReceipts, screenshot: Screenshot
) -> None:
    r = node_receipts
    receipts = [x.decode("utf-8") for x in r.first_batch + r.second_batch]
    out = run(
        page,
        """
        const items = [];
        const results = await lib.verify.verifyAll(arg.receipts, arg.vkey, (i) => items.push(i));
        const checkpoint = await lib.note.verifyCheckpoint(arg.note, arg.vkey);
        const first = JSON.parse(arg.receipts[0]);
        const asObject = await lib.receipt.verifyEventReceipt(first, arg.vkey);
        const log = await lib.receipt.verifyLogReceipt(first.anchor, arg.vkey);
        document.querySelector("#status").textContent =
          `${results.filter((x) => x.ok).length} of ${results.length} receipts verified ` +
          `under checkpoint ${checkpoint.size}`;
        return {
          items,
          results: results.map((x) => ({ ok: x.ok, reason: x.reason, message: x.message ?? null,
            event: x.event ?? null, anchor: x.anchor ?? null, size: x.checkpoint?.size ?? null })),
          checkpoint: { origin: checkpoint.origin, size: checkpoint.size,
                        cosigners: checkpoint.cosigners,
                        root: lib.encoding.hexEncode(checkpoint.rootHash) },
          objectOk: asObject.event.event_id, logIndex: Number(log.index),
        };
        """,
        {"receipts": receipts, "vkey": r.vkey, "note": r.checkpoint_note.decode("utf-8")},
    )
    assert out["items"] == list(range(len(receipts)))
    for raw, result in zip(receipts, out["results"], strict=True):
        assert result["ok"], result
        event = json.loads(raw)["event"]
        assert result["event"] == event
        assert result["anchor"]["sender"] == event["node"]
    assert out["results"][2]["event"]["decision"] == "break-glass"
    verifier = parse_verifier_key(r.vkey)
    assert out["checkpoint"] == {
        "origin": verifier.name,
        "size": r.checkpoint_size,
        "cosigners": [],
        "root": r.checkpoint_root.hex(),
    }
    assert out["objectOk"] == json.loads(receipts[0])["event"]["event_id"]
    assert out["logIndex"] == 0
    screenshot(page, "receipts-verified")


def test_tampered_receipts_fail_in_the_browser_with_the_step_that_failed(
    page: Page, node_receipts: NodeReceipts
) -> None:
    r = node_receipts
    cases = _tampered(r)
    for name, (data, _) in cases.items():  # the Python verifier is the oracle: it refuses too
        with pytest.raises(MedledgerError):
            verify_event_receipt(data, parse_verifier_key(r.vkey))
            pytest.fail(f"Python accepted the {name} receipt")
    impostor = format_verifier_key(Signer(parse_verifier_key(r.vkey).name, bytes(32)).verifier())
    out = run(
        page,
        """
        const receipts = arg.cases.map(([, text]) => text);
        const tampered = await lib.verify.verifyAll(receipts, arg.vkey);
        const impostor = await lib.verify.verifyAll([arg.good], arg.impostor);
        let thrown;
        try { await lib.receipt.verifyEventReceipt(arg.cases[0][1], arg.vkey); }
        catch (e) {
          thrown = { isClass: e instanceof lib.receipt.VerificationFailed, reason: e.reason };
        }
        let otherLog;
        try {
          await lib.receipt.verifyEventReceipt(arg.good, arg.vkey, { origin: "other.example/log" });
        } catch (e) {
          otherLog = e.reason;
        }
        const rows = tampered.map((x) => [x.ok, x.reason, x.message]);
        return { tampered: rows, impostor: impostor[0], thrown, otherLog };
        """,
        {
            "cases": [[n, d.decode("utf-8")] for n, (d, _) in cases.items()],
            "vkey": r.vkey,
            "good": r.first_batch[0].decode("utf-8"),
            "impostor": impostor,
        },
    )
    got = {name: (ok, reason) for name, (ok, reason, _) in zip(cases, out["tampered"], strict=True)}
    assert got == {name: (False, reason) for name, (_, reason) in cases.items()}, out["tampered"]
    assert (out["impostor"]["ok"], out["impostor"]["reason"]) == (False, "checkpoint-signature")
    assert out["thrown"] == {"isClass": True, "reason": "batch-root"}
    assert out["otherLog"] == "checkpoint-origin"


def _forged_anchor(receipt: bytes) -> tuple[bytes, str]:
    """The receipt with its anchor re-logged by an impostor log whose own key signs a
    checkpoint over an anchor transaction with a broken signature: only step 5 can catch it."""
    obj = json.loads(receipt)
    entry = parse_receipt(obj["anchor"].encode(), Limits()).extra
    assert entry is not None
    sig = re.search(rb'"sig":"([A-Za-z0-9_-])', entry)
    assert sig is not None
    first = b"B" if sig.group(1) == b"A" else b"A"  # six signature bits, still canonical
    entry = entry[: sig.start(1)] + first + entry[sig.end(1) :]
    signer = Signer("impostor.example/log", hashlib.sha256(b"impostor").digest())
    note = sign_checkpoint(Checkpoint(signer.name, 1, leaf_hash(entry)), signer)
    obj["anchor"] = format_receipt(Receipt(0, (), note, extra=entry)).decode()
    return canonical(obj), format_verifier_key(signer.verifier())


def test_an_anchor_whose_transaction_signature_fails_is_refused(
    page: Page, node_receipts: NodeReceipts
) -> None:
    forged, vkey = _forged_anchor(node_receipts.first_batch[0])
    with pytest.raises(MedledgerError):
        verify_event_receipt(forged, parse_verifier_key(vkey))
    out = run(
        page,
        "return (await lib.verify.verifyAll([arg.forged], arg.vkey))[0];",
        {"forged": forged.decode(), "vkey": vkey},
    )
    assert (out["ok"], out["reason"]) == (False, "anchor-signature"), out


def test_cosigned_and_consistent_checkpoints_in_the_browser(
    page: Page, node_receipts: NodeReceipts
) -> None:
    r = node_receipts
    text = r.checkpoint_note[: r.checkpoint_note.rindex(b"\n\n") + 1]
    witness = Cosigner("witness.example/w1", hashlib.sha256(b"witness").digest())
    line = cosign(parse_checkpoint_body(text, Limits()), witness, 1_800_000_000)
    cosigned = r.checkpoint_note + line
    raw = bytearray(base64.b64decode(line.split(b" ")[-1]))
    raw[20] ^= 0x01
    bad_cosignature = r.checkpoint_note + line.rsplit(b" ", 1)[0] + b" "
    bad_cosignature += base64.b64encode(raw) + b"\n"
    out = run(
        page,
        """
        const { verifyCheckpoint } = lib.note;
        const asked = { cosigners: [arg.witness] };
        const witnessed = await verifyCheckpoint(arg.cosigned, arg.vkey, asked);
        const unasked = await verifyCheckpoint(arg.cosigned, arg.vkey);
        let bad;
        try { await verifyCheckpoint(arg.bad, arg.vkey, asked); }
        catch (e) { bad = e.reason; }
        const earlier = await verifyCheckpoint(arg.earlier, arg.vkey);
        const proof = arg.proof.map(lib.encoding.hexDecode);
        const consistent = await lib.merkle.verifyConsistency(earlier.size, witnessed.size,
          earlier.rootHash, witnessed.rootHash, proof);
        const swapped = await lib.merkle.verifyConsistency(earlier.size, witnessed.size,
          witnessed.rootHash, earlier.rootHash, proof);
        return { witnessed: witnessed.cosigners, unasked: unasked.cosigners, bad, consistent,
                 swapped, sizes: [earlier.size, witnessed.size] };
        """,
        {
            "cosigned": cosigned.decode(),
            "bad": bad_cosignature.decode(),
            "vkey": r.vkey,
            "witness": format_cosigner_key(witness.verifier()),
            "earlier": r.earlier_note.decode(),
            "proof": [h.hex() for h in r.consistency_proof],
        },
    )
    assert out["witnessed"] == ["witness.example/w1"] and out["unasked"] == []
    assert out["bad"] == "signature"
    assert out["sizes"][0] < out["sizes"][1] == r.checkpoint_size
    assert (out["consistent"], out["swapped"]) == (True, False)
