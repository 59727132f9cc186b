// The transaction envelope in the browser (src/medledger/core/ledger/envelope.py, tx.py,
// ADR 0008):
//
//   signed = "medledger/tx/v1\0" || JCS(body)              body: v network type payload sender nonce expires
//   wire   = JCS(body + {"sig": base64url-no-padding(Ed25519(signed))})
//   tx_id  = SHA-256(signed)
//
// signEnvelope gives the exact wire bytes Python gives for the same inputs and nonce;
// decodeTransaction and verifyTransactionSignature check a received wire form the way the
// node's intake does (strict parse, one canonical form, then the sender's signature).
// Pure apart from WebCrypto (and randomness for a default nonce).

import { publicKeyFromDid, isDidKey } from "./did.js";
import { sign, verify } from "./ed25519.js";
import { b64urlDecode, b64urlEncode, concat, fromUtf8, randomBytes, sha256, utf8 } from "./encoding.js";
import { canonicalize, parseJson } from "./jcs.js";

export const TX_VERSION = 1;
export const DOMAIN_TX = "medledger/tx/v1\u0000";
const NETWORK = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const TYPE = /^[a-z][a-z_]{0,30}\.[a-z][a-z_]{0,30}$/;
const NONCE = /^[A-Za-z0-9_-]{8,64}$/;
const SIG = /^[A-Za-z0-9_-]{86}$/;
const WIRE_KEYS = ["expires", "network", "nonce", "payload", "sender", "sig", "type", "v"];
/** TxLimits defaults: what the node's intake accepts. */
export const TX_LIMITS = Object.freeze({ maxTxBytes: 64 * 1024, maxPayloadDepth: 8, maxStringChars: 8 * 1024, checkJsonDepth: 16 });

/** reason: the node's intake reason code (schema_error, oversize, non_canonical, bad_signature, malformed). */
export class TxError extends Error {
  constructor(reason, message, parameter = null) {
    super(message);
    this.name = "TxError";
    this.reason = reason;
    this.parameter = parameter;
  }
}

const schema = (message, parameter) => new TxError("schema_error", message, parameter);

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    [Object.prototype, null].includes(Object.getPrototypeOf(value));
}

/** Walk a payload: nesting depth and string lengths (code points), keys included. */
function payloadShape(payload) {
  let depth = 0;
  let longest = 0;
  const stack = [[payload, 0]];
  while (stack.length) {
    const [item, d] = stack.pop();
    depth = Math.max(depth, d);
    if (d > 64) break;
    const strings = [];
    if (typeof item === "string") strings.push(item);
    else if (Array.isArray(item)) item.forEach((v) => stack.push([v, d + 1]));
    else if (isPlainObject(item)) {
      for (const [k, v] of Object.entries(item)) {
        strings.push(k);
        stack.push([v, d + 1]);
      }
    }
    for (const s of strings) longest = Math.max(longest, s.length > TX_LIMITS.maxStringChars ? [...s].length : 0);
  }
  return { depth, longest };
}

/** Transaction constructor checks (tx.py) and the intake's payload limits, one parameter at a time. */
function checkBody(body) {
  if (body.v !== TX_VERSION) throw schema(`unsupported transaction version ${body.v}`, "v");
  if (typeof body.network !== "string" || !NETWORK.test(body.network)) throw schema("network must be a lowercase id", "network");
  if (typeof body.type !== "string" || !TYPE.test(body.type)) throw schema("type must look like contract.action", "type");
  if (!isPlainObject(body.payload)) throw schema("payload must be a JSON object", "payload");
  const { depth, longest } = payloadShape(body.payload);
  if (depth > TX_LIMITS.maxPayloadDepth) {
    throw new TxError("oversize", `payload is nested deeper than ${TX_LIMITS.maxPayloadDepth}`, "payload");
  }
  if (longest > TX_LIMITS.maxStringChars) {
    throw new TxError("oversize", `a payload string is longer than ${TX_LIMITS.maxStringChars}`, "payload");
  }
  if (typeof body.sender !== "string" || !isDidKey(body.sender)) throw schema("sender must be an Ed25519 did:key", "sender");
  if (typeof body.nonce !== "string" || !NONCE.test(body.nonce)) throw schema("nonce must be 8-64 of [A-Za-z0-9_-]", "nonce");
  if (!Number.isSafeInteger(body.expires) || body.expires <= 0) throw schema("expires must be positive Unix seconds", "expires");
}

