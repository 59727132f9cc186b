// Bytes and text: UTF-8, base64 (RFC 4648 §4 and §5), hex, concatenation and comparison.
//
// Every decoder is strict and accepts one spelling per value (the Python side's rule: "bytes
// are the truth"), so a value that decodes re-encodes to the text that was received. Decoders
// throw EncodingError; nothing here returns a bare false for bad input. Pure: no I/O.

export class EncodingError extends Error {
  constructor(message) {
    super(message);
    this.name = "EncodingError";
  }
}

const encoder = new TextEncoder();
// fatal: invalid UTF-8 throws; ignoreBOM: a leading U+FEFF is kept, as Python keeps it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function bytesOf(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new EncodingError(`${what} must be bytes (a Uint8Array)`);
}

/** UTF-8 bytes of a string; a lone surrogate (not Unicode text) throws. */
export function utf8(str) {
  if (typeof str !== "string") throw new EncodingError("utf8() takes a string");
  if (!str.isWellFormed()) throw new EncodingError("the text holds a lone surrogate: not Unicode");
  return encoder.encode(str);
}

/** The string of UTF-8 bytes; invalid UTF-8 throws. */
export function fromUtf8(bytes) {
  try {
    return decoder.decode(bytesOf(bytes, "fromUtf8() input"));
  } catch (e) {
    if (e instanceof EncodingError) throw e;
    throw new EncodingError("the bytes are not valid UTF-8");
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));
const B64URL_INDEX = new Map([...B64URL].map((c, i) => [c, i]));
const B64_PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64URL_UNPADDED = /^[A-Za-z0-9_-]*$/;

function encode64(bytes, alphabet, pad) {
  bytes = bytesOf(bytes, "base64 input");
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? "==" : "");
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? "=" : "");
  }
  return out;
}

function decode64(text, index) {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const c of text) {
    value = (value << 6) | index.get(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (value >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/** Standard base64 with padding (RFC 4648 §4). */
export function b64encode(bytes) {
  return encode64(bytes, B64, true);
}

/** Strict standard base64: padding required, no whitespace, unused bits zero (canonical). */
export function b64decode(str) {
  if (typeof str !== "string" || !B64_PADDED.test(str)) {
    throw new EncodingError("not valid base64");
  }
  const raw = decode64(str.replace(/=+$/, ""), B64_INDEX);
  if (b64encode(raw) !== str) throw new EncodingError("not canonical base64");
  return raw;
}

/** base64url without padding (RFC 4648 §5), as transaction signatures and nonces use. */
export function b64urlEncode(bytes) {
  return encode64(bytes, B64URL, false);
}

/** Strict inverse of b64urlEncode: no padding, unused bits zero. */
export function b64urlDecode(str) {
  if (typeof str !== "string" || !B64URL_UNPADDED.test(str) || str.length % 4 === 1) {
    throw new EncodingError("not valid base64url");
  }
  const raw = decode64(str, B64URL_INDEX);
  if (b64urlEncode(raw) !== str) throw new EncodingError("not canonical base64url");
  return raw;
}

/** Lowercase hex. */
export function hexEncode(bytes) {
  bytes = bytesOf(bytes, "hex input");
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Strict lowercase hex (one spelling per value), even length. */
export function hexDecode(str) {
  if (typeof str !== "string" || str.length % 2 !== 0 || !/^[0-9a-f]*$/.test(str)) {
    throw new EncodingError("not lowercase hex of whole bytes");
  }
  const out = new Uint8Array(str.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(str.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The bytes of each argument, one after the other, in a new Uint8Array. */
export function concat(...arrays) {
  const parts = arrays.map((a) => bytesOf(a, "concat() argument"));
  const out = new Uint8Array(parts.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Whether two byte strings are equal, in time that depends only on their lengths. */
export function equalBytes(a, b) {
  a = bytesOf(a, "equalBytes() argument");
  b = bytesOf(b, "equalBytes() argument");
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** SHA-256 (WebCrypto) of bytes, as a Uint8Array(32). */
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytesOf(bytes, "sha256() input")));
}

/** n cryptographically random bytes (WebCrypto). */
export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}
