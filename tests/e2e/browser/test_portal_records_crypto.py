"""Records decrypted in the browser through key release (issue 8, ADR 0012, ADR 0019).

Real Chromium runs the portal's ``hpke.js``, ``cid.js`` and ``records.js`` as the portal serves
them. First against Python's answers: the RFC 9180 vectors under ``tests/vectors/hpke``, and
``WrapInfo`` / ``RecordAad`` / commitment / CID bytes and a ``wrap_key`` made by Python. Then
against a real node served over HTTP (``records_node``): a record read in the browser equals
what the node's ``records.read`` returns; a requester without consent gets ``denied`` and the
node holds the denial as an access event; and answers tampered in transit (``page.route``)
fail at the step that names them. The version's anchor is proven by the log under the pinned
verifier key: a rewritten ledger view, a tampered or substituted log receipt, another pinned
key, and a node forging its ledger view, blob, wrap and salt together all fail ``anchor``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route

from medledger.core.access.gate import AccessRequest
from medledger.core.cid import cid_for
from medledger.core.crypto.key_wrap import WrapInfo, wrap_key
from medledger.core.crypto.record_cipher import RecordAad, salted_commitment, seal_record
from medledger.core.ledger.canonical import canonical_document
from medledger.core.note import Signer, format_verifier_key
from tests.e2e.browser.crypto_server import TEST_PAGE, serve_static
from tests.e2e.browser.records_node import (
    OBSERVATIONS,
    OTHER_RECORD_ID,
    RECORD_ID,
    RecordsNode,
    serve_records_node,
)

REPO = Path(__file__).parents[3]
HPKE_VECTORS = REPO / "tests" / "vectors" / "hpke" / "rfc9180_x25519_sha256_aes256gcm.json"
MODULES = ("encoding", "ed25519", "hpke", "cid", "records")


@pytest.fixture(scope="module")
def browser(module_browser: BrowserContext) -> BrowserContext:
    return module_browser


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    with serve_static() as url:
        yield url


@pytest.fixture(scope="module")
def records_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordsNode]:
    with serve_records_node(tmp_path_factory.mktemp("records-browser") / "home") as served:
        yield served


@pytest.fixture
def static_page(browser: BrowserContext, static_url: str) -> Iterator[Page]:
    page = browser.new_page()
    page.goto(f"{static_url}/__test__.html")
    yield page
    page.close()


@pytest.fixture
def node_page(browser: BrowserContext, records_node: RecordsNode) -> Iterator[Page]:
    """A blank page on the node's origin (so the library's fetches are same-origin, as in the
    portal); the modules are the node's own ``/portal/static`` files."""
    page = browser.new_page()
    test_url = records_node.url + "__test__.html"
    page.route(test_url, lambda route: route.fulfill(body=TEST_PAGE, content_type="text/html"))
    page.goto(test_url)
    yield page
    page.close()


def run(page: Page, script: str, arg: Any = None, *, prefix: str = "/js/lib") -> Any:
    """Evaluate an async function body with the library imported as ``lib.<module>``."""
    imports = ", ".join(f"{m}: await import('{prefix}/{m}.js')" for m in MODULES)
    return page.evaluate(f"async (arg) => {{ const lib = {{ {imports} }}; {script} }}", arg)


