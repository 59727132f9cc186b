// A record read end to end in the patient's (or clinician's) browser, through key release
// (ADR 0012 "Key release", ADR 0019): the node never sees the plaintext leave it, the page
// checks every byte it is given. The same steps as `medledger records get`
// (src/medledger/entrypoints/cli/records_cmd.py), with the Python formats of
// core/crypto/key_wrap.py (WrapInfo), core/crypto/record_cipher.py (RecordAad, the blob, the
// salted commitment) and core/cid.py:
//
//   1. a fresh X25519 session key pair, its private key non-extractable (hpke.js);
//   2. a signed request.key_release {patient, record_id, purpose, session_key[, version]
//      [, justification]} to POST /records/key-release; a 403 is `denied` (the node records
//      the attempt as an access event);
//   3. the ledger's view of the record (GET /ledger/records/{patient}/{record_id}: head,
//      versions and where each version's anchor is in the log), the log receipt of the
//      version's anchor (GET /log/receipt/{index}) and the ciphertext (GET /blobs/{cid});
//   4. `anchor`: the receipt verifies against the identity's PINNED log key (never one the
//      node sends) and carries the committed, correctly signed `record.anchor` transaction of
//      exactly this patient, record and version, sent by the custodian the ledger view names
//      (anchor.js); the view's commitment, CID, resource type and height must be the proven
//      ones. From here on the commitment, CID and resource type are the PROVEN values;
//   4b. `latest`: the record's head (`record/{patient}/{record_id}`, core/ledger/contracts/
//      records.py) is proven by a sparse-Merkle state proof against the latest block header
//      (GET /ledger/state-proof, state.js), signed by an authority of the network's genesis
//      (GET /ledger/genesis, its hash pinned per network on first use: keyring.pinGenesis);
//      the header is at least as new as the anchor's checkpoint (log_size >= its size); the
//      head is not tombstoned and, when the latest version was asked for, IS the version read
//      (and its author and resource type are the proven anchor's);
//   5. `cid`: the released CID is the anchored one, and the blob's SHA-256 is the CID's digest
//      (constant-time compare);
//   6. `wrap`: the data key opens from the HPKE wrap (0x01 || enc || ct) bound to
//      "medledger/key-wrap/v1\0" || JCS{grant, recipient, record_id, version}, straight into
//      a non-extractable AES-GCM key;
//   7. `decrypt`: AES-256-GCM of the blob (0x01 || nonce || ct || tag) under AAD
//      "medledger/record/v1\0" || JCS{patient, record_id, resource_type, version};
//   8. `commitment`: HMAC-SHA256(salt, "medledger/commitment/v1\0" || plaintext) is the
//      proven anchor's commitment (constant-time compare).
//
// Every failure throws RecordCheckFailed whose `step` (also `reason`, as in receipt.js) names
// the step; `release` is a key release that failed for another reason than a denial (no such
// record, a malformed answer). Messages carry no record content and no key material, and
// nothing here logs. Trust: the anchor is proven by the transparency log under the pinned key,
// so a node that rewrites its ledger view together with the blob, wrap and salt fails
// `anchor` (or `cid`/`commitment`). The version read is proven the latest (`latest`, ADR
// 0024) as of a block signed by a genesis authority that is no older than the anchor's
// checkpoint: a node hiding a later version or a tombstone must forge an authority's
// signature. Not proven: that no newer block exists than the one the node shows (a node may
// serve an old but genuine header; the bound is the anchor's checkpoint, itself only as fresh
// as the node makes it), nor that the sender still belongs to the custodian organization
// (ADR 0019 addendum). I/O: fetch, and IndexedDB for the genesis pin.

