// did:key for Ed25519 keys (W3C CCG did:key method, §Ed25519), as
// src/medledger/core/identity/did_key.py: "did:key:" + multibase base58btc ("z") of the
// multicodec ed25519-pub varint prefix (0xed 0x01) and the 32-byte public key. Parsing accepts
// only that form, one spelling per key. Pure: no I/O.

import { concat } from "./encoding.js";

export class DidError extends Error {
  constructor(message) {
    super(message);
    this.name = "DidError";
  }
}

const PREFIX = "did:key:z";
const ED25519_MULTICODEC = Uint8Array.of(0xed, 0x01);
const PUBLIC_KEY_SIZE = 32;
/** did:key:z + base58 of 34 bytes is at most 48 characters after the prefix. */
export const MAX_DID_LENGTH = 64;

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));

function base58Encode(bytes) {
  const digits = []; // base-58 digits, least significant first
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "";
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += "1";
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]];
  return out;
}

function base58Decode(text) {
  const bytes = []; // least significant first
  for (const c of text) {
    let carry = INDEX.get(c);
    if (carry === undefined) throw new DidError("did:key is not valid base58btc");
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  let zeros = 0;
  while (zeros < text.length && text[zeros] === "1") zeros++;
  return Uint8Array.from([...new Array(zeros).fill(0), ...bytes.reverse()]);
}

/** The did:key of a raw 32-byte Ed25519 public key. */
export function didFromPublicKey(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== PUBLIC_KEY_SIZE) {
    throw new DidError("an Ed25519 public key is 32 bytes");
  }
  return PREFIX + base58Encode(concat(ED25519_MULTICODEC, raw));
}

/** The raw Ed25519 public key a did:key names; DidError for anything else. */
export function publicKeyFromDid(did) {
  if (typeof did !== "string" || did.length > MAX_DID_LENGTH) throw new DidError("not a did:key");
  if (!did.startsWith(PREFIX)) throw new DidError("only did:key with base58btc (z...) is supported");
  const raw = base58Decode(did.slice(PREFIX.length));
  if (raw.length !== 2 + PUBLIC_KEY_SIZE || raw[0] !== 0xed || raw[1] !== 0x01) {
    throw new DidError("did:key is not an Ed25519 key");
  }
  const publicKey = raw.slice(2);
  if (didFromPublicKey(publicKey) !== did) throw new DidError("did:key is not in canonical form");
  return publicKey;
}

/** Whether a value is an Ed25519 did:key in canonical form. */
export function isDidKey(value) {
  try {
    publicKeyFromDid(value);
    return true;
  } catch {
    return false;
  }
}
