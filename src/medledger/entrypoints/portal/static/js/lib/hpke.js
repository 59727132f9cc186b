// HPKE (RFC 9180) in the browser: the receiving side of one suite, in base mode, single-shot.
//
// The suite is the one src/medledger/core/crypto/key_wrap.py seals with: DHKEM(X25519,
// HKDF-SHA256) (kem_id 0x0020), HKDF-SHA256 (kdf_id 0x0001), AES-256-GCM (aead_id 0x0002).
// AES-128-GCM (aead_id 0x0001) is accepted by open() only so that RFC 9180 Appendix A.1.1 can
// be checked end to end; nothing in medledger seals with it. What this module handles:
//
// - generateKeyPair(): a per-session X25519 key pair; the private key is a NON-EXTRACTABLE
//   WebCrypto key (it can derive bits, never be read back), the public key raw bytes.
// - importPrivateKey(raw): a known X25519 private key (test vectors), non-extractable.
// - open(recipient, {enc, info, aad, ciphertext}): RFC 9180 §6.1 Open (SetupBaseR, then
//   ContextR.Open at sequence 0), the plaintext bytes.
// - openKey(recipient, {...}): the same, but the plaintext is a 32-byte AES-256-GCM key that
//   WebCrypto unwraps straight into a non-extractable CryptoKey: the data key never exists as
//   bytes in JavaScript.
//
// Steps follow RFC 9180: §4.1 Decap (X25519 through WebCrypto deriveBits, ExtractAndExpand),
// §5.1 KeySchedule (LabeledExtract / LabeledExpand as HMAC-SHA256, §4), §5.2 Open with
// nonce = base_nonce XOR 0. Every failure after the caller's own arguments were checked --
// a low-order or malformed enc, a wrong key, another info or aad, a flipped byte -- throws the
// same HpkeError("decryption failed"), as unwrap_key does in Python. The intermediate secrets
// (DH output, shared secret, key schedule) are zeroed after use. Pure apart from WebCrypto.

import { b64urlDecode, concat, utf8 } from "./encoding.js";

export const KEM_ID = 0x0020;
export const KDF_ID = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
export const ENC_SIZE = 32; // Nenc for X25519
export const PUBLIC_KEY_SIZE = 32; // Npk
const NH = 32; // Nh for HKDF-SHA256 (also Nsecret)
const NN = 12; // Nn for AES-GCM
const NK = Object.freeze({ [AEAD_AES_128_GCM]: 16, [AEAD_AES_256_GCM]: 32 });
const TAG_SIZE = 16;
/** A bound on info and aad (RFC 9180 §7.2.1 lets an implementation choose one). */
export const MAX_INFO_BYTES = 64 * 1024;
export const DECRYPTION_FAILED = "decryption failed";

const X25519 = { name: "X25519" };
// PrivateKeyInfo { version 0, AlgorithmIdentifier { id-X25519 1.3.101.110 },
// OCTET STRING { CurvePrivateKey OCTET STRING (32 bytes) } } (RFC 8410 §7)
const PKCS8_PREFIX = Uint8Array.of(
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
);
const HPKE_V1 = utf8("HPKE-v1");
const KEM_SUITE_ID = concat(utf8("KEM"), i2osp(KEM_ID, 2));
const EMPTY = new Uint8Array(0);

/** The one error for every way a ciphertext can fail to open. */
export class HpkeError extends Error {
  constructor() {
    super(DECRYPTION_FAILED);
    this.name = "HpkeError";
  }
}

function i2osp(n, size) {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--, n = Math.floor(n / 256)) out[i] = n & 0xff;
  return out;
}

function hpkeSuiteId(aeadId) {
  return concat(utf8("HPKE"), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(aeadId, 2));
}

function checkBytes(value, what, { size, max } = {}) {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (size !== undefined && value.length !== size) throw new TypeError(`${what} must be ${size} bytes`);
  if (max !== undefined && value.length > max) throw new TypeError(`${what} must be at most ${max} bytes`);
}

function checkRecipient(recipient) {
  const key = recipient?.privateKey;
  if (!(key instanceof CryptoKey) || key.type !== "private" || key.algorithm.name !== "X25519") {
    throw new TypeError("recipient.privateKey must be a private X25519 CryptoKey");
  }
  checkBytes(recipient.publicKey, "recipient.publicKey", { size: PUBLIC_KEY_SIZE });
}

// --- RFC 9180 §4: HKDF-SHA256 with labels, through WebCrypto HMAC --------------------------------
async function hmac(key, message) {
  const hmacKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
}

/** LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm). */
async function labeledExtract(suiteId, salt, label, ikm) {
  // RFC 5869 §2.2: an absent salt is Nh zero bytes (WebCrypto refuses an empty HMAC key).
  const labeledIkm = concat(HPKE_V1, suiteId, utf8(label), ikm);
  try {
    return await hmac(salt.length ? salt : new Uint8Array(NH), labeledIkm);
  } finally {
    labeledIkm.fill(0);
  }
}

/** LabeledExpand(prk, label, info, L) for L <= Nh: HKDF-Expand needs a single block, T(1). */
async function labeledExpand(suiteId, prk, label, info, length) {
  if (length > NH) throw new RangeError("LabeledExpand here gives at most Nh bytes");
  const labeledInfo = concat(i2osp(length, 2), HPKE_V1, suiteId, utf8(label), info, Uint8Array.of(1));
  const block = await hmac(prk, labeledInfo);
  const out = block.slice(0, length);
  block.fill(0);
  return out;
}

