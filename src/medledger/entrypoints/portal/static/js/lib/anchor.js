// A record version's anchor, proven against the log's pinned verifier key (ADR 0019 addendum,
// ADR 0004): the `record.anchor` transaction that committed the version is an entry of the
// transparency log, and its tlog-proof@v1 receipt carries that entry in `extra`. So, without a
// new trust root, the browser learns the commitment, CID and resource type the ledger really
// anchored, instead of taking the node's ledger view for them:
//
//   1. tlog-proof: the receipt's checkpoint is signed by the pinned key for the expected
//      origin, and its `extra` entry is included at `index` under it (receipt.js
//      verifyLogReceipt); the index is the one asked for;
//   2. the entry is a transaction's log entry (core/ledger/block.py log_entry) that committed
//      ok: exactly its keys, the wire bytes cut out as received (never re-serialised) and
//      decoded strictly (tx.js decodeTransaction), their id is the entry's tx_id;
//   3. RFC 8032: the transaction's signature verifies under its sender's did:key;
//   4. it is a `record.anchor` on this network, for exactly this patient, record and version,
//      with the records contract's payload fields (core/ledger/contracts/records.py), sent by
//      the expected custodian.
//
// Every failure throws AnchorFailed whose message names what did not verify or match (no
// record content exists here: the entry holds pseudonymous ids, a commitment and a CID).
// Pure apart from WebCrypto; the caller fetches the receipt.

import { equalBytes, fromUtf8, hexDecode } from "./encoding.js";
import { parseJson } from "./jcs.js";
import { VerificationFailed, verifyLogReceipt } from "./receipt.js";
import { TxError, decodeTransaction, verifyTransactionSignature } from "./tx.js";

const ENTRY_KEYS = ["height", "index", "kind", "ok", "reason", "tx", "tx_id"];
const PAYLOAD_KEYS = ["cid", "commitment", "patient", "prev", "record_id", "resource_type", "version"];
const HEX64 = /^[0-9a-f]{64}$/;
/** records.py CID: a base32 CIDv1 as the blob store names ciphertext. */
const CID = /^b[a-z2-7]{9,99}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

export class AnchorFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "AnchorFailed";
  }
}

const fail = (message) => {
  throw new AnchorFailed(message);
};

const isCount = (v) => Number.isSafeInteger(v) && v >= 0;

/** Step 2: the committed transaction a log entry records, or AnchorFailed. */
async function committedTransaction(entry) {
  let text;
  let obj;
  try {
    text = fromUtf8(entry);
    obj = parseJson(text, { maxDepth: 16 });
  } catch {
    fail("the log entry is not JSON");
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || Object.keys(obj).sort().join() !== ENTRY_KEYS.join() ||
    obj.kind !== "tx") {
    fail("the log entry is not a transaction's entry");
  }
  if (obj.ok !== true || obj.reason !== null) fail("the anchoring transaction failed: it anchored nothing");
  if (!isCount(obj.height) || !isCount(obj.index) || typeof obj.tx_id !== "string" || !HEX64.test(obj.tx_id)) {
    fail("the log entry has no valid height, index and tx_id");
  }
  const head = `{"height":${obj.height},"index":${obj.index},"kind":"tx","ok":true,"reason":null,"tx":`;
  const tail = `,"tx_id":"${obj.tx_id}"}`;
  if (!text.startsWith(head) || !text.endsWith(tail) || text.length <= head.length + tail.length) {
    fail("the log entry is not in the canonical form of a transaction's entry");
  }
  let decoded;
  try {
    decoded = await decodeTransaction(text.slice(head.length, text.length - tail.length));
  } catch (e) {
    if (e instanceof TxError) fail(`the anchoring transaction is malformed: ${e.message}`);
    throw e;
  }
  if (!equalBytes(decoded.txId, hexDecode(obj.tx_id))) fail("the entry's tx_id is not the id of its transaction");
  return { decoded, height: obj.height, txIndex: obj.index, txId: obj.tx_id };
}

/** Step 4: a record.anchor for exactly this record version, by the custodian. */
function anchorPayload(body, expected) {
  if (body.type !== "record.anchor") fail(`the entry is a ${body.type} transaction, not a record.anchor`);
  if (body.network !== expected.network) fail("the anchoring transaction is for another network");
  const p = body.payload;
  if (Object.keys(p).sort().join() !== PAYLOAD_KEYS.join()) fail("the anchor's payload does not have the records contract's fields");
  if (p.patient !== expected.patient || p.record_id !== expected.recordId || p.version !== expected.version) {
    fail("the proven anchor is for another record or version");
  }
  const wellFormed = typeof p.commitment === "string" && HEX64.test(p.commitment) &&
    typeof p.cid === "string" && CID.test(p.cid) &&
    typeof p.resource_type === "string" && RESOURCE_TYPE.test(p.resource_type) &&
    (p.version === 1 ? p.prev === null : typeof p.prev === "string" && HEX64.test(p.prev));
  if (!wellFormed) fail("the anchor's payload is malformed");
  if (body.sender !== expected.custodian) fail("the anchoring transaction was not sent by the record's custodian");
  return p;
}

/**
 * Verify the log receipt `receiptText` (tlog-proof@v1 with its entry in `extra`) of a record
 * version's anchor, steps above. `verifierKey` is the pinned log key (vkey string or parsed);
 * `expected` = {logIndex, network, patient, recordId, version, custodian}; options.origin is
 * the expected checkpoint origin (default: the key's name).
 * Returns {logIndex, checkpointSize, height, txIndex, txId, sender, resourceType, commitment
 * (hex), cid, prev}; throws AnchorFailed.
 */
export async function verifyRecordAnchor(receiptText, verifierKey, expected, { origin } = {}) {
  // 1.
  let log;
  try {
    log = await verifyLogReceipt(receiptText, verifierKey, { origin });
  } catch (e) {
    if (e instanceof VerificationFailed) fail(`${e.reason}: ${e.message}`);
    throw e;
  }
  if (log.index !== BigInt(expected.logIndex)) fail("the receipt is for another log index than the anchor's");
  // 2.
  const tx = await committedTransaction(log.extra);
  // 3.
  try {
    await verifyTransactionSignature(tx.decoded);
  } catch (e) {
    if (e instanceof TxError) fail(`the anchoring transaction's signature does not verify: ${e.message}`);
    throw e;
  }
  // 4.
  const payload = anchorPayload(tx.decoded.body, expected);
  return {
    logIndex: Number(log.index),
    checkpointSize: log.checkpoint.size,
    height: tx.height,
    txIndex: tx.txIndex,
    txId: tx.txId,
    sender: tx.decoded.body.sender,
    resourceType: payload.resource_type,
    commitment: payload.commitment,
    cid: payload.cid,
    prev: payload.prev,
  };
}
