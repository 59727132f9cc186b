// Receipts checked in the patient's browser, offline, against the log's verifier key alone:
//
// - verifyLogReceipt: a C2SP tlog-proof@v1 receipt (src/medledger/core/receipt.py): parse it
//   in its one canonical form, open its checkpoint note, check RFC 9162 inclusion.
// - verifyEventReceipt: an access-event receipt (verify_event_receipt in
//   src/medledger/core/audit/receipt.py, ADR 0014): the event is a leaf of its batch, whose
//   root was anchored by one signed access.batch transaction, which is an entry of the log
//   under a checkpoint signed by the log's key.
//
// Every failure throws VerificationFailed whose `reason` is a short code naming the step that
// failed (see REASONS) and whose message says what was wrong; nothing returns a bare false.
// Pure apart from WebCrypto.

import { isDidKey } from "./did.js";
import { b64decode, equalBytes, fromUtf8, hexDecode, hexEncode, utf8 } from "./encoding.js";
import { canonicalize, parseJson } from "./jcs.js";
import { checkInclusion, leafHash, ProofError, rootFromInclusionProof } from "./merkle.js";
import { NoteError, parseVerifierKey, verifyCheckpoint } from "./note.js";
import { decodeTransaction, verifyTransactionSignature } from "./tx.js";

/** The reason codes, in the order the steps run. */
export const REASONS = Object.freeze({
  malformed: "the receipt is not a well-formed access-event receipt",
  "batch-proof": "the event's batch inclusion proof is malformed",
  "anchor-malformed": "the anchor is not a tlog-proof receipt carrying its log entry",
  "checkpoint-malformed": "the anchor's checkpoint note is malformed",
  "checkpoint-signature": "the checkpoint is not signed by the log's key",
  "checkpoint-origin": "the checkpoint is for another log",
  "log-inclusion": "the anchor is not included in the log under the checkpoint",
  "anchor-entry": "the anchored log entry is not a committed transaction",
  "anchor-signature": "the anchor transaction's signature does not verify",
  "anchor-type": "the anchor is not an access.batch transaction",
  "anchor-batch": "the anchor is for another batch",
  "batch-root": "the event's batch proof does not lead to the anchored root",
  "anchor-count": "the batch size is not the anchored count",
  "anchor-node": "the batch was anchored by another node than the one that decided",
  "anchor-time": "the event's time is outside the anchored batch's time range",
});

export class VerificationFailed extends Error {
  constructor(reason, message) {
    super(message ?? REASONS[reason] ?? reason);
    this.name = "VerificationFailed";
    this.reason = reason;
  }
}

const fail = (reason, detail) => {
  throw new VerificationFailed(reason, detail ? `${REASONS[reason]}: ${detail}` : REASONS[reason]);
};

// --- tlog-proof@v1 ---------------------------------------------------------------------------
const RECEIPT_HEADER = "c2sp.org/tlog-proof@v1";
export const MAX_LOG_RECEIPT_BYTES = 128 * 1024;
const MAX_LOG_PROOF_HASHES = 65;
const DECIMAL = /^(?:0|[1-9][0-9]{0,19})$/;

/**
 * tlog-proof §Format, canonical form only: header, optional "extra <b64>", "index <n>",
 * proof hashes (base64, one a line), an empty line, then the checkpoint note verbatim.
 * Returns {index, proof, extra, checkpointNote}; throws VerificationFailed("anchor-malformed").
 */