function canonicalText(value, parameter) {
  try {
    return canonicalize(value);
  } catch (e) {
    throw schema(`${parameter} is not in the ledger's JSON model: ${e.message}`, parameter);
  }
}

/** DOMAIN_TX || JCS(body): what the sender signs and what tx_id hashes. */
export function signedBytes(body) {
  return concat(utf8(DOMAIN_TX), utf8(canonicalText(body, "payload")));
}

/** A default nonce: 16 random bytes, base64url without padding (22 characters). */
export function newNonce() {
  return b64urlEncode(randomBytes(16));
}

/**
 * Sign a transaction as identity (keyring's {did, privateKey}) and return its wire form, the
 * exact bytes (as a string) Python's sign_transaction produces for the same inputs and nonce.
 * The signature is checked against identity.did before anything is returned.
 */
export async function signEnvelope(identity, { network, type, payload, expires, nonce = newNonce() }) {
  const body = { v: TX_VERSION, network, type, payload, sender: identity?.did, nonce, expires };
  checkBody(body);
  const message = signedBytes(body);
  const signature = await sign(identity.privateKey, message);
  if (!(await verify(publicKeyFromDid(identity.did), message, signature))) {
    throw new TxError("bad_signature", "the signing key is not the key of the identity's did", "sig");
  }
  const wire = canonicalText({ ...body, sig: b64urlEncode(signature) }, "payload");
  if (utf8(wire).length > TX_LIMITS.maxTxBytes) {
    throw new TxError("oversize", `a transaction is at most ${TX_LIMITS.maxTxBytes} bytes`, "transaction");
  }
  return wire;
}

/**
 * Parse untrusted wire bytes as the node's intake does (decode_transaction); the signature
 * is NOT verified here. Returns {body, signature, txId, wire}. Throws TxError.
 * 1. size; 2. UTF-8, strict JSON; 3. exactly the wire keys; 4-5. payload limits and field
 * checks; 6. sig is 86 characters of canonical base64url; 7. the bytes are the canonical form.
 */
export async function decodeTransaction(wire) {
  const raw = typeof wire === "string" ? utf8(wire) : wire;
  // 1.
  if (raw.length > TX_LIMITS.maxTxBytes) throw new TxError("oversize", `a transaction is at most ${TX_LIMITS.maxTxBytes} bytes`, "transaction");
  // 2.
  let obj;
  try {
    obj = parseJson(fromUtf8(raw), { maxDepth: TX_LIMITS.maxPayloadDepth + 2 });
  } catch (e) {
    throw new TxError("malformed", `not a transaction: ${e.message}`, "transaction");
  }
  // 3.
  if (!isPlainObject(obj)) throw schema("a transaction is a JSON object", "transaction");
  for (const key of WIRE_KEYS) if (!Object.hasOwn(obj, key)) throw schema(`${key} is missing`, key);
  if (Object.keys(obj).length !== WIRE_KEYS.length) throw schema("unexpected key", "transaction");
  // 4-5.
  const { sig, ...body } = obj;
  checkBody(body);
  // 6.
  if (typeof sig !== "string" || !SIG.test(sig)) throw schema("sig must be 86 characters of base64url", "sig");
  let signature;
  try {
    signature = b64urlDecode(sig);
  } catch {
    throw schema("sig is not canonical base64url", "sig");
  }
  // 7.
  if (canonicalText(obj, "transaction") !== fromUtf8(raw)) {
    throw new TxError("non_canonical", "not the RFC 8785 canonical encoding", "transaction");
  }
  const message = signedBytes(body);
  return { body, signature, txId: await sha256(message), wire: raw, message };
}

/** RFC 8032 §5.1.7 over DOMAIN_TX || JCS(body) with the key the sender's did:key names. */
export async function verifyTransactionSignature(decoded) {
  if (!(await verify(publicKeyFromDid(decoded.body.sender), decoded.message, decoded.signature))) {
    throw new TxError("bad_signature", "the signature does not verify under the sender's key", "sig");
  }
}