// --- RFC 9180 §4.1: DHKEM(X25519, HKDF-SHA256) Decap --------------------------------------------
async function decap(enc, recipient) {
  let pkE;
  try {
    pkE = await crypto.subtle.importKey("raw", enc, X25519, false, []);
  } catch {
    throw new HpkeError();
  }
  let dh;
  try {
    // WebCrypto refuses an all-zero X25519 output (a low-order enc), RFC 9180 §7.1.4.
    dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: pkE }, recipient.privateKey, 256));
  } catch {
    throw new HpkeError();
  }
  if (dh.every((b) => b === 0)) throw new HpkeError(); // belt and braces: never trust a zero DH
  const eaePrk = await labeledExtract(KEM_SUITE_ID, EMPTY, "eae_prk", dh);
  dh.fill(0);
  const kemContext = concat(enc, recipient.publicKey);
  const sharedSecret = await labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", kemContext, NH);
  eaePrk.fill(0);
  return sharedSecret;
}

// --- RFC 9180 §5.1: KeySchedule, mode_base (no PSK) ---------------------------------------------
async function keySchedule(aeadId, sharedSecret, info) {
  const suiteId = hpkeSuiteId(aeadId);
  const pskIdHash = await labeledExtract(suiteId, EMPTY, "psk_id_hash", EMPTY);
  const infoHash = await labeledExtract(suiteId, EMPTY, "info_hash", info);
  const context = concat(Uint8Array.of(0x00), pskIdHash, infoHash);
  const secret = await labeledExtract(suiteId, sharedSecret, "secret", EMPTY);
  try {
    const key = await labeledExpand(suiteId, secret, "key", context, NK[aeadId]);
    const baseNonce = await labeledExpand(suiteId, secret, "base_nonce", context, NN);
    return { key, baseNonce };
  } finally {
    secret.fill(0);
  }
}

/** SetupBaseR (§5.1.1) then the AEAD key as a non-extractable CryptoKey for `usages`. */
async function setupBaseR(recipient, { enc, info }, aeadId, usages) {
  const sharedSecret = await decap(enc, recipient);
  const { key, baseNonce } = await keySchedule(aeadId, sharedSecret, info);
  sharedSecret.fill(0);
  try {
    const aeadKey = await crypto.subtle.importKey("raw", key, { name: "AES-GCM" }, false, usages);
    // §5.2 ComputeNonce(seq = 0): base_nonce XOR I2OSP(0, Nn) is base_nonce itself.
    return { aeadKey, nonce: baseNonce };
  } finally {
    key.fill(0);
  }
}

function checkOpenArguments(recipient, { enc, info, aad, ciphertext }) {
  checkRecipient(recipient);
  checkBytes(enc, "enc");
  checkBytes(info, "info", { max: MAX_INFO_BYTES });
  checkBytes(aad, "aad", { max: MAX_INFO_BYTES });
  checkBytes(ciphertext, "ciphertext");
  if (enc.length !== ENC_SIZE || ciphertext.length < TAG_SIZE) throw new HpkeError();
}

/** A fresh X25519 key pair for one session: {privateKey (non-extractable), publicKey (32 bytes)}. */
export async function generateKeyPair() {
  const pair = await crypto.subtle.generateKey(X25519, false, ["deriveBits"]);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey };
}

/** A known raw X25519 private key (RFC 7748) as {privateKey (non-extractable), publicKey}. */
export async function importPrivateKey(raw) {
  checkBytes(raw, "an X25519 private key", { size: 32 });
  const der = concat(PKCS8_PREFIX, raw);
  try {
    // The public key comes from a transient extractable copy; only the non-extractable one is kept.
    const exportable = await crypto.subtle.importKey("pkcs8", der, X25519, true, ["deriveBits"]);
    const jwk = await crypto.subtle.exportKey("jwk", exportable);
    const publicKey = b64urlDecode(jwk.x);
    jwk.d = "";
    const privateKey = await crypto.subtle.importKey("pkcs8", der, X25519, false, ["deriveBits"]);
    return { privateKey, publicKey };
  } finally {
    der.fill(0);
  }
}

/**
 * RFC 9180 §6.1 single-shot Open in mode_base: the plaintext of `ciphertext` sealed to
 * `recipient` ({privateKey, publicKey} as generateKeyPair gives) with this `info` and `aad`.
 * Throws HpkeError for anything wrong with enc or ciphertext; TypeError for bad arguments.
 */
export async function open(recipient, { enc, info, aad = EMPTY, ciphertext, aeadId = AEAD_AES_256_GCM }) {
  if (!Object.hasOwn(NK, aeadId)) throw new TypeError("aeadId must be AES-128-GCM or AES-256-GCM");
  checkOpenArguments(recipient, { enc, info, aad, ciphertext });
  const { aeadKey, nonce } = await setupBaseR(recipient, { enc, info }, aeadId, ["decrypt"]);
  try {
    const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
    return new Uint8Array(await crypto.subtle.decrypt(params, aeadKey, ciphertext));
  } catch {
    throw new HpkeError();
  }
}

/**
 * As open(), for the suite's own AEAD, where the plaintext is a 32-byte key: WebCrypto
 * unwraps it into a non-extractable AES-256-GCM CryptoKey for `usages` (default decrypt).
 */
export async function openKey(recipient, { enc, info, aad = EMPTY, ciphertext }, usages = ["decrypt"]) {
  checkOpenArguments(recipient, { enc, info, aad, ciphertext });
  if (ciphertext.length !== 32 + TAG_SIZE) throw new HpkeError();
  const { aeadKey, nonce } = await setupBaseR(recipient, { enc, info }, AEAD_AES_256_GCM, ["unwrapKey"]);
  let key;
  try {
    const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
    key = await crypto.subtle.unwrapKey("raw", ciphertext, aeadKey, params, { name: "AES-GCM" }, false, usages);
  } catch {
    throw new HpkeError();
  }
  if (key.algorithm.length !== 256) throw new HpkeError();
  return key;
}