export function parseLogReceipt(text) {
  const bytes = typeof text === "string" ? utf8(text) : text;
  if (bytes.length > MAX_LOG_RECEIPT_BYTES) fail("anchor-malformed", `larger than ${MAX_LOG_RECEIPT_BYTES} bytes`);
  let whole;
  try {
    whole = fromUtf8(bytes);
  } catch {
    fail("anchor-malformed", "not UTF-8");
  }
  let at = 0;
  const next = (expected) => {
    const end = whole.indexOf("\n", at);
    if (end < 0) fail("anchor-malformed", `it ends before ${expected}`);
    const line = whole.slice(at, end);
    at = end + 1;
    return line;
  };
  const b64 = (line, what) => {
    try {
      return b64decode(line);
    } catch {
      return fail("anchor-malformed", `${what} is not canonical base64`);
    }
  };
  if (next("the header line") !== RECEIPT_HEADER) fail("anchor-malformed", `the first line must be ${RECEIPT_HEADER}`);
  let extra = null;
  if (whole.startsWith("extra ", at)) extra = b64(next("the extra line").slice(6), "extra");
  const indexLine = next("the index line");
  if (!indexLine.startsWith("index ") || !DECIMAL.test(indexLine.slice(6))) {
    fail("anchor-malformed", "the index line must be 'index <n>' without leading zeroes");
  }
  const index = BigInt(indexLine.slice(6));
  if (index >= 2n ** 64n - 1n) fail("anchor-malformed", "index out of range");
  const proof = [];
  for (let line = next("the empty line"); line; line = next("the empty line")) {
    if (proof.length === MAX_LOG_PROOF_HASHES) fail("anchor-malformed", `more than ${MAX_LOG_PROOF_HASHES} proof hashes`);
    const digest = b64(line, "a proof hash");
    if (digest.length !== 32) fail("anchor-malformed", "a proof hash is not 32 bytes");
    proof.push(digest);
  }
  const checkpointNote = whole.slice(at);
  if (!checkpointNote) fail("anchor-malformed", "no checkpoint after the empty line");
  return { index, proof, extra, checkpointNote };
}

async function openCheckpoint(note, logKey, origin, cache) {
  const key = cache ? `${logKey.name}+${hexEncode(logKey.keyId)}\n${origin ?? ""}\n${note}` : null;
  if (key !== null && cache.has(key)) return cache.get(key);
  const pending = verifyCheckpoint(note, logKey, { origin }).catch((e) => {
    if (!(e instanceof NoteError)) throw e;
    const reason = { malformed: "checkpoint-malformed", signature: "checkpoint-signature", origin: "checkpoint-origin" }[e.reason];
    throw new VerificationFailed(reason, `${REASONS[reason]}: ${e.message}`);
  });
  if (key !== null) {
    cache.set(key, pending);
    pending.catch(() => {}); // a failed verification is cached as failed, not as unhandled
  }
  return pending;
}

/**
 * Verify a tlog-proof@v1 receipt against the log's verifier key: its checkpoint is signed by
 * that key (options.origin, by default the key's name), and the entry (options.entry bytes, or
 * options.leafHash, or by default the receipt's own `extra` entry) is at `index` under it.
 * Returns {index, proof, extra, checkpoint}. `checkpointCache` (a Map) shares checkpoint
 * verifications between receipts.
 */
export async function verifyLogReceipt(text, verifierKey, { entry, leafHash: leaf, origin, checkpointCache } = {}) {
  const receipt = parseLogReceipt(text);
  const logKey = typeof verifierKey === "string" ? await parseVerifierKey(verifierKey) : verifierKey;
  let hash = leaf;
  if (hash === undefined) {
    const data = entry ?? receipt.extra;
    if (!data) fail("anchor-malformed", "no entry to check: the receipt carries no extra line");
    hash = await leafHash(data);
  }
  const checkpoint = await openCheckpoint(receipt.checkpointNote, logKey, origin, checkpointCache);
  try {
    await checkInclusion(receipt.index, checkpoint.size, hash, receipt.proof, checkpoint.rootHash);
  } catch (e) {
    if (e instanceof ProofError) fail("log-inclusion", e.message);
    throw e;
  }
  return { ...receipt, checkpoint };
}

// --- access-event receipts -------------------------------------------------------------------
const RECEIPT_TYPE = "medledger-access-event-receipt/v1";
export const MAX_EVENT_RECEIPT_BYTES = 64 * 1024;
const MAX_BATCH_EVENTS = 1_000_000;
const MAX_BATCH_PROOF_HASHES = 20;
const BATCH_ID = /^[A-Za-z0-9_-]{8,64}$/;
const EVENT_FIELDS = [
  "action", "actor", "actor_org", "consents", "decision", "event_id", "justification", "kind", "node",
  "patient", "purpose", "reasons", "record_id", "resource_type", "time_ms", "v", "version",
];
const ACTIONS = ["read", "key-release", "erase", "search", "list-audit", "consent-export"];
const DECISIONS = ["permit", "deny", "break-glass"];
const EVENT_ID = /^[a-z2-7]{25}[aeimquy4]$/;
const PURPOSE = /^[A-Z]{2,12}$/;
const REASON = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const CONSENT_ID = /^[A-Za-z0-9._-]{1,64}$/;
const RECORD_ID = /^[A-Za-z0-9._-]{1,64}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const PY_SPACE = /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u; // eslint-disable-line no-control-regex -- U+001C-U+001F are spaces to Python
const ENTRY_KEYS = ["height", "index", "kind", "ok", "reason", "tx", "tx_id"];

