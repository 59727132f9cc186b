// Ed25519 (RFC 8032) through WebCrypto: import a 32-byte seed as a private CryptoKey, derive
// the public key, sign, verify. The seed is wrapped in its PKCS#8 form (RFC 8410 §7) to import
// it; a key imported with extractable: false can sign but never give its seed back, which is
// what the keyring stores. Pure apart from WebCrypto.

import { b64urlDecode, concat } from "./encoding.js";

export const SEED_SIZE = 32;
export const PUBLIC_KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;
const ALGORITHM = { name: "Ed25519" };
// PrivateKeyInfo { version 0, AlgorithmIdentifier { id-Ed25519 1.3.101.112 },
// OCTET STRING { CurvePrivateKey OCTET STRING (32 bytes) } }
const PKCS8_PREFIX = Uint8Array.of(
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
);

function checkBytes(value, size, what) {
  if (!(value instanceof Uint8Array) || (size !== undefined && value.length !== size)) {
    throw new TypeError(`${what} must be a Uint8Array${size === undefined ? "" : ` of ${size} bytes`}`);
  }
}

/** The seed as a private Ed25519 CryptoKey for signing (non-extractable unless asked). */
export async function importSeed(seed, { extractable = false } = {}) {
  checkBytes(seed, SEED_SIZE, "an Ed25519 seed");
  const der = concat(PKCS8_PREFIX, seed);
  try {
    return await crypto.subtle.importKey("pkcs8", der, ALGORITHM, extractable, ["sign"]);
  } finally {
    der.fill(0);
  }
}

/** The raw 32-byte public key of a seed (RFC 8032 §5.1.5), via a temporary extractable key. */
export async function publicKeyOf(seed) {
  const key = await importSeed(seed, { extractable: true });
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const publicKey = b64urlDecode(jwk.x);
  if (publicKey.length !== PUBLIC_KEY_SIZE) throw new Error("WebCrypto gave a malformed Ed25519 key");
  return publicKey;
}

/** The 64-byte signature of bytes by a private Ed25519 CryptoKey. */
export async function sign(privateKey, bytes) {
  if (!(privateKey instanceof CryptoKey) || privateKey.type !== "private" || privateKey.algorithm.name !== "Ed25519") {
    throw new TypeError("sign() takes a private Ed25519 CryptoKey");
  }
  checkBytes(bytes, undefined, "the message");
  return new Uint8Array(await crypto.subtle.sign(ALGORITHM, privateKey, bytes));
}

/**
 * Whether signature is an RFC 8032 §5.1.7 signature of message under the raw public key.
 * False for a wrong length, a key that is not a curve point, or a signature that does not
 * verify; a TypeError only for arguments that are not bytes.
 */
export async function verify(publicKeyRaw, message, signature) {
  checkBytes(publicKeyRaw, undefined, "the public key");
  checkBytes(message, undefined, "the message");
  checkBytes(signature, undefined, "the signature");
  if (publicKeyRaw.length !== PUBLIC_KEY_SIZE || signature.length !== SIGNATURE_SIZE) return false;
  let key;
  try {
    key = await crypto.subtle.importKey("raw", publicKeyRaw, ALGORITHM, false, ["verify"]);
  } catch {
    return false;
  }
  return crypto.subtle.verify(ALGORITHM, key, signature, message);
}
