// Contract state proven in the browser against a signed block header (ADR 0024, ADR 0007,
// ADR 0009): a port of src/medledger/core/state/smt.py's `hash_key`, `hash_value`,
// `verify_proof` / `_end_of_path` (the same steps and messages), and of the checks
// `chain verify` makes of one header (core/ledger/block.py, services/chain_audit.py):
//
//   proof (verifyStateProof, smt.verify_proof):
//     1. the key's path ends, at depth = number of siblings, in the proof's leaf or (null) an
//        empty slot; a leaf must lie on the key's path;
//     2. the key's own leaf proves it present with exactly the claimed value hash; another
//        key's leaf or an empty slot proves it absent; either must be what was claimed;
//     3. hashing up the siblings (RFC 6962 prefixes: leaf 0x00, node 0x01), left or right by
//        the key's path bits, gives the root;
//   block (verifyBlock):
//     4. the header has exactly block.py's fields and types, for the pinned genesis's network;
//     5. its hash is SHA-256("medledger/block/v1" 0x00 || JCS(header)), the hash served;
//     6. the proposer is a genesis authority, and the Ed25519 signature over those bytes
//        verifies under the proposer's did:key or (a consortium node stores its own signature
//        over the header it built, ADR 0016) under another genesis authority's;
//   genesis (parseGenesis): the document as stored (canonical JSON, strictly parsed), its
//     hash SHA-256("medledger/genesis/v1" 0x00 || bytes) (what block 0's `prev` is), and the
//     authorities' did:keys. The caller pins that hash per network (keyring.pinGenesis).
//
// The header arrives as a JSON object, so step 5 re-serialises it: a strictly parsed object
// with exactly the header's fields has one JCS text, so the bytes hashed are the bytes signed
// (the RFC 8785 port is jcs.js). Every failure throws StateProofFailed whose `reason` names
// the step (`proof`, `header`, `signature`, `genesis`). Pure apart from WebCrypto.

import { isDidKey, publicKeyFromDid } from "./did.js";
import { verify } from "./ed25519.js";
import { b64decode, concat, equalBytes, fromUtf8, hexDecode, hexEncode, sha256, utf8 } from "./encoding.js";
import { canonicalize, parseJson } from "./jcs.js";

export const KEY_DOMAIN = "medledger/state-key/v1\u0000";
export const VALUE_DOMAIN = "medledger/state-value/v1\u0000";
export const DOMAIN_BLOCK = "medledger/block/v1\u0000";
export const DOMAIN_GENESIS = "medledger/genesis/v1\u0000";
export const HASH_SIZE = 32;
export const PATH_BITS = 256;
/** genesis.MAX_GENESIS_BYTES, MAX_AUTHORITIES. */
export const MAX_GENESIS_BYTES = 256 * 1024;
const MAX_AUTHORITIES = 128;
const EMPTY_HASH = new Uint8Array(HASH_SIZE);
const LEAF = Uint8Array.of(0x00);
const NODE = Uint8Array.of(0x01);
const HEX64 = /^[0-9a-f]{64}$/;
const NETWORK = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const HEADER_FIELDS = [
  "height", "log_root", "log_size", "network", "prev", "proposer", "results_root", "state_root",
  "time_ms", "tx_count", "tx_root", "v",
];
const HEADER_HASHES = ["log_root", "prev", "results_root", "state_root", "tx_root"];
const HEADER_COUNTS = ["height", "log_size", "time_ms", "tx_count"];

export class StateProofFailed extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "StateProofFailed";
    this.reason = reason;
  }
}

const fail = (reason, message) => {
  throw new StateProofFailed(reason, message);
};

const isHash = (v) => v instanceof Uint8Array && v.length === HASH_SIZE;
const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// --- hashes (smt.py) -------------------------------------------------------------------------
/** smt.hash_key: SHA-256("medledger/state-key/v1" 0x00 || UTF-8(key)). */
export async function hashKey(key) {
  if (typeof key !== "string" || !key.isWellFormed()) throw new TypeError("a state key must be Unicode text");
  return sha256(concat(utf8(KEY_DOMAIN), utf8(key)));
}

/** smt.hash_value: SHA-256("medledger/state-value/v1" 0x00 || value). */
export async function hashValue(value) {
  if (!(value instanceof Uint8Array)) throw new TypeError("a state value is bytes");
  return sha256(concat(utf8(VALUE_DOMAIN), value));
}

