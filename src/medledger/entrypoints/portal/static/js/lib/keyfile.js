// Opening passphrase-encrypted participant key files, format medledger-key/v1, in the browser
// (src/medledger/adapters/keystore.py, ADR 0010):
//
//   key        = scrypt(UTF-8(NFC(passphrase)), salt, n, r, p, dkLen=32)       RFC 7914
//   seed       = AES-256-GCM-Decrypt(key, nonce, ciphertext, aad)               SP 800-38D
//   aad        = "medledger/key-file/v1\0" || JCS({format, did, kdf, cipher})    RFC 8785
//
// Every field and every scrypt bound is checked BEFORE scrypt runs, so a hostile file cannot
// make the page burn memory; every decryption failure is the one error "wrong passphrase or
// damaged key file"; the seed must be the key of the file's did. scrypt is the vendored
// @noble/hashes (WebCrypto has none); AES-GCM is WebCrypto. No I/O: the page reads the file.

import { scryptAsync } from "../../vendor/noble-hashes/scrypt.js";
import { publicKeyFromDid, didFromPublicKey } from "./did.js";
import { publicKeyOf } from "./ed25519.js";
import { b64decode, concat, EncodingError, utf8 } from "./encoding.js";
import { canonicalize, JsonError, parseJson } from "./jcs.js";

export const KEY_FILE_FORMAT = "medledger-key/v1";
export const DECRYPTION_FAILED = "wrong passphrase or damaged key file";
const KDF_NAME = "scrypt";
const CIPHER_NAME = "aes-256-gcm";
const AAD_DOMAIN = "medledger/key-file/v1\u0000";
const MIN_SCRYPT_N = 2 ** 14;
const MAX_SCRYPT_N = 2 ** 20;
const SCRYPT_R = 8;
const MAX_SCRYPT_R = 8;
const MAX_SCRYPT_P = 4;
const SALT_SIZE = 16;
const MAX_SALT_SIZE = 64;
const NONCE_SIZE = 12;
const CIPHERTEXT_SIZE = 32 + 16; // the seed and its GCM tag
const MAX_PASSPHRASE_CHARS = 1024;
/** A v1 file is about 400 bytes; anything much larger is not one of ours. */
export const MAX_KEY_FILE_BYTES = 4096;
const TOP_FIELDS = ["cipher", "ciphertext", "did", "format", "kdf", "nonce"];
const KDF_FIELDS = ["n", "name", "p", "r", "salt"];

/**
 * kind: "invalid" (not a well-formed v1 file, or bounds exceeded: `parameter` names the
 * field), "decryption" (wrong passphrase or any altered byte: one message for both) or
 * "tamper" (decrypts to a key other than its did).
 */
export class KeyFileError extends Error {
  constructor(message, { kind = "invalid", parameter = null } = {}) {
    super(message);
    this.name = "KeyFileError";
    this.kind = kind;
    this.parameter = parameter;
  }
}

const invalid = (message, parameter) => new KeyFileError(message, { kind: "invalid", parameter });

function isInt(value) {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function checkFields(obj, expected, what) {
  const keys = Object.keys(obj).sort();
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    const missing = expected.filter((k) => !Object.hasOwn(obj, k));
    const extra = keys.filter((k) => !expected.includes(k)).length;
    throw invalid(`${what} is missing fields [${missing.join(", ")}] or has ${extra} unexpected`, what);
  }
}

function unb64(value, field) {
  if (typeof value !== "string") throw invalid(`${field} must be a base64 string`, field);
  try {
    return b64decode(value);
  } catch (e) {
    if (e instanceof EncodingError) throw invalid(`${field} is not canonical base64`, field);
    throw e;
  }
}

/** 1-2. Size, then strict JSON (unique keys, integers only). */
function loadDocument(text) {
  let bytes;
  try {
    bytes = typeof text === "string" ? utf8(text) : text;
  } catch {
    throw invalid("key file is not valid JSON", "key_file");
  }
  if (!(bytes instanceof Uint8Array)) throw new TypeError("a key file is text or bytes");
  if (bytes.length > MAX_KEY_FILE_BYTES) {
    throw invalid(`key file is larger than ${MAX_KEY_FILE_BYTES} bytes`, "key_file");
  }
  let document;
  try {
    document = parseJson(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes), {
      maxDepth: 4,
    });
  } catch (e) {
    if (e instanceof JsonError || e instanceof TypeError) throw invalid("key file is not valid JSON", "key_file");
    throw e;
  }
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw invalid("key file is not a JSON object", "key_file");
  }
  return document;
}