import { AnchorFailed, verifyRecordAnchor } from "./anchor.js";
import { CidError, parseCid, verifyCid } from "./cid.js";
import { isDidKey } from "./did.js";
import { b64decode, concat, equalBytes, fromUtf8, hexDecode, hexEncode, utf8 } from "./encoding.js";
import { HpkeError, generateKeyPair, openKey } from "./hpke.js";
import { canonicalize, parseJson } from "./jcs.js";
import { PinMismatch, pinGenesis } from "./keyring.js";
import { parseVerifierKey } from "./note.js";
import { MAX_LOG_RECEIPT_BYTES } from "./receipt.js";
import { MAX_GENESIS_BYTES, StateProofFailed, parseGenesis, verifyStateAnswer } from "./state.js";
import { signEnvelope } from "./tx.js";

export const DOMAIN_KEY_WRAP = "medledger/key-wrap/v1\u0000";
export const DOMAIN_RECORD = "medledger/record/v1\u0000";
export const DOMAIN_COMMITMENT = "medledger/commitment/v1\u0000";
const WRAP_FORMAT_V1 = 0x01;
const WRAPPED_SIZE = 1 + 32 + 32 + 16;
const RECORD_FORMAT_V1 = 0x01;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
/** record_cipher.MAX_RECORD_PLAINTEXT: no sealed record is larger (plus its framing). */
export const MAX_RECORD_PLAINTEXT = 8 * 1024 * 1024;
const MAX_BLOB = 1 + NONCE_SIZE + MAX_RECORD_PLAINTEXT + TAG_SIZE;
const MAX_ANSWER_BYTES = 256 * 1024;
const REQUEST_TTL_S = 120;
const RECORD_ID = /^[A-Za-z0-9._-]{1,64}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const PURPOSE = /^[A-Z][A-Z0-9-]{1,31}$/;
const IDENTIFIER = /^[\x21-\x7e]{1,128}$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** A state proof of <= 256 siblings, a header and a record head fit in far less. */
const MAX_STATE_ANSWER_BYTES = 64 * 1024;
/** records.py RecordHead.to_state's fields. */
const HEAD_KEYS = "author,author_org,hash,patient,record_id,resource_type,tombstone,tombstoned,version";

/** The step names, in the order the steps run. */
export const STEPS = Object.freeze({
  denied: "the node refused to release the key: access denied (the attempt is recorded)",
  release: "the key release failed or its answer is malformed",
  anchor: "the ledger's anchor of this version is not proven by the log under the pinned key",
  latest: "this is not proven to be the record's latest version under a signed block header",
  cid: "the ciphertext is not the one the ledger anchors",
  wrap: "the released key does not open for this session, record version and grant",
  decrypt: "the record does not decrypt under its key and record binding",
  commitment: "the record does not match the commitment anchored on the ledger",
});

export class RecordCheckFailed extends Error {
  constructor(step, detail) {
    super(detail ? `${STEPS[step]}: ${detail}` : STEPS[step]);
    this.name = "RecordCheckFailed";
    this.step = step;
    this.reason = step;
  }
}

const fail = (step, detail) => {
  throw new RecordCheckFailed(step, detail);
};

// --- the byte formats Python binds ---------------------------------------------------------------
/** key_wrap.WrapInfo.to_bytes(): the HPKE info of a released wrap. */
export function wrapInfoBytes({ recordId, version, recipient, grant }) {
  const body = { grant, recipient, record_id: recordId, version };
  return concat(utf8(DOMAIN_KEY_WRAP), utf8(canonicalize(body)));
}

/** record_cipher.RecordAad.to_bytes(): the AES-GCM additional data of a record version. */
export function recordAadBytes({ patient, recordId, resourceType, version }) {
  const body = { patient, record_id: recordId, resource_type: resourceType, version };
  return concat(utf8(DOMAIN_RECORD), utf8(canonicalize(body)));
}

/** record_cipher.salted_commitment(salt, plaintext). */
export async function saltedCommitment(salt, plaintext) {
  const key = await crypto.subtle.importKey("raw", salt, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const message = concat(utf8(DOMAIN_COMMITMENT), plaintext);
  try {
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, message));
  } finally {
    message.fill(0);
  }
}

// --- the node's answers --------------------------------------------------------------------------
/** The body, or null past `max` bytes; a body cut off in transit throws `step`. */
async function readCapped(response, max, step) {
  try {
    return await readUpTo(response, max);
  } catch {
    fail(step, "the answer was cut off");
  }
}