# --- HPKE: RFC 9180 known answers -----------------------------------------------------------
def test_rfc9180_vectors_open_in_the_browser_and_tampered_inputs_fail(static_page: Page) -> None:
    vectors = json.loads(HPKE_VECTORS.read_text(encoding="utf-8"))["vectors"]
    assert {v["aead_id"] for v in vectors} == {1, 2}  # A.1.1 (AES-128-GCM) and our suite
    out = run(
        static_page,
        """
        const { hexDecode: h, hexEncode } = lib.encoding;
        const results = [];
        for (const v of arg) {
          const recipient = await lib.hpke.importPrivateKey(h(v.skRm));
          const first = v.encryptions.find((e) => e.seq === 0);
          const base = { enc: h(v.enc), info: h(v.info), aad: h(first.aad),
                         ciphertext: h(first.ct), aeadId: v.aead_id };
          const pt = hexEncode(await lib.hpke.open(recipient, base));
          const flip = (bytes, i) => { const c = bytes.slice(); c[i] ^= 1; return c; };
          const lowOrder = new Uint8Array(32);  // the point 0: an all-zero X25519 output
          const tampered = {
            enc: { ...base, enc: flip(base.enc, 5) },
            lowOrderEnc: { ...base, enc: lowOrder },
            ciphertext: { ...base, ciphertext: flip(base.ciphertext, 3) },
            tag: { ...base, ciphertext: flip(base.ciphertext, base.ciphertext.length - 1) },
            truncated: { ...base, ciphertext: base.ciphertext.subarray(0, 15) },
            info: { ...base, info: flip(base.info, 0) },
            aad: { ...base, aad: flip(base.aad, 0) },
            otherSeq: { ...base, aad: h(v.encryptions[1].aad), ciphertext: h(v.encryptions[1].ct) },
            otherSuite: { ...base, aeadId: v.aead_id === 1 ? 2 : 1 },
          };
          const refused = {};
          for (const [name, args] of Object.entries(tampered)) {
            try { await lib.hpke.open(recipient, args); refused[name] = "opened!"; }
            catch (e) { refused[name] = `${e.name}: ${e.message}`; }
          }
          results.push({ publicKey: hexEncode(recipient.publicKey), pt,
                         extractable: recipient.privateKey.extractable, refused });
        }
        return results;
        """,
        vectors,
    )
    for vector, result in zip(vectors, out, strict=True):
        first = next(e for e in vector["encryptions"] if e["seq"] == 0)
        assert result["publicKey"] == vector["pkRm"]
        assert result["pt"] == first["pt"]
        assert result["extractable"] is False
        assert set(result["refused"].values()) == {"HpkeError: decryption failed"}, result