const bad = (message) => fail("malformed", message);

function exactKeys(value, keys, what) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return bad(`${what} must be an object`);
  const have = Object.keys(value).sort();
  if (have.length !== keys.length || have.some((k, i) => k !== keys[i])) {
    bad(`${what} must have exactly ${keys.join(", ")}`);
  }
  return value;
}

const isInt = (v, low, high = Number.MAX_SAFE_INTEGER) => Number.isSafeInteger(v) && v >= low && v <= high;

function pyStrip(s) {
  let a = 0;
  let b = s.length;
  while (a < b && PY_SPACE.test(s[a])) a++;
  while (b > a && PY_SPACE.test(s[b - 1])) b--;
  return s.slice(a, b);
}

function checkCodes(name, value, pattern, maxItems, maxChars) {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) bad(`${name}: must be a list of strings`);
  if (value.length > maxItems) bad(`${name}: must be a list of at most ${maxItems} codes`);
  if (value.some((c) => c.length > maxChars || !pattern.test(c))) bad(`${name}: each must match ${pattern.source}`);
  if (new Set(value).size !== value.length) bad(`${name}: a code is listed twice`);
}

/** parse_event (core/audit/event.py): exactly its fields, each checked. */
function checkEvent(e) {
  exactKeys(e, EVENT_FIELDS, "event");
  if (e.kind !== "access-event") bad("kind: must be access-event");
  if (e.v !== 1) bad("v: unsupported version");
  if (typeof e.event_id !== "string" || !EVENT_ID.test(e.event_id)) bad("event_id: 26 lowercase base32 characters");
  if (!isInt(e.time_ms, 0)) bad("time_ms: an integer in 0..2^53-1");
  for (const name of ["node", "actor", "patient"]) if (!isDidKey(e[name])) bad(`${name}: must be an Ed25519 did:key`);
  if (e.actor_org !== null && !isDidKey(e.actor_org)) bad("actor_org: must be an Ed25519 did:key or null");
  if (!ACTIONS.includes(e.action)) bad(`action: must be one of ${ACTIONS.join(", ")}`);
  if (e.resource_type !== null && (typeof e.resource_type !== "string" || !RESOURCE_TYPE.test(e.resource_type))) bad("resource_type: a FHIR type");
  if (e.record_id !== null && (typeof e.record_id !== "string" || !RECORD_ID.test(e.record_id))) bad("record_id: 1-64 of [A-Za-z0-9._-]");
  if (e.version !== null && (!isInt(e.version, 1) || e.record_id === null)) bad("version: an integer >= 1 with a record_id");
  if (typeof e.purpose !== "string" || !PURPOSE.test(e.purpose)) bad("purpose: a v3-ActReason code");
  if (!DECISIONS.includes(e.decision)) bad(`decision: must be one of ${DECISIONS.join(", ")}`);
  checkCodes("reasons", e.reasons, REASON, 16, 64);
  if (!e.reasons.length) bad("reasons: a decision carries at least one reason");
  checkCodes("consents", e.consents, CONSENT_ID, 32, 64);
  const j = e.justification;
  if (e.decision !== "break-glass") {
    if (j !== null) bad("justification: only a break-glass decision carries one");
  } else {
    if (typeof j !== "string" || !pyStrip(j)) bad("justification: a break-glass decision needs one");
    if ([...j].length > 500 || j !== pyStrip(j)) bad("justification: 1-500 characters, trimmed");
    if (/[\p{Cc}\p{Cs}]/u.test(j.replace(/[\n\t]/g, ""))) bad("justification: text without control characters");
  }
}

/**
 * parse_event_receipt: size, strict JSON, exact keys, the event's fields, the batch
 * ({batch_id, 0 <= index < size <= 1e6, <= 20 lowercase-hex hashes}), the anchor string, and
 * that the bytes are the RFC 8785 form of what was parsed.
 */