async function readUpTo(response, max) {
  const declared = Number(response.headers.get("Content-Length"));
  if (Number.isFinite(declared) && declared > max) return null;
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return concat(...chunks);
}

async function fetchJson(url, init, step) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    fail(step, "the node could not be reached");
  }
  const raw = await readCapped(response, MAX_ANSWER_BYTES, step);
  let body;
  try {
    body = raw === null ? null : JSON.parse(fromUtf8(raw));
  } catch {
    body = null;
  }
  return { status: response.status, ok: response.ok, body };
}

function errorText(body, status) {
  const message = body?.error?.message;
  return typeof message === "string" ? message.slice(0, 200) : `HTTP ${status}`;
}

function parseRelease(body, expectedVersion) {
  const ok = body !== null && typeof body === "object" &&
    Number.isSafeInteger(body.version) && body.version >= 1 &&
    typeof body.resource_type === "string" && RESOURCE_TYPE.test(body.resource_type) &&
    typeof body.salt === "string" && HEX64.test(body.salt) &&
    typeof body.wrap === "string" && body.wrap.length <= 4 * WRAPPED_SIZE &&
    typeof body.grant === "string" && IDENTIFIER.test(body.grant) &&
    typeof body.cid === "string";
  if (!ok) fail("release", "the answer does not have the key release's fields");
  if (expectedVersion !== null && body.version !== expectedVersion) fail("release", "the node released another version");
  try {
    parseCid(body.cid);
  } catch (e) {
    fail("cid", e.message);
  }
  return body;
}

/** The ledger view's head, the version's state and the log position of its anchor. */
function ledgerView(body, version) {
  const head = body?.head;
  const versions = body?.versions;
  const anchors = body?.anchors;
  if (head === null || typeof head !== "object" || !Array.isArray(versions) || !Array.isArray(anchors)) {
    fail("anchor", "the ledger's answer is not a record");
  }
  const isThis = (v) => v !== null && typeof v === "object" && v.version === version;
  const entry = versions.find(isThis);
  const position = anchors.find(isThis);
  if (!entry || !position || !Number.isSafeInteger(position.log_index) || position.log_index < 0) {
    fail("anchor", "the ledger names no anchor for this version");
  }
  if (!isDidKey(entry.author) || entry.author_org !== head.author_org) {
    fail("anchor", "the ledger names no custodian for this version");
  }
  return { head, entry, position };
}

/** Step 4's last check: the node's view says what the log proves, field by field. */
function checkViewIsProven({ head, entry, position }, proven) {
  const same = entry.commitment === proven.commitment && entry.cid === proven.cid &&
    entry.height === proven.height && head.resource_type === proven.resourceType &&
    position.tx_id === proven.txId;
  if (!same) fail("anchor", "the node's ledger view differs from the anchor the log proves");
}

async function checkArguments({ identity, network, patient, recordId, version, purpose, justification, origin }) {
  if (!(identity?.privateKey instanceof CryptoKey) || !isDidKey(identity?.did) || typeof identity?.logKey !== "string") {
    throw new TypeError("identity must be the keyring's {did, privateKey, logKey}");
  }
  try {
    await parseVerifierKey(identity.logKey);
  } catch {
    throw new TypeError("identity.logKey must be the pinned log verifier key");
  }
  if (origin !== null && (typeof origin !== "string" || !origin)) throw new TypeError("origin must be null or the log's origin");
  if (typeof network !== "string" || !network) throw new TypeError("network must be the network's name");
  if (typeof patient !== "string" || !isDidKey(patient)) throw new TypeError("patient must be a did:key");
  if (typeof recordId !== "string" || !RECORD_ID.test(recordId)) throw new TypeError("recordId must be 1-64 of [A-Za-z0-9._-]");
  if (version !== null && !(Number.isSafeInteger(version) && version >= 1)) throw new TypeError("version must be a positive integer or null");
  if (typeof purpose !== "string" || !PURPOSE.test(purpose)) throw new TypeError("purpose must be a v3-ActReason code such as TREAT");
  if (justification !== null && (typeof justification !== "string" || !justification.trim())) {
    throw new TypeError("justification must be null or a non-empty reason (break-glass)");
  }
}