# --- the byte formats Python binds, and a wrap Python made ------------------------------------
def test_wrap_info_aad_commitment_and_cid_agree_with_python_and_a_python_wrap_opens(
    static_page: Page,
) -> None:
    patient = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    # a grant with characters JCS escapes
    info = WrapInfo(
        "obs-1", 3, "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH", 'c-"q\\/'
    )
    aad = RecordAad("obs-1", 3, "Observation", patient)
    salt, document = bytes(range(32)), canonical_document(OBSERVATIONS[0])
    blob = seal_record(document, bytes([7]) * 32, bytes(12), aad)
    session = run(
        static_page,
        """
        globalThis.session = await lib.hpke.generateKeyPair();
        let exported = "refused";
        try { await crypto.subtle.exportKey("pkcs8", session.privateKey); exported = "exported!"; }
        catch {}
        return { publicKey: lib.encoding.hexEncode(session.publicKey), exported,
                 extractable: session.privateKey.extractable };
        """,
    )
    assert (session["exported"], session["extractable"]) == ("refused", False)
    assert len(bytes.fromhex(session["publicKey"])) == 32
    wrap = wrap_key(bytes([7]) * 32, bytes.fromhex(session["publicKey"]), info)
    other = wrap_key(
        bytes([7]) * 32,
        bytes.fromhex(session["publicKey"]),
        WrapInfo("obs-1", 4, info.recipient, info.grant),
    )
    out = run(
        static_page,
        """
        const { hexDecode: h, hexEncode } = lib.encoding;
        const info = { recordId: "obs-1", version: 3, recipient: arg.recipient, grant: arg.grant };
        const aad = { patient: arg.patient, recordId: "obs-1", resourceType: "Observation",
                      version: 3 };
        const open = async (wrap) => {
          const w = h(wrap);
          const infoBytes = lib.records.wrapInfoBytes(info);
          return lib.hpke.openKey(globalThis.session,
            { enc: w.subarray(1, 33), info: infoBytes, ciphertext: w.subarray(33) });
        };
        const key = await open(arg.wrap);
        const blob = h(arg.blob);
        const additionalData = lib.records.recordAadBytes(aad);
        const plain = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: blob.subarray(1, 13), additionalData }, key, blob.subarray(13));
        let otherVersion;
        try { await open(arg.other); otherVersion = "opened!"; }
        catch (e) { otherVersion = e.message; }
        const refusedCids = [];
        for (const c of arg.badCids) {
          try { lib.cid.parseCid(c); refusedCids.push(false); }
          catch (e) { refusedCids.push(e.name); }
        }
        return {
          info: hexEncode(lib.records.wrapInfoBytes(info)),
          aad: hexEncode(lib.records.recordAadBytes(aad)),
          commitment: hexEncode(await lib.records.saltedCommitment(h(arg.salt), h(arg.document))),
          cid: await lib.cid.cidFor(blob),
          digest: hexEncode(lib.cid.parseCid(arg.cid)),
          plain: hexEncode(new Uint8Array(plain)),
          keyExtractable: key.extractable,
          otherVersion, refusedCids,
        };
        """,
        {
            "recipient": info.recipient,
            "grant": info.grant,
            "patient": patient,
            "wrap": wrap.hex(),
            "other": other.hex(),
            "blob": blob.hex(),
            "salt": salt.hex(),
            "document": document.hex(),
            "cid": cid_for(blob),
            "badCids": [
                cid_for(blob)[:-1],
                cid_for(blob).upper(),
                "B" + cid_for(blob)[1:],
                cid_for(blob)[:-1] + "b",  # a non-canonical last character (cid.py step 4)
                "bafyrei" + cid_for(blob)[7:],  # dag-cbor, not raw
            ],
        },
    )
    assert out["info"] == info.to_bytes().hex()
    assert out["aad"] == aad.to_bytes().hex()
    assert out["commitment"] == salted_commitment(salt, document).hex()
    assert out["cid"] == cid_for(blob)
    assert out["digest"] == hashlib.sha256(blob).hexdigest()
    assert bytes.fromhex(out["plain"]) == document
    assert out["keyExtractable"] is False  # the data key never exists as bytes in the page
    assert out["otherVersion"] == "decryption failed"
    assert out["refusedCids"] == ["CidError"] * 5


# --- a real node's records, read in the browser ---------------------------------------------
def read_in_browser(page: Page, node: RecordsNode, who: str, **options: Any) -> dict[str, Any]:
    """``readRecordInBrowser`` as ``who`` (their seed imported as a non-extractable key, as the
    keyring holds it, beside the log key pinned at sign-in: ``logKey`` overrides it); the
    result, or ``{"failed": step, "message": ...}``."""
    arg = {
        "seed": node.keys[who].export_seed().hex(),
        "did": node.did(who),
        "logKey": options.pop("logKey", node.log_key),
        "network": node.network,
        "patient": node.did("patient-1"),
        "recordId": RECORD_ID,
        "options": options,
    }
    result: dict[str, Any] = run(
        page,
        """
        const privateKey = await lib.ed25519.importSeed(lib.encoding.hexDecode(arg.seed));
        try {
          return await lib.records.readRecordInBrowser({
            identity: { did: arg.did, privateKey, logKey: arg.logKey }, network: arg.network,
            patient: arg.patient, recordId: arg.recordId, ...arg.options });
        } catch (e) {
          if (!(e instanceof lib.records.RecordCheckFailed)) throw e;
          return { failed: e.step, reason: e.reason, message: e.message };
        }
        """,
        arg,
        prefix="/portal/static/js/lib",
    )
    return result


def python_read(node: RecordsNode, who: str, version: int | None) -> dict[str, Any]:
    request = AccessRequest(
        requester=node.did(who),
        patient=node.did("patient-1"),
        record_id=RECORD_ID,
        action="read",
        purpose="TREAT",
    )
    read = node.node.records.read(request, version, int(time.time() * 1000))
    return {
        "content": json.loads(read.content),
        "resourceType": read.resource_type,
        "version": read.version,
        "cid": read.cid,
    }