function parseEventReceipt(input) {
  let text;
  if (typeof input === "string") text = input;
  else if (input !== null && typeof input === "object") {
    try {
      text = canonicalize(input);
    } catch (e) {
      bad(e.message);
    }
  } else bad("a receipt is JSON text or an object");
  if (!text.isWellFormed()) bad("not Unicode text");
  if (utf8(text).length > MAX_EVENT_RECEIPT_BYTES) bad(`larger than ${MAX_EVENT_RECEIPT_BYTES} bytes`);
  let obj;
  try {
    obj = parseJson(text, { maxDepth: 8 });
  } catch (e) {
    bad(e.message);
  }
  exactKeys(obj, ["anchor", "batch", "event", "type"], "receipt");
  if (obj.type !== RECEIPT_TYPE) bad(`type: must be ${RECEIPT_TYPE}`);
  checkEvent(obj.event);
  const batch = exactKeys(obj.batch, ["batch_id", "index", "proof", "size"], "batch");
  if (!Array.isArray(batch.proof) || batch.proof.length > MAX_BATCH_PROOF_HASHES) bad(`proof: at most ${MAX_BATCH_PROOF_HASHES} hashes`);
  if (typeof obj.anchor !== "string") bad("anchor: must be tlog-proof text");
  if (typeof batch.batch_id !== "string" || !BATCH_ID.test(batch.batch_id)) bad("batch_id: 8-64 of [A-Za-z0-9_-]");
  if (!isInt(batch.size, 1, MAX_BATCH_EVENTS)) bad(`size: 1..${MAX_BATCH_EVENTS}`);
  if (!isInt(batch.index, 0, batch.size - 1)) bad("index: must be below the batch size");
  const proof = batch.proof.map((h) => {
    if (typeof h !== "string" || !/^[0-9a-f]{64}$/.test(h)) bad("proof: each hash is 64 lowercase hex digits");
    return hexDecode(h);
  });
  if (!obj.anchor) bad("anchor: must not be empty");
  if (canonicalize(obj) !== text) bad("not in RFC 8785 canonical form");
  return { event: obj.event, batchId: batch.batch_id, index: batch.index, size: batch.size, proof, anchor: obj.anchor };
}

/**
 * The transaction a log entry ({"height","index","kind":"tx","ok","reason","tx",...}) records,
 * if it committed ok: the wire bytes are cut out as received (never re-serialised), decoded
 * strictly, and their id must be the entry's tx_id.
 */
async function anchorTransaction(entry) {
  let text;
  let obj;
  try {
    text = fromUtf8(entry);
    obj = parseJson(text, { maxDepth: 16 });
  } catch (e) {
    fail("anchor-entry", e.message);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || Object.keys(obj).sort().join() !== ENTRY_KEYS.join()) {
    fail("anchor-entry", "not a transaction's log entry");
  }
  if (obj.kind !== "tx") fail("anchor-entry", "not a transaction's log entry");
  if (obj.ok !== true || obj.reason !== null) fail("anchor-entry", "the anchor transaction failed: it anchored nothing");
  if (!isInt(obj.height, 0) || !isInt(obj.index, 0)) fail("anchor-entry", "no valid height and index");
  if (typeof obj.tx_id !== "string" || !/^[0-9a-f]{64}$/.test(obj.tx_id)) fail("anchor-entry", "no valid tx_id");
  const head = `{"height":${obj.height},"index":${obj.index},"kind":"tx","ok":true,"reason":null,"tx":`;
  const tail = `,"tx_id":"${obj.tx_id}"}`;
  if (!text.startsWith(head) || !text.endsWith(tail) || text.length <= head.length + tail.length) {
    fail("anchor-entry", "the log entry is not in the form of a transaction's entry");
  }
  let decoded;
  try {
    decoded = await decodeTransaction(text.slice(head.length, text.length - tail.length));
  } catch (e) {
    if (e.name === "TxError") fail("anchor-entry", `the anchored transaction is malformed: ${e.message}`);
    throw e;
  }
  if (!equalBytes(decoded.txId, hexDecode(obj.tx_id))) fail("anchor-entry", "tx_id is not the id of its transaction");
  return { decoded, height: obj.height, index: obj.index, txId: obj.tx_id };
}

