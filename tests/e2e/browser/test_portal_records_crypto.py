"""Records decrypted in the browser through key release (issue 8, ADR 0012, ADR 0019).

Real Chromium runs the portal's ``hpke.js``, ``cid.js`` and ``records.js`` as the portal serves
them. First against Python's answers: the RFC 9180 vectors under ``tests/vectors/hpke``, and
``WrapInfo`` / ``RecordAad`` / commitment / CID bytes and a ``wrap_key`` made by Python. Then
against a real node served over HTTP (``records_node``): a record read in the browser equals
what the node's ``records.read`` returns; a requester without consent gets ``denied`` and the
node holds the denial as an access event; and answers tampered in transit (``page.route``)
fail at the step that names them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
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
from tests.e2e.browser.crypto_server import TEST_PAGE, serve_static
from tests.e2e.browser.records_node import (
    OBSERVATIONS,
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
    keyring holds it); the result, or ``{"failed": step, "message": ...}``."""
    arg = {
        "seed": node.keys[who].export_seed().hex(),
        "did": node.did(who),
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
            identity: { did: arg.did, privateKey }, network: arg.network,
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


def test_a_record_read_in_the_browser_is_what_the_node_reads(
    node_page: Page, records_node: RecordsNode
) -> None:
    console: list[str] = []
    node_page.on("console", lambda message: console.append(message.text))
    checks = {"cid": True, "commitment": True, "tag": True}
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
        assert got["checks"] == checks
        assert got["grant"] == grant  # the basis bound into the wrap (WrapInfo.grant)
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


@pytest.mark.parametrize(
    ("url", "tamper", "step"),
    [
        ("**/blobs/*", flip_blob, "cid"),
        ("**/records/key-release", rewrite_json(flip_wrap), "wrap"),
        ("**/ledger/records/**", rewrite_json(swap_commitment), "commitment"),
        # and more that a node (or a proxy) could try:
        ("**/ledger/records/**", rewrite_json(swap_cid), "cid"),
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
        "grant-relabelled",
        "salt-replaced",
        "other-version-released",
        "blob-withheld",
    ],
)
def test_answers_tampered_in_transit_fail_at_their_step(
    node_page: Page, records_node: RecordsNode, url: str, tamper: Tamper, step: str
) -> None:
    node_page.route(url, tamper)
    got = read_in_browser(node_page, records_node, "dr-house", version=2)
    assert (got.get("failed"), got.get("reason")) == (step, step), got
    assert "content" not in got and "36.6" not in got["message"]  # no record content
    node_page.unroute(url)
    assert "failed" not in read_in_browser(node_page, records_node, "dr-house", version=2)