def ledger_record(node: RecordsNode, record_id: str = RECORD_ID) -> dict[str, Any]:
    """``GET /ledger/records/{patient}/{record_id}`` as the node serves it."""
    url = f"{node.url}ledger/records/{node.did('patient-1')}/{record_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def anchor_index(node: RecordsNode, version: int, record_id: str = RECORD_ID) -> int:
    """The log index the node names for a version's anchor (checked in the honest read)."""
    anchors = ledger_record(node, record_id)["anchors"]
    return int(next(a["log_index"] for a in anchors if a["version"] == version))


def test_a_record_read_in_the_browser_is_what_the_node_reads(
    node_page: Page, records_node: RecordsNode
) -> None:
    console: list[str] = []
    node_page.on("console", lambda message: console.append(message.text))
    checks = {"anchor": True, "cid": True, "commitment": True, "tag": True}
    for who, version, grant in (
        ("dr-house", None, "consent"),  # a practitioner under the patient's consent
        ("dr-house", 1, "consent"),
        ("patient-1", 2, "patient"),  # the patient, on their own record
    ):
        got = read_in_browser(node_page, records_node, who, version=version)
        expected = python_read(records_node, who, version)
        assert "failed" not in got, got
        assert {k: got[k] for k in expected} == expected
        assert got["content"] == OBSERVATIONS[expected["version"] - 1]
        # Version 1 asked for by number is proven, but not the latest: the head is version 2.
        assert got["checks"] == {**checks, "latest": expected["version"] == 2}
        assert got["latest"]["headVersion"] == 2
        assert got["grant"] == grant  # the basis bound into the wrap (WrapInfo.grant)
        # The proven anchor is the log entry of this version's record.anchor, read in Python.
        anchor = got["anchor"]
        assert anchor["logIndex"] == anchor_index(records_node, expected["version"])
        assert anchor["logIndex"] < anchor["checkpointSize"] <= records_node.node.log.size()
        entry = json.loads(records_node.node.log.entry(anchor["logIndex"]))
        assert (entry["kind"], entry["ok"], entry["tx_id"]) == ("tx", True, anchor["txId"])
        assert entry["tx"]["type"] == "record.anchor"
        assert entry["tx"]["sender"] == anchor["sender"] == records_node.did("hospital")
        payload = entry["tx"]["payload"]
        assert (payload["record_id"], payload["version"]) == (RECORD_ID, expected["version"])
    assert console == []  # nothing logged: no content, no key material


def test_a_requester_without_consent_is_denied_and_the_denial_is_an_access_event(
    node_page: Page, records_node: RecordsNode
) -> None:
    patient, clinic = records_node.did("patient-1"), records_node.did("dr-clinic")
    since_ms = int(time.time() * 1000) - 1
    got = read_in_browser(node_page, records_node, "dr-clinic")
    assert got["failed"] == got["reason"] == "denied"
    assert "access denied" in got["message"] and "Fièvre" not in got["message"]
    deadline = time.monotonic() + 15
    # The event is queued at the decision and listed once its batch is stored: poll for it.
    while not (
        events := records_node.node.audit.list_events(patient, actor=clinic, since_ms=since_ms)
    ):
        assert time.monotonic() < deadline, "the denial was never stored as an access event"
        time.sleep(0.05)
    assert [(e.action, e.decision, e.record_id) for e in events] == [
        ("key-release", "deny", RECORD_ID)
    ]


def test_break_glass_in_the_browser_is_granted_as_break_glass_and_recorded_with_its_reason(
    node_page: Page, records_node: RecordsNode
) -> None:
    patient, er = records_node.did("patient-1"), records_node.did("dr-er")
    since_ms = int(time.time() * 1000) - 1
    reason = "Unconscious patient in the ER; allergies needed now"
    got = read_in_browser(node_page, records_node, "dr-er", purpose="ETREAT", justification=reason)
    assert got.get("grant") == "break-glass", got  # the wrap is bound to the break-glass basis
    assert got["content"] == OBSERVATIONS[-1]
    events = records_node.node.audit.list_events(patient, actor=er, since_ms=since_ms)
    assert [(e.decision, e.purpose, e.justification) for e in events] == [
        ("break-glass", "ETREAT", reason)
    ]