/** The anchor is the access.batch of this batch, by the node that decided. */
function checkAnchorPayload(decoded, receipt, root) {
  const { type, payload, sender } = decoded.body;
  if (type !== "access.batch") fail("anchor-type", `it is a ${type} transaction`);
  if (payload.batch_id !== receipt.batchId) fail("anchor-batch");
  if (typeof payload.root !== "string" || !equalBytes(utf8(payload.root), utf8(hexEncode(root)))) fail("batch-root");
  if (payload.count !== receipt.size) fail("anchor-count");
  if (sender !== receipt.event.node) fail("anchor-node");
  const { first_time_ms: first, last_time_ms: last } = payload;
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(last) && first <= receipt.event.time_ms && receipt.event.time_ms <= last)) {
    fail("anchor-time");
  }
}

/**
 * Verify an access-event receipt (JSON text, or the parsed object) offline against the log's
 * verifier key (vkey string or parseVerifierKey result). Returns {event, checkpoint, anchor};
 * throws VerificationFailed whose `reason` names the failed step:
 * 1. parse the receipt strictly (malformed);
 * 2. RFC 9162 §2.1.3.2: the event's leaf hash SHA-256(0x00 || JCS(event)) with the batch
 *    proof gives the batch root R (batch-proof);
 * 3. tlog-proof: the anchor's checkpoint is signed by the log key for its origin
 *    (checkpoint-*) and includes the anchor's extra entry (anchor-malformed, log-inclusion);
 * 4. that entry records a transaction that committed ok (anchor-entry);
 * 5. RFC 8032: the transaction's signature verifies under its sender's did:key (anchor-signature);
 * 6. it is access.batch with the receipt's batch_id, root R, count = size, sent by the
 *    event's node, with the event's time in its range (anchor-type, anchor-batch, batch-root,
 *    anchor-count, anchor-node, anchor-time).
 * options: {origin (default: the key's name), checkpointCache: Map, anchorCache: Map}; the
 * caches share work between receipts verified under the same key.
 */
export async function verifyEventReceipt(receiptJsonTextOrObject, verifierKey, { origin, checkpointCache, anchorCache } = {}) {
  const logKey = typeof verifierKey === "string" ? await parseVerifierKey(verifierKey) : verifierKey;
  // 1.
  const receipt = parseEventReceipt(receiptJsonTextOrObject);
  // 2.
  let root;
  try {
    root = await rootFromInclusionProof(receipt.index, receipt.size, await leafHash(utf8(canonicalize(receipt.event))), receipt.proof);
  } catch (e) {
    if (e instanceof ProofError) fail("batch-proof", e.message);
    throw e;
  }
  // 3-5, once per anchor text when a cache is given (a batch's events share their anchor).
  const anchorKey = anchorCache ? `${logKey.name}+${hexEncode(logKey.keyId)}\n${origin ?? ""}\n${receipt.anchor}` : null;
  let anchored = anchorKey !== null ? anchorCache.get(anchorKey) : undefined;
  if (!anchored) {
    anchored = checkAnchor(receipt.anchor, logKey, origin, checkpointCache);
    if (anchorKey !== null) {
      anchorCache.set(anchorKey, anchored);
      anchored.catch(() => {});
    }
  }
  const { log, tx } = await anchored;
  // 6.
  checkAnchorPayload(tx.decoded, receipt, root);
  return {
    event: receipt.event,
    checkpoint: log.checkpoint,
    anchor: {
      batchId: receipt.batchId,
      root: hexEncode(root),
      txId: tx.txId,
      height: tx.height,
      txIndex: tx.index,
      logIndex: Number(log.index),
      sender: tx.decoded.body.sender,
    },
  };
}

async function checkAnchor(anchorText, logKey, origin, checkpointCache) {
  // 3.
  const parsed = parseLogReceipt(anchorText);
  if (parsed.extra === null) fail("anchor-malformed", "the anchor does not carry its log entry (extra line)");
  const log = await verifyLogReceipt(anchorText, logKey, { origin, checkpointCache });
  // 4.
  const tx = await anchorTransaction(log.extra);
  // 5.
  try {
    await verifyTransactionSignature(tx.decoded);
  } catch (e) {
    if (e.name === "TxError") fail("anchor-signature", e.message);
    throw e;
  }
  return { log, tx };
}