// --- the read ----------------------------------------------------------------------------------
/**
 * Read one record version in this browser through key release (steps above). `version` null
 * (or omitted) is the latest; `justification` asks for break-glass (purpose BTG or ETREAT);
 * `node` is the node's base URL ("" for the page's own origin); `identity.logKey` is the
 * log verifier key pinned at sign-in and `origin` the log's expected origin (default: the
 * key's name). Resolves to {content (the parsed FHIR resource), resourceType, version, cid,
 * grant, checks: {anchor: true, latest, cid: true, commitment: true, tag: true} (latest: the
 * version read is the proven head; false only for an older version asked for by number),
 * latest: {isLatest, headVersion, height, blockHash, logSize, proposer, signer},
 * anchor: {logIndex, checkpointSize, height, txId, sender}}; throws RecordCheckFailed.
 */
export async function readRecordInBrowser({
  identity, network, patient, recordId, version = null, purpose = "TREAT", justification = null, node = "",
  origin = null,
}) {
  await checkArguments({ identity, network, patient, recordId, version, purpose, justification, origin });
  const base = node.replace(/\/+$/, "");

  // 1. The session key: fresh per read, its private half never leaves WebCrypto.
  const session = await generateKeyPair();

  // 2. The signed key release.
  const payload = { patient, record_id: recordId, purpose, session_key: hexEncode(session.publicKey) };
  if (version !== null) payload.version = version;
  if (justification !== null) payload.justification = justification;
  const envelope = await signEnvelope(identity, {
    network, type: "request.key_release", payload, expires: Math.floor(Date.now() / 1000) + REQUEST_TTL_S,
  });
  const answer = await fetchJson(`${base}/records/key-release`, {
    method: "POST", body: envelope, headers: { "Content-Type": "application/json", Accept: "application/json" },
  }, "release");
  if (answer.status === 403) fail("denied", errorText(answer.body, answer.status));
  if (!answer.ok) fail("release", errorText(answer.body, answer.status));
  const release = parseRelease(answer.body, version);
  const number = release.version;

  // 3. The ledger's view, the anchor's log receipt and the ciphertext.
  const ledgerUrl = `${base}/ledger/records/${encodeURIComponent(patient)}/${encodeURIComponent(recordId)}`;
  const blobFetched = fetchBlob(`${base}/blobs/${release.cid}`);
  blobFetched.catch(() => {}); // awaited below, after the anchor: its failure is not unhandled
  const ledger = await fetchJson(ledgerUrl, { headers: { Accept: "application/json" }, cache: "no-store" }, "anchor");
  if (!ledger.ok) fail("anchor", `the ledger's record could not be read (${errorText(ledger.body, ledger.status)})`);
  const view = ledgerView(ledger.body, number);
  const receipt = await fetchReceipt(`${base}/log/receipt/${view.position.log_index}`);

  // 4. The anchor, proven by the log under the pinned key; the view must say the same.
  let anchored;
  try {
    anchored = await verifyRecordAnchor(receipt, identity.logKey, {
      logIndex: view.position.log_index, network, patient, recordId, version: number, custodian: view.entry.author,
    }, { origin: origin ?? undefined });
  } catch (e) {
    if (e instanceof AnchorFailed) fail("anchor", e.message);
    throw e;
  }
  checkViewIsProven(view, anchored);
  if (release.resource_type !== anchored.resourceType) fail("release", "the released resource type is not the anchored one");

  // 4b. The record's head, proven against a signed block header: the latest, not erased.
  const latest = await proveLatest(base, { network, patient, recordId, version: number, askedLatest: version === null }, anchored);

  // 5. CID: the anchored one, and the blob's digest.
  const blob = await blobFetched;
  if (anchored.cid !== release.cid) fail("cid", "the node released a CID the ledger does not anchor for this version");
  try {
    await verifyCid(release.cid, blob);
  } catch (e) {
    if (e instanceof CidError) fail("cid", e.message);
    throw e;
  }

  // 6. The wrap, bound to this record version, this requester and the grant.
  const dataKey = await unwrapDataKey(release, session, {
    recordId, version: number, recipient: identity.did, grant: release.grant,
  });

  // 7. The record, bound to its patient, id, type and version.
  const aad = recordAadBytes({ patient, recordId, resourceType: anchored.resourceType, version: number });
  const plaintext = await openRecord(blob, dataKey, aad);

  // 8. The salted commitment of the proven anchor.
  const commitment = await saltedCommitment(hexDecode(release.salt), plaintext);
  if (!equalBytes(commitment, hexDecode(anchored.commitment))) {
    plaintext.fill(0);
    fail("commitment");
  }
  let content;
  try {
    content = JSON.parse(fromUtf8(plaintext));
  } catch {
    content = null;
  } finally {
    plaintext.fill(0);
  }
  if (content === null || typeof content !== "object" || Array.isArray(content)) fail("decrypt", "the record is not a JSON object");
  return {
    content,
    resourceType: anchored.resourceType,
    version: number,
    cid: release.cid,
    grant: release.grant,
    checks: { anchor: true, latest: latest.isLatest, cid: true, commitment: true, tag: true },
    latest,
    anchor: {
      logIndex: anchored.logIndex,
      checkpointSize: anchored.checkpointSize,
      height: anchored.height,
      txId: anchored.txId,
      sender: anchored.sender,
    },
  };
}

