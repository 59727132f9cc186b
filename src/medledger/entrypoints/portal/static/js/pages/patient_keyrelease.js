// Reading a record the way `medledger records get` does, in the browser (ADR 0012, 0020): the
// custodian releases the record's data key wrapped to a fresh X25519 session key made here;
// the ciphertext is fetched by CID and checked; the key is unwrapped and the record decrypted
// HERE; and the plaintext is checked against the salted commitment anchored on the ledger.
// The node never sees the session's private key, and the page trusts nothing it cannot check.
//
// Steps (each failure is a KeyReleaseError naming the step):
// 1. session: an X25519 key pair (WebCrypto, non-extractable private key);
// 2. a signed request.key_release (decided by the access gate, logged as an access event);
// 3. the blob by its CID: CIDv1 raw sha2-256 base32, recomputed over the bytes received;
// 4. HPKE (RFC 9180) Open, mode_base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM,
//    info = "medledger/key-wrap/v1\0" || JCS({grant, recipient, record_id, version});
// 5. the record: 0x01 || nonce(12) || AES-256-GCM, AAD "medledger/record/v1\0" ||
//    JCS({patient, record_id, resource_type, version});
// 6. the ledger: the anchored version names this CID, and HMAC-SHA256(salt,
//    "medledger/commitment/v1\0" || plaintext) is its commitment.
import { b64decode, concat, equalBytes, hexDecode, hexEncode, sha256, utf8, fromUtf8 } from "../lib/encoding.js";
import { canonicalize } from "../lib/jcs.js";
import { getJson, signedPost } from "./shell.js";

export class KeyReleaseError extends Error {
  constructor(step, message) {
    super(message);
    this.step = step;
  }
}

const WRAP_DOMAIN = "medledger/key-wrap/v1\u0000";
const RECORD_DOMAIN = "medledger/record/v1\u0000";
const COMMITMENT_DOMAIN = "medledger/commitment/v1\u0000";
const WRAPPED_SIZE = 1 + 32 + 32 + 16;
const MAX_BLOB_BYTES = 1024 * 1024 + 64; // MAX_RECORD_PLAINTEXT + framing
const CID_PREFIX = new Uint8Array([0x01, 0x55, 0x12, 0x20]);
const KEM_SUITE = concat(utf8("KEM"), new Uint8Array([0x00, 0x20]));
const HPKE_SUITE = concat(utf8("HPKE"), new Uint8Array([0x00, 0x20, 0x00, 0x01, 0x00, 0x02]));
const HPKE_V1 = utf8("HPKE-v1");

// --- RFC 4648 base32 (lower case, no padding), for the CID --------------------------------
const B32 = "abcdefghijklmnopqrstuvwxyz234567";
function base32(bytes) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export async function cidOf(bytes) {
  return `b${base32(concat(CID_PREFIX, await sha256(bytes)))}`;
}

// --- HKDF-SHA256 (RFC 5869) over WebCrypto HMAC ---------------------------------------------
async function hmac(key, data) {
  // An empty HKDF salt is HashLen zero bytes (RFC 5869 §2.2); HMAC pads keys with zeros anyway.
  const raw = key.length ? key : new Uint8Array(32);
  const k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

async function expand(prk, info, length) {
  let block = new Uint8Array(0);
  let out = new Uint8Array(0);
  for (let i = 1; out.length < length; i += 1) {
    block = await hmac(prk, concat(block, info, new Uint8Array([i])));
    out = concat(out, block);
  }
  return out.slice(0, length);
}

const labeledExtract = (suite, salt, label, ikm) => hmac(salt, concat(HPKE_V1, suite, utf8(label), ikm));
const labeledExpand = (suite, prk, label, info, length) =>
  expand(prk, concat(new Uint8Array([length >> 8, length & 255]), HPKE_V1, suite, utf8(label), info), length);

// --- 1. the session key ---------------------------------------------------------------------
export async function newSession() {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

// --- 4. HPKE Open (RFC 9180 §4.1 Decap, §5.1 KeySchedule, §5.2 Open, mode_base) -------------
export async function hpkeOpen(session, enc, ciphertext, info) {
  const ephemeral = await crypto.subtle.importKey("raw", enc, { name: "X25519" }, false, []);
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: ephemeral }, session.privateKey, 256));
  if (dh.every((b) => b === 0)) throw new Error("low-order point");
  const eaePrk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  const shared = await labeledExpand(KEM_SUITE, eaePrk, "shared_secret", concat(enc, session.publicKey), 32);
  const pskIdHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "psk_id_hash", new Uint8Array(0));
  const infoHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "info_hash", info);
  const context = concat(new Uint8Array([0x00]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, shared, "secret", new Uint8Array(0));
  const key = await labeledExpand(HPKE_SUITE, secret, "key", context, 32);
  const nonce = await labeledExpand(HPKE_SUITE, secret, "base_nonce", context, 12);
  const aead = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
  key.fill(0);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, tagLength: 128 }, aead, ciphertext));
}