/** Bit `depth` (0 = most significant) of a 32-byte path. */
function bit(path, depth) {
  return (path[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/** Whether two paths share their first `depth` bits. */
function samePrefix(a, b, depth) {
  for (let i = 0; i < depth; i++) if (bit(a, i) !== bit(b, i)) return false;
  return true;
}

// --- proofs ----------------------------------------------------------------------------------
/** A proof as the node serves it ({siblings: [b64], leaf: {key_hash, value_hash} | null}). */
export function parseStateProof(json) {
  const leaf = json?.leaf;
  if (!isObject(json) || Object.keys(json).sort().join() !== "leaf,siblings" || !Array.isArray(json.siblings)) {
    fail("proof", "the state proof is malformed");
  }
  if (json.siblings.length > PATH_BITS) fail("proof", `a state proof has at most ${PATH_BITS} siblings`);
  const hash = (text) => {
    let raw;
    try {
      raw = b64decode(text);
    } catch {
      raw = null;
    }
    if (!isHash(raw)) fail("proof", "every hash in a state proof is 32 bytes of base64");
    return raw;
  };
  if (leaf !== null && !(isObject(leaf) && Object.keys(leaf).sort().join() === "key_hash,value_hash")) {
    fail("proof", "the state proof's leaf is malformed");
  }
  return {
    siblings: json.siblings.map(hash),
    leaf: leaf === null ? null : { keyHash: hash(leaf.key_hash), valueHash: hash(leaf.value_hash) },
  };
}

/** Steps 1-2 of verifyStateProof (smt._end_of_path): the hash where the key's path ends. */
async function endOfPath(keyHash, valueHash, proof) {
  const leaf = proof.leaf;
  if (leaf === null) {
    if (valueHash !== null) fail("proof", "the key's path ends at an empty slot: the proof shows absence");
    return EMPTY_HASH;
  }
  if (!samePrefix(leaf.keyHash, keyHash, proof.siblings.length)) fail("proof", "the proof's leaf is not on the key's path");
  if (!equalBytes(leaf.keyHash, keyHash)) {
    if (valueHash !== null) fail("proof", "the key's path ends at another key's leaf: the proof shows absence");
  } else if (valueHash === null) {
    fail("proof", "the proof shows the key present, not absent");
  } else if (!equalBytes(leaf.valueHash, valueHash)) {
    fail("proof", "the proof's leaf holds a different value");
  }
  return sha256(concat(LEAF, leaf.keyHash, leaf.valueHash));
}

/**
 * smt.verify_proof: in the state `root`, `keyHash` has `valueHash` (null: is absent), by
 * `proof` = {siblings (deepest first), leaf: {keyHash, valueHash} | null}. Returns undefined
 * or throws StateProofFailed("proof").
 */
export async function verifyStateProof(root, keyHash, valueHash, proof) {
  if (!isHash(root) || !isHash(keyHash)) fail("proof", "root and key_hash must be 32-byte hashes");
  if (valueHash !== null && !isHash(valueHash)) fail("proof", "value_hash must be a 32-byte hash");
  if (!Array.isArray(proof?.siblings) || proof.siblings.length > PATH_BITS || !proof.siblings.every(isHash)) {
    fail("proof", "every sibling in a state proof is a 32-byte hash");
  }
  let node = await endOfPath(keyHash, valueHash, proof); // 1-2.
  const depth = proof.siblings.length;
  for (let i = 0; i < depth; i++) { // 3.
    const sibling = proof.siblings[i];
    node = bit(keyHash, depth - 1 - i) ? await sha256(concat(NODE, sibling, node)) : await sha256(concat(NODE, node, sibling));
  }
  if (!equalBytes(node, root)) fail("proof", "the state proof does not lead to the state root");
}

// --- genesis and blocks ----------------------------------------------------------------------
/**
 * The genesis document as the node stores it (bytes of canonical JSON): {network,
 * authorities (did:keys), hash (hex of SHA-256(DOMAIN_GENESIS || bytes))}.
 */
export async function parseGenesis(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_GENESIS_BYTES) fail("genesis", "the genesis is too large");
  let text;
  let doc;
  try {
    text = fromUtf8(bytes);
    doc = parseJson(text, { maxDepth: 8 });
  } catch {
    fail("genesis", "the genesis is not JSON");
  }
  const fields = "authorities,block_interval_ms,block_max_txs,network,time_ms";
  if (!isObject(doc) || Object.keys(doc).sort().join() !== fields || canonicalize(doc) !== text) {
    fail("genesis", "the genesis is not a canonical genesis document");
  }
  const authorities = doc.authorities;
  if (typeof doc.network !== "string" || !NETWORK.test(doc.network) || !Array.isArray(authorities) ||
    authorities.length < 1 || authorities.length > MAX_AUTHORITIES ||
    !authorities.every((a) => isObject(a) && isDidKey(a.did))) {
    fail("genesis", "the genesis has no valid network and authorities");
  }
  const dids = authorities.map((a) => a.did);
  if (new Set(dids).size !== dids.length) fail("genesis", "the genesis lists an authority twice");
  const hash = await sha256(concat(utf8(DOMAIN_GENESIS), bytes));
  return { network: doc.network, authorities: dids, hash: hexEncode(hash) };
}

/** Step 4: exactly block.py's header fields, with their types. */
function checkHeader(header, network) {
  if (!isObject(header) || Object.keys(header).sort().join() !== HEADER_FIELDS.join() || header.v !== 1) {
    fail("header", "the block header does not have a version-1 header's fields");
  }
  const ok = HEADER_HASHES.every((k) => typeof header[k] === "string" && HEX64.test(header[k])) &&
    HEADER_COUNTS.every((k) => isCount(header[k])) && typeof header.network === "string" && isDidKey(header.proposer);
  if (!ok) fail("header", "the block header is malformed");
  if (header.network !== network) fail("header", "the block is another network's");
}

/** DOMAIN_BLOCK || JCS(header): what the proposer signs (BlockHeader.signing_bytes). */
export function blockSigningBytes(header) {
  return concat(utf8(DOMAIN_BLOCK), utf8(canonicalize(header)));
}

/**
 * Steps 4-6 for a block as served ({height, hash, header, signature}) under a parsed genesis
 * (parseGenesis). Returns {height, hash, stateRoot (bytes), logSize, timeMs, proposer,
 * signer}; throws StateProofFailed (`header`, `signature`).
 */
export async function verifyBlock(block, genesis) {
  if (!isObject(block) || !isObject(block.header) || typeof block.hash !== "string" || typeof block.signature !== "string") {
    fail("header", "the answer carries no block");
  }
  const header = block.header;
  checkHeader(header, genesis.network); // 4.
  if (block.height !== header.height) fail("header", "the block's height is not its header's");
  const signed = blockSigningBytes(header); // 5.
  const hash = hexEncode(await sha256(signed));
  if (hash !== block.hash) fail("header", "the block's hash is not the hash of its header");
  if (!genesis.authorities.includes(header.proposer)) fail("signature", "the block's proposer is not a genesis authority"); // 6.
  let signature;
  try {
    signature = hexDecode(block.signature);
  } catch {
    fail("signature", "the block's signature is not hex");
  }
  let signer = null;
  for (const did of [header.proposer, ...genesis.authorities.filter((a) => a !== header.proposer)]) {
    if (await verify(publicKeyFromDid(did), signed, signature)) {
      signer = did;
      break;
    }
  }
  if (signer === null) fail("signature", "the block header's signature does not verify under a genesis authority");
  return {
    height: header.height, hash, stateRoot: hexDecode(header.state_root), logSize: header.log_size,
    timeMs: header.time_ms, proposer: header.proposer, signer,
  };
}

/**
 * GET /ledger/state-proof's answer for `key`, proven: the block verifies under `genesis`
 * (steps 4-6) and the value (or its absence) is proven against its state root (1-3).
 * Returns {value: bytes | null, block: verifyBlock's result}.
 */
export async function verifyStateAnswer(answer, key, genesis) {
  if (!isObject(answer) || answer.key !== key) fail("proof", "the answer is not for the key asked");
  if (answer.value !== null && typeof answer.value !== "string") fail("proof", "the answer's value is malformed");
  const proof = parseStateProof(answer.proof);
  const block = await verifyBlock(answer.block, genesis);
  let value = null;
  if (answer.value !== null) {
    try {
      value = b64decode(answer.value);
    } catch {
      fail("proof", "the answer's value is not base64");
    }
  }
  await verifyStateProof(block.stateRoot, await hashKey(key), value === null ? null : await hashValue(value), proof);
  return { value, block };
}