def test_a_failed_release_is_release_not_a_denial(
    node_page: Page, records_node: RecordsNode
) -> None:
    missing = read_in_browser(node_page, records_node, "patient-1", recordId="no-such-record")
    assert missing["failed"] == "release" and "404" not in missing["message"]
    assert "no such record" in missing["message"]  # the node's own (PHI-free) reason


# --- tampered in transit ----------------------------------------------------------------------
Tamper = Callable[[Route], None]


def rewrite_json(edit: Callable[[dict[str, Any]], None]) -> Tamper:
    def handler(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        edit(body)
        route.fulfill(response=response, body=json.dumps(body))

    return handler


def flip_blob(route: Route) -> None:
    response = route.fetch()
    blob = bytearray(response.body())
    blob[len(blob) // 2] ^= 0x01
    route.fulfill(response=response, body=bytes(blob))


def flip_wrap(body: dict[str, Any]) -> None:
    wrap = bytearray(base64.b64decode(body["wrap"]))
    wrap[40] ^= 0x01  # inside the sealed data key
    body["wrap"] = base64.b64encode(bytes(wrap)).decode()


def swap_commitment(body: dict[str, Any]) -> None:
    first, second = body["versions"]
    first["commitment"], second["commitment"] = second["commitment"], first["commitment"]


def swap_cid(body: dict[str, Any]) -> None:
    first, second = body["versions"]
    first["cid"], second["cid"] = second["cid"], first["cid"]


def flip_proof_hash(route: Route) -> None:
    """The receipt's first inclusion-proof hash with one bit flipped."""
    response = route.fetch()
    head, _, note = response.text().partition("\n\n")
    lines = head.split("\n")  # header, extra, index, proof hashes
    assert len(lines) > 3, "the anchor's proof has no hash to flip"
    digest = bytearray(base64.b64decode(lines[3]))
    digest[0] ^= 0x01
    lines[3] = base64.b64encode(bytes(digest)).decode()
    route.fulfill(response=response, body="\n".join(lines) + "\n\n" + note)


def flip_checkpoint_signature(route: Route) -> None:
    """The last byte of the log key's signature on the receipt's checkpoint flipped."""
    response = route.fetch()
    lines = response.text().split("\n")
    assert lines[-1] == "" and lines[-2].startswith("\u2014 ")
    dash, name, signature = lines[-2].split(" ")
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 0x01
    lines[-2] = f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}"
    route.fulfill(response=response, body="\n".join(lines))


def rewrite_entry(route: Route) -> None:
    """The receipt's own entry (extra) rewritten to anchor another commitment."""
    response = route.fetch()
    lines = response.text().split("\n")
    assert lines[1].startswith("extra ")
    entry = json.loads(base64.b64decode(lines[1][6:]))
    entry["tx"]["payload"]["commitment"] = "00" * 32
    forged = json.dumps(entry, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    lines[1] = "extra " + base64.b64encode(forged.encode()).decode()
    route.fulfill(response=response, body="\n".join(lines))


def receipt_of(version: int, record_id: str = RECORD_ID) -> Callable[[RecordsNode], Tamper]:
    """Serve, in place of the asked receipt, the (genuine) receipt of another anchor."""

    def make(node: RecordsNode) -> Tamper:
        other = f"{node.url}log/receipt/{anchor_index(node, version, record_id)}"
        return lambda route: route.fulfill(response=route.fetch(url=other))

    return make


def point_anchor_at(version: int, record_id: str = RECORD_ID) -> Callable[[RecordsNode], Tamper]:
    """The ledger view naming another anchor's log index for version 2."""

    def make(node: RecordsNode) -> Tamper:
        index = anchor_index(node, version, record_id)
        return rewrite_json(lambda body: body["anchors"][1].update(log_index=index))

    return make


def point_at_the_refused_anchor(node: RecordsNode) -> Tamper:
    """The ledger view naming, for version 2, the custodian's refused anchor and its values."""

    def edit(body: dict[str, Any]) -> None:
        entry = json.loads(node.node.log.entry(node.refused_anchor_index))
        payload = entry["tx"]["payload"]
        body["versions"][1].update(commitment=payload["commitment"], cid=payload["cid"])
        body["anchors"][1].update(log_index=node.refused_anchor_index, tx_id=entry["tx_id"])

    return rewrite_json(edit)


def claim_author(name: str) -> Callable[[RecordsNode], Tamper]:
    """The ledger view naming another custodian for version 2 (an author of the same org)."""

    def make(node: RecordsNode) -> Tamper:
        return rewrite_json(lambda body: body["versions"][1].update(author=node.did(name)))

    return make


@pytest.mark.parametrize(
    ("url", "tamper", "step"),
    [
        ("**/blobs/*", flip_blob, "cid"),
        ("**/records/key-release", rewrite_json(flip_wrap), "wrap"),
        # the node's ledger view is checked against the anchor the log proves
        ("**/ledger/records/**", rewrite_json(swap_commitment), "anchor"),
        # and more that a node (or a proxy) could try:
        ("**/ledger/records/**", rewrite_json(swap_cid), "anchor"),
        ("**/ledger/records/**", rewrite_json(lambda b: b.update(anchors=[])), "anchor"),
        ("**/log/receipt/*", flip_proof_hash, "anchor"),
        ("**/log/receipt/*", flip_checkpoint_signature, "anchor"),
        ("**/log/receipt/*", rewrite_entry, "anchor"),
        ("**/log/receipt/*", lambda route: route.abort(), "anchor"),
        ("**/records/key-release", rewrite_json(lambda b: b.update(grant="break-glass")), "wrap"),
        ("**/records/key-release", rewrite_json(lambda b: b.update(salt="00" * 32)), "commitment"),
        ("**/records/key-release", rewrite_json(lambda b: b.update(version=1)), "release"),
        ("**/blobs/*", lambda route: route.abort(), "cid"),
    ],
    ids=[
        "blob-flipped",
        "wrap-flipped",
        "commitment-swapped",
        "cid-swapped",
        "view-names-no-anchor",
        "receipt-proof-hash-flipped",
        "receipt-signature-flipped",
        "receipt-entry-rewritten",
        "receipt-withheld",
        "grant-relabelled",
        "salt-replaced",
        "other-version-released",
        "blob-withheld",
    ],
)
def test_answers_tampered_in_transit_fail_at_their_step(
    node_page: Page, records_node: RecordsNode, url: str, tamper: Tamper, step: str
) -> None:
    fails_then_reads(node_page, records_node, url, tamper, step)


@pytest.mark.parametrize(
    ("url", "make", "message"),
    [
        ("**/ledger/records/**", point_anchor_at(1), "for another record or version"),
        ("**/ledger/records/**", point_anchor_at(1, OTHER_RECORD_ID), "for another record"),
        ("**/ledger/records/**", claim_author("dr-house"), "not sent by the record's custodian"),
        ("**/ledger/records/**", point_at_the_refused_anchor, "failed: it anchored nothing"),
        ("**/log/receipt/*", receipt_of(1), "for another log index"),
        ("**/log/receipt/*", receipt_of(1, OTHER_RECORD_ID), "for another log index"),
    ],
    ids=[
        "view-points-at-another-version",
        "view-points-at-another-record",
        "view-names-another-custodian",
        "view-points-at-a-refused-anchor",
        "receipt-of-another-version",
        "receipt-of-another-record",
    ],
)
def test_a_genuine_anchor_of_something_else_fails_anchor(
    node_page: Page,
    records_node: RecordsNode,
    url: str,
    make: Callable[[RecordsNode], Tamper],
    message: str,
) -> None:
    """Every receipt here verifies under the pinned key: what it proves is not this version."""
    got = fails_then_reads(node_page, records_node, url, make(records_node), "anchor")
    assert message in got["message"], got


def fails_then_reads(
    node: Page, served: RecordsNode, url: str, tamper: Tamper, step: str
) -> dict[str, Any]:
    """Version 2 read through ``tamper`` fails at ``step`` (returned), then reads once it is
    gone."""
    node.route(url, tamper)
    got = read_in_browser(node, served, "dr-house", version=2)
    assert (got.get("failed"), got.get("reason")) == (step, step), got
    assert "content" not in got and "36.6" not in got["message"]  # no record content
    node.unroute(url)
    assert "failed" not in read_in_browser(node, served, "dr-house", version=2)
    return got


def test_another_pinned_log_key_fails_anchor(node_page: Page, records_node: RecordsNode) -> None:
    """A node whose log is signed by another key than the one pinned at sign-in (same name)."""
    other = Signer(records_node.node.log.verifier.name, os.urandom(32)).verifier()
    got = read_in_browser(
        node_page, records_node, "dr-house", version=2, logKey=format_verifier_key(other)
    )
    assert (got.get("failed"), got.get("reason")) == ("anchor", "anchor"), got
    assert "checkpoint-signature" in got["message"]


# --- a node that forges everything it serves ---------------------------------------------------
FORGED = {**OBSERVATIONS[1], "valueQuantity": {"value": 39.9, "unit": "Cel"}}


def forge_version_2(node: RecordsNode) -> dict[str, Tamper]:
    """What a node needs to show FORGED as version 2, consistently: a blob sealed under its own
    data key and the record's AAD, a salt and commitment, and a key release whose wrap opens
    for the browser's session key (read from the signed request). Returns the route handlers:
    the release, the blob, and the ledger view rewritten to match, by URL pattern."""
    document = canonical_document(FORGED)
    data_key, salt = os.urandom(32), os.urandom(32)
    aad = RecordAad(RECORD_ID, 2, "Observation", node.did("patient-1"))
    blob = seal_record(document, data_key, os.urandom(12), aad)
    cid, commitment = cid_for(blob), salted_commitment(salt, document).hex()

    def release(route: Route) -> None:
        request = json.loads(route.request.post_data or "")
        response = route.fetch()  # the node really decides (and records the access event)
        body = response.json()
        info = WrapInfo(RECORD_ID, 2, request["sender"], body["grant"])
        wrap = wrap_key(data_key, bytes.fromhex(request["payload"]["session_key"]), info)
        body.update(salt=salt.hex(), cid=cid, wrap=base64.b64encode(wrap).decode())
        route.fulfill(response=response, body=json.dumps(body))

    def view(body: dict[str, Any]) -> None:
        body["versions"][1].update(commitment=commitment, cid=cid)

    def blob_of(route: Route) -> None:
        route.fulfill(body=blob, content_type="application/octet-stream")

    return {
        "**/records/key-release": release,
        "**/blobs/*": blob_of,
        "**/ledger/records/**": rewrite_json(view),
    }


@pytest.mark.parametrize(
    ("forge_view", "step", "message"),
    [
        (True, "anchor", "the node's ledger view differs from the anchor the log proves"),
        (False, "cid", "the node released a CID the ledger does not anchor for this version"),
    ],
    ids=["view-forged-too", "view-left-honest"],
)
def test_a_node_forging_blob_wrap_and_salt_together_is_caught_by_the_proven_anchor(
    node_page: Page, records_node: RecordsNode, forge_view: bool, step: str, message: str
) -> None:
    """ADR 0019 addendum: before the anchor was proven, this forgery read as a valid record."""
    handlers = forge_version_2(records_node)
    if not forge_view:
        del handlers["**/ledger/records/**"]
    for url, handler in handlers.items():
        node_page.route(url, handler)
    got = read_in_browser(node_page, records_node, "dr-house", version=2)
    assert (got.get("failed"), got.get("reason")) == (step, step), got
    assert message in got["message"] and "39.9" not in got["message"]
    for url in handlers:
        node_page.unroute(url)