function wrapInfo(recordId, version, recipient, grant) {
  return utf8(WRAP_DOMAIN + canonicalize({ grant: grant ?? null, recipient, record_id: recordId, version }));
}

async function openRecord(blob, dataKey, aad) {
  if (blob.length < 1 + 12 + 16 || blob[0] !== 0x01) throw new Error("not a sealed record");
  const key = await crypto.subtle.importKey("raw", dataKey, { name: "AES-GCM" }, false, ["decrypt"]);
  return new Uint8Array(await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: blob.slice(1, 13), additionalData: aad, tagLength: 128 }, key, blob.slice(13)));
}

async function step(name, message, run) {
  try {
    return await run();
  } catch (e) {
    if (e instanceof KeyReleaseError) throw e;
    throw new KeyReleaseError(name, message);
  }
}

async function fetchBlob(cid) {
  const response = await fetch(`/blobs/${encodeURIComponent(cid)}`);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const declared = Number(response.headers.get("content-length") || 0);
  if (declared > MAX_BLOB_BYTES) throw new Error("too large");
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length > MAX_BLOB_BYTES) throw new Error("too large");
  return bytes;
}

/** Reads one record version (latest by default) for the signed-in identity, checked end to end. */
export async function readRecord(identity, { patient, recordId, purpose = "PATRQT", version = null }) {
  // 1-2.
  const session = await newSession();
  const release = await signedPost("/records/key-release", "request.key_release", {
    patient, record_id: recordId, purpose, session_key: hexEncode(session.publicKey),
    ...(version ? { version } : {}),
  });
  // 3.
  const blob = await step("blob", "the ciphertext could not be fetched", () => fetchBlob(release.cid));
  if ((await cidOf(blob)) !== release.cid) {
    throw new KeyReleaseError("cid", "the ciphertext served is not the one its CID names");
  }
  // 4.
  const wrapped = b64decode(release.wrap);
  if (wrapped.length !== WRAPPED_SIZE || wrapped[0] !== 0x01) throw new KeyReleaseError("unwrap", "the released key is malformed");
  const dataKey = await step("unwrap", "the released key does not open with this session's key", () =>
    hpkeOpen(session, wrapped.slice(1, 33), wrapped.slice(33), wrapInfo(recordId, release.version, identity.did, release.grant)));
  // 5.
  const aad = utf8(RECORD_DOMAIN + canonicalize({
    patient, record_id: recordId, resource_type: release.resource_type, version: release.version,
  }));
  const plaintext = await step("decrypt", "the record does not decrypt with the released key", () => openRecord(blob, dataKey, aad));
  dataKey.fill(0);
  // 6.
  const anchored = await getJson(`/ledger/records/${encodeURIComponent(patient)}/${encodeURIComponent(recordId)}`);
  const entry = (anchored.versions || []).find((v) => v.version === release.version);
  if (!entry || entry.cid !== release.cid) {
    throw new KeyReleaseError("ledger", "the ciphertext is not the one anchored on the ledger");
  }
  const salt = hexDecode(release.salt);
  const commitment = await hmac(salt, concat(utf8(COMMITMENT_DOMAIN), plaintext));
  if (!equalBytes(commitment, hexDecode(entry.commitment))) {
    throw new KeyReleaseError("commitment", "the record does not match its commitment on the ledger");
  }
  return {
    version: release.version,
    resourceType: release.resource_type,
    cid: release.cid,
    grant: release.grant,
    height: entry.height,
    content: JSON.parse(fromUtf8(plaintext)),
  };
}