/** A capped GET of raw bytes; failures are `step`. */
async function fetchRaw(url, max, step, what) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    fail(step, `${what} could not be fetched`);
  }
  if (!response.ok) fail(step, `${what} could not be fetched (HTTP ${response.status})`);
  const raw = await readCapped(response, max, step);
  if (raw === null) fail(step, `${what} is too large`);
  return raw;
}

/** The network's genesis, its hash pinned for this network on first use (keyring.js). */
async function pinnedGenesis(base, network) {
  const raw = await fetchRaw(`${base}/ledger/genesis`, MAX_GENESIS_BYTES, "latest", "the network's genesis");
  let genesis;
  try {
    genesis = await parseGenesis(raw);
  } catch (e) {
    if (e instanceof StateProofFailed) fail("latest", e.message);
    throw e;
  }
  if (genesis.network !== network) fail("latest", "the node's genesis is another network's");
  try {
    await pinGenesis(network, genesis.hash);
  } catch (e) {
    if (e instanceof PinMismatch) fail("latest", e.message);
    throw e;
  }
  return genesis;
}

/** records.py RecordHead, strictly: exactly its fields, for this patient and record. */
function parseHead(value, { patient, recordId }) {
  let head;
  try {
    head = parseJson(fromUtf8(value), { maxDepth: 4 });
  } catch {
    fail("latest", "the proven record head is not JSON");
  }
  const ok = head !== null && typeof head === "object" && !Array.isArray(head) &&
    Object.keys(head).sort().join() === HEAD_KEYS &&
    head.patient === patient && head.record_id === recordId &&
    Number.isSafeInteger(head.version) && head.version >= 1 &&
    typeof head.tombstoned === "boolean" && head.tombstoned === (head.tombstone !== null);
  if (!ok) fail("latest", "the proven state is not this record's head");
  return head;
}

/**
 * Step 4b: the record's head proven against the latest block the node shows. Returns
 * {isLatest, headVersion, height, blockHash, logSize, proposer, signer}.
 */