/** 3-6. Format first, then the fields, cipher, kdf and the scrypt bounds (before any work). */
function parseKeyFile(text) {
  const document = loadDocument(text);
  if (document.format !== KEY_FILE_FORMAT) throw invalid("unsupported key file format", "format");
  checkFields(document, TOP_FIELDS, "key file");
  if (document.cipher !== CIPHER_NAME) throw invalid("unsupported key file cipher", "cipher");
  const kdf = document.kdf;
  if (kdf === null || typeof kdf !== "object" || Array.isArray(kdf)) throw invalid("kdf must be an object", "kdf");
  if (kdf.name !== KDF_NAME) throw invalid("unsupported key file kdf", "kdf.name");
  checkFields(kdf, KDF_FIELDS, "kdf");
  const salt = unb64(kdf.salt, "kdf.salt");
  const { n, r, p } = kdf;
  if (salt.length < SALT_SIZE || salt.length > MAX_SALT_SIZE) {
    throw invalid(`scrypt salt must be ${SALT_SIZE}..${MAX_SALT_SIZE} bytes`, "kdf.salt");
  }
  if (!isInt(n) || n < MIN_SCRYPT_N || n > MAX_SCRYPT_N) throw invalid("scrypt n must be in 2**14..2**20", "kdf.n");
  if (n & (n - 1)) throw invalid("scrypt n must be a power of two", "kdf.n");
  if (!isInt(r) || r < 1 || r > MAX_SCRYPT_R) throw invalid(`scrypt r must be in 1..${MAX_SCRYPT_R}`, "kdf.r");
  if (n * r < MIN_SCRYPT_N * SCRYPT_R) throw invalid("scrypt n * r is below the 16 MiB floor", "kdf.r");
  if (!isInt(p) || p < 1 || p > MAX_SCRYPT_P) throw invalid(`scrypt p must be in 1..${MAX_SCRYPT_P}`, "kdf.p");
  const did = document.did;
  if (typeof did !== "string") throw invalid("did must be a string", "did");
  try {
    publicKeyFromDid(did);
  } catch {
    throw invalid("did is not an Ed25519 did:key in canonical form", "did");
  }
  const nonce = unb64(document.nonce, "nonce");
  if (nonce.length !== NONCE_SIZE) throw invalid(`nonce must be ${NONCE_SIZE} bytes`, "nonce");
  const ciphertext = unb64(document.ciphertext, "ciphertext");
  if (ciphertext.length !== CIPHERTEXT_SIZE) throw invalid(`ciphertext must be ${CIPHERTEXT_SIZE} bytes`, "ciphertext");
  return { did, kdf: { name: KDF_NAME, salt: kdf.salt, n, r, p }, saltBytes: salt, nonce, ciphertext };
}

/** What the GCM tag binds besides the seed: domain || JCS({format, did, kdf, cipher}). */
function keyFileAad(did, kdf) {
  return concat(utf8(AAD_DOMAIN), utf8(canonicalize({ format: KEY_FILE_FORMAT, did, kdf, cipher: CIPHER_NAME })));
}

/** NFC, so the same passphrase typed on two systems (precomposed or not) opens the file. */
function passphraseBytes(passphrase) {
  if (typeof passphrase !== "string" || [...passphrase].length > MAX_PASSPHRASE_CHARS) {
    throw invalid("passphrase must be a string of at most 1024 characters", "passphrase");
  }
  if (!passphrase.isWellFormed()) throw invalid("passphrase is not valid Unicode", "passphrase");
  return utf8(passphrase.normalize("NFC"));
}

/**
 * Decrypt a medledger-key/v1 file (its text, or its bytes) with a passphrase: {did, seed}.
 * The caller should import the seed at once (ed25519.importSeed, non-extractable) and zero it.
 * Throws KeyFileError: "invalid" before any scrypt work, "decryption" for every decryption
 * failure (DECRYPTION_FAILED), "tamper" if the seed is not the key of the file's did.
 */
export async function openKeyFile(text, passphrase) {
  const file = parseKeyFile(text);
  const secret = passphraseBytes(passphrase);
  const { n: N, r, p } = file.kdf;
  const derived = await scryptAsync(secret, file.saltBytes, {
    N, r, p, dkLen: 32, maxmem: 128 * r * (N + p + 1),
  });
  secret.fill(0);
  let seed;
  try {
    const key = await crypto.subtle.importKey("raw", derived, { name: "AES-GCM" }, false, ["decrypt"]);
    seed = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: file.nonce, additionalData: keyFileAad(file.did, file.kdf), tagLength: 128 },
        key,
        file.ciphertext,
      ),
    );
  } catch {
    throw new KeyFileError(DECRYPTION_FAILED, { kind: "decryption" });
  } finally {
    derived.fill(0);
  }
  // The tag proves the file's writer sealed this seed; a seed of another key means it was broken.
  if (didFromPublicKey(await publicKeyOf(seed)) !== file.did) {
    seed.fill(0);
    throw new KeyFileError("key file decrypts to a key other than its did", { kind: "tamper" });
  }
  return { did: file.did, seed };
}
