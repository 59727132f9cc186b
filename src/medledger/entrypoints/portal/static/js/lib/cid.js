// Content identifiers of off-chain blobs in the browser (src/medledger/core/cid.py, ADR 0011):
//
//   "b" + base32-lower-nopad( 0x01 | 0x55 | 0x12 0x20 | sha256(data) )   (59 characters)
//
// parseCid accepts exactly that form (CIDv1, raw codec, sha2-256, multibase base32 lower, no
// padding, the canonical last character) and nothing else, so one blob has one CID string.
// verifyCid checks bytes against a CID with a constant-time compare. Throws CidError. Pure
// apart from WebCrypto SHA-256.

import { concat, equalBytes, sha256 } from "./encoding.js";

export const CID_PREFIX = Uint8Array.of(0x01, 0x55, 0x12, 0x20);
export const CID_LENGTH = 59;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
const INDEX = new Map([...ALPHABET].map((c, i) => [c, i]));
const BODY = /^b[a-z2-7]{58}$/;

export class CidError extends Error {
  constructor(message) {
    super(message);
    this.name = "CidError";
  }
}

function base32(bytes) {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

function fromBase32(text) {
  const out = [];
  let bits = 0;
  let value = 0;
  for (const c of text) {
    value = (value << 5) | INDEX.get(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
    value &= (1 << bits) - 1;
  }
  return Uint8Array.from(out);
}

/** The CID of a blob whose SHA-256 digest is `digest`. */
export function cidFromDigest(digest) {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new CidError("a sha2-256 digest is 32 bytes");
  return "b" + base32(concat(CID_PREFIX, digest));
}

/** The CID of `data`. */
export async function cidFor(data) {
  return cidFromDigest(await sha256(data));
}

/**
 * The SHA-256 digest a CID names (cid.py parse_cid): 1. exactly 59 characters; 2. "b" then
 * lower-case base32 only; 3. version 1, codec raw, sha2-256 of 32 bytes; 4. canonical.
 */
export function parseCid(text) {
  if (typeof text !== "string" || text.length !== CID_LENGTH) throw new CidError(`a blob CID has ${CID_LENGTH} characters`);
  if (!BODY.test(text)) throw new CidError("a blob CID is 'b' + lower-case base32");
  const raw = fromBase32(text.slice(1));
  if (!equalBytes(raw.subarray(0, CID_PREFIX.length), CID_PREFIX)) {
    throw new CidError("only CIDv1 with the raw codec and a sha2-256 digest is accepted");
  }
  const digest = raw.slice(CID_PREFIX.length);
  if (cidFromDigest(digest) !== text) throw new CidError("a blob CID is not in canonical form");
  return digest;
}

/** Returns if `data` is the blob `cid` names; CidError if not (digests compared in constant time). */
export async function verifyCid(cid, data) {
  const expected = parseCid(cid);
  if (!equalBytes(await sha256(data), expected)) throw new CidError("the blob does not match its CID");
}