async function proveLatest(base, expected, anchored) {
  const genesis = await pinnedGenesis(base, expected.network);
  const key = `record/${expected.patient}/${expected.recordId}`;
  const raw = await fetchRaw(`${base}/ledger/state-proof?key=${encodeURIComponent(key)}`, MAX_STATE_ANSWER_BYTES, "latest",
    "the record's state proof");
  let answer;
  try {
    answer = parseJson(fromUtf8(raw), { maxDepth: 8 });
  } catch {
    fail("latest", "the state proof is not JSON");
  }
  let proven;
  try {
    proven = await verifyStateAnswer(answer, key, genesis);
  } catch (e) {
    if (e instanceof StateProofFailed) fail("latest", `${e.reason}: ${e.message}`);
    throw e;
  }
  const { block } = proven;
  if (block.logSize < anchored.checkpointSize) {
    fail("latest", "the proven block is older than the checkpoint that proves the anchor");
  }
  if (proven.value === null) fail("latest", "the signed ledger state holds no such record");
  const head = parseHead(proven.value, expected);
  if (head.tombstoned) fail("latest", `the record was erased (tombstoned at block ${head.tombstone?.height ?? "?"}): this version is no longer current`);
  if (head.version < expected.version) fail("latest", "the proven head is older than the version read");
  if (head.version > expected.version && expected.askedLatest) {
    const error = new RecordCheckFailed("latest", `a newer version (${head.version}) exists than the version ${expected.version} served`);
    error.newerVersion = head.version; // a version committed during the read also ends here: a page may read again
    throw error;
  }
  const isLatest = head.version === expected.version;
  if (isLatest && (head.author !== anchored.sender || head.resource_type !== anchored.resourceType)) {
    fail("latest", "the proven head is not the anchored version");
  }
  return {
    isLatest, headVersion: head.version, height: block.height, blockHash: block.hash, logSize: block.logSize,
    proposer: block.proposer, signer: block.signer,
  };
}

/** The anchor's tlog-proof receipt, as text, at most MAX_LOG_RECEIPT_BYTES. */
async function fetchReceipt(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "text/plain" }, cache: "no-store" });
  } catch {
    fail("anchor", "the anchor's log receipt could not be fetched");
  }
  if (!response.ok) fail("anchor", `the anchor's log receipt could not be fetched (HTTP ${response.status})`);
  const raw = await readCapped(response, MAX_LOG_RECEIPT_BYTES, "anchor");
  if (raw === null) fail("anchor", "the log receipt is larger than any receipt");
  return raw;
}

async function fetchBlob(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/octet-stream" } });
  } catch {
    fail("cid", "the ciphertext could not be fetched");
  }
  if (!response.ok) fail("cid", `the ciphertext could not be fetched (HTTP ${response.status})`);
  const blob = await readCapped(response, MAX_BLOB, "cid");
  if (blob === null) fail("cid", "the blob is larger than any sealed record");
  return blob;
}

/** key_wrap.unwrap_key in the browser: 0x01 || enc (32) || ct (48), one failure for all. */
async function unwrapDataKey(release, session, info) {
  let wrapped;
  try {
    wrapped = b64decode(release.wrap);
  } catch {
    fail("wrap", "the wrap is not base64");
  }
  if (wrapped.length !== WRAPPED_SIZE || wrapped[0] !== WRAP_FORMAT_V1) fail("wrap", "the wrap is not a format-1 wrapped key");
  try {
    return await openKey(session, {
      enc: wrapped.subarray(1, 33), info: wrapInfoBytes(info), ciphertext: wrapped.subarray(33),
    });
  } catch (e) {
    if (e instanceof HpkeError) fail("wrap");
    throw e;
  }
}

/** record_cipher.open_record in the browser: framing, then AES-256-GCM under the AAD. */
async function openRecord(blob, dataKey, aad) {
  if (blob.length < 1 + NONCE_SIZE + TAG_SIZE || blob[0] !== RECORD_FORMAT_V1) fail("decrypt", "not a format-1 sealed record");
  const iv = blob.subarray(1, 1 + NONCE_SIZE);
  try {
    const params = { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 };
    return new Uint8Array(await crypto.subtle.decrypt(params, dataKey, blob.subarray(1 + NONCE_SIZE)));
  } catch {
    fail("decrypt");
  }
}
