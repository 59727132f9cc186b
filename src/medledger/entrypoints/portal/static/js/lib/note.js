// C2SP signed notes (c2sp.org/signed-note) carrying tlog checkpoints (c2sp.org/tlog-checkpoint),
// checked in the browser: a port of src/medledger/core/note.py, checkpoint.py and the
// cosignature/v1 verifier of cosignature.py.
//
// verifyCheckpoint checks the note format, the log's Ed25519 signature (type 0x01) on the
// bytes received, optional witness cosigners (type 0x04, cosignature/v1, or 0x01), then parses
// the text in its one canonical form and compares the origin. Throws NoteError (reason says
// which step); never returns a bare false. Pure apart from WebCrypto.

import { verify as ed25519Verify } from "./ed25519.js";
import { b64decode, concat, equalBytes, fromUtf8, hexEncode, sha256, utf8 } from "./encoding.js";

export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;
const KEY_ID_SIZE = 4;
const MAX_TREE_SIZE = 2n ** 64n - 1n;
/** medledger.config.Limits */
export const MAX_CHECKPOINT_BYTES = 16 * 1024;
export const MAX_NOTE_SIGNATURES = 16;
const SIGNATURE_PREFIX = "\u2014 ";
const DECIMAL = /^(?:0|[1-9][0-9]{0,19})$/;
// What Python's str.isspace() calls whitespace (categories Zs, bidi WS/B/S).
const PY_SPACE = /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u; // eslint-disable-line no-control-regex -- U+001C-U+001F are spaces to Python
// signed-note §Format: no ASCII control characters other than newline.
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/; // eslint-disable-line no-control-regex -- finding them is the point

/**
 * reason: "malformed" (format, size, key), "signature" (a known key's signature failed, or
 * none verified), "origin" (another log's checkpoint).
 */
export class NoteError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "NoteError";
    this.reason = reason;
  }
}

const malformed = (message) => new NoteError("malformed", message);

/** signed-note §Format: non-empty, no "+", no Unicode spaces, no control characters. */
export function isValidKeyName(name) {
  return (
    typeof name === "string" && name.length > 0 && !name.includes("+") && !PY_SPACE.test(name) &&
    !/[\u0000-\u001f]/.test(name) && name.isWellFormed() // eslint-disable-line no-control-regex -- finding them is the point
  );
}

/** §Signatures: SHA-256(key name || 0x0A || signature type || public key)[:4]. */
export async function keyId(name, sigType, publicKey) {
  return (await sha256(concat(utf8(name), Uint8Array.of(0x0a, sigType), publicKey))).slice(0, KEY_ID_SIZE);
}

/**
 * Parse a vkey <name>+<hex key ID>+<base64(type || public key)> of type 0x01 (a log key) or,
 * with {types: [0x04]}, a cosignature/v1 witness key. The key ID must be 8 lowercase hex
 * digits and match the name, type and key. Returns {name, keyId, publicKey, sigType}.
 */
export async function parseVerifierKey(vkey, { types = [SIG_TYPE_ED25519] } = {}) {
  if (typeof vkey !== "string" || vkey.length > 1024) throw malformed("verifier key must be a string");
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw malformed("verifier key must be <name>+<hex key ID>+<base64 key>");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  if (!isValidKeyName(name)) throw malformed("vkey has an invalid key name");
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw malformed("vkey key ID must be 8 lowercase hex digits");
  let raw;
  try {
    raw = b64decode(vkey.slice(second + 1));
  } catch {
    throw malformed("vkey is not canonical base64");
  }
  if (raw.length < 2) throw malformed("vkey key material is empty");
  const sigType = raw[0];
  const publicKey = raw.slice(1);
  const kid = await keyId(name, sigType, publicKey);
  if (hexEncode(kid) !== hexId) throw malformed("vkey key ID does not match the key");
  if (!types.includes(sigType) || publicKey.length !== 32) {
    throw malformed(`vkey is not an Ed25519 key of type ${types.map((t) => `0x0${t}`).join("/")}`);
  }
  return { name, keyId: kid, publicKey, sigType };
}

function checkCharacters(bytes) {
  let text;
  try {
    text = fromUtf8(bytes);
  } catch {
    throw malformed("note is not valid UTF-8");
  }
  if (CONTROL.test(text)) throw malformed("note contains a control character");
  return text;
}

function parseSignatureLine(line) {
  if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed("signature line must start with '\u2014 '");
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? "" : rest.slice(0, space);
  if (space < 0 || !isValidKeyName(name)) throw malformed("signature line has an invalid key name");
  let raw;
  try {
    raw = b64decode(rest.slice(space + 1));
  } catch {
    throw malformed("note signature is not canonical base64");
  }
  if (raw.length <= KEY_ID_SIZE) throw malformed("signature is shorter than a key ID");
  return { name, keyId: raw.slice(0, KEY_ID_SIZE), signature: raw.slice(KEY_ID_SIZE) };
}

/** cosignature/v1 §Ed25519 signed message: header, "time <t>", then the note text. */
async function verifyCosignature(verifier, textBytes, signature) {
  if (signature.length !== 72) return false;
  const view = new DataView(signature.buffer, signature.byteOffset, 8);
  const timestamp = view.getBigUint64(0);
  if (timestamp > 2n ** 63n - 1n) return false;
  const message = concat(utf8(`cosignature/v1\ntime ${timestamp}\n`), textBytes);
  return ed25519Verify(verifier.publicKey, message, signature.slice(8));
}

async function verifyLine(verifier, textBytes, signature) {
  if (verifier.sigType === SIG_TYPE_COSIGNATURE_V1) return verifyCosignature(verifier, textBytes, signature);
  return ed25519Verify(verifier.publicKey, textBytes, signature);
}

/**
 * Open a signed note (c2sp.org/signed-note §Format, §Signatures), on the bytes received:
 * 1. at most MAX_CHECKPOINT_BYTES; 2. UTF-8, no control characters but newline; 3. split at
 * the last empty line; 4. at most MAX_NOTE_SIGNATURES lines; 5. parse each line; 6. verify
 * every line from a known key (one failure rejects the note) and ignore unknown ones;
 * 7. require the `required` key's signature. Returns {textBytes, text, verified: names}.
 */
export async function openNote(note, required, others = []) {
  const bytes = typeof note === "string" ? utf8(note) : note;
  if (!(bytes instanceof Uint8Array)) throw new TypeError("a note is text or bytes");
  // 1.
  if (bytes.length > MAX_CHECKPOINT_BYTES) throw malformed(`note is larger than ${MAX_CHECKPOINT_BYTES} bytes`);
  // 2.
  const whole = checkCharacters(bytes);
  // 3.
  const split = whole.lastIndexOf("\n\n");
  if (split < 0) throw malformed("note has no signature block after an empty line");
  const text = whole.slice(0, split + 1);
  const block = whole.slice(split + 2);
  if (!block || !block.endsWith("\n")) throw malformed("note must end with a signature line and newline");
  // 4.
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  // 5.
  const signatures = lines.map(parseSignatureLine);
  // 6.
  const known = [required, ...others];
  for (const [i, v] of known.entries()) {
    const twin = known.findIndex((w) => w.name === v.name && equalBytes(w.keyId, v.keyId));
    if (twin !== i && !equalBytes(known[twin].publicKey, v.publicKey)) {
      throw malformed(`two different verifiers share key ${v.name}+${hexEncode(v.keyId)}`);
    }
  }
  const textBytes = utf8(text);
  const verified = new Set();
  for (const sig of signatures) {
    const verifier = known.find((v) => v.name === sig.name && equalBytes(v.keyId, sig.keyId));
    if (!verifier) continue;
    if (!(await verifyLine(verifier, textBytes, sig.signature))) {
      throw new NoteError("signature", `invalid signature by ${sig.name}+${hexEncode(sig.keyId)}`);
    }
    verified.add(verifier);
  }
  // 7.
  if (!verified.has(required)) throw new NoteError("signature", "note has no valid signature from the log's key");
  return { textBytes, text, verified: others.filter((v) => verified.has(v)).map((v) => v.name) };
}

/** tlog-checkpoint §Note text, canonical form only: origin, size, base64 root, extensions. */
export function parseCheckpointBody(text) {
  if (!text.endsWith("\n")) throw malformed("note text must end in newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw malformed("checkpoint needs origin, size and root hash lines");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!origin) throw malformed("checkpoint origin must not be empty");
  if (!DECIMAL.test(sizeText) || BigInt(sizeText) > MAX_TREE_SIZE) {
    throw malformed("tree size must be an ASCII decimal without leading zeroes");
  }
  // The portal shows sizes as numbers; a log past 2**53 entries is far beyond any deployment.
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw malformed("tree size is beyond 2**53 - 1, which this verifier does not handle");
  let rootHash;
  try {
    rootHash = b64decode(rootText);
  } catch {
    throw malformed("root hash is not canonical base64");
  }
  if (rootHash.length !== 32) throw malformed("root hash must be 32 bytes");
  if (extensions.some((line) => !line)) throw malformed("checkpoint extension lines must not be empty");
  return { origin, size, rootHash, extensions };
}

/**
 * Verify a checkpoint note against the log's verifier key (a vkey string or parsed key):
 * signed-note checks, then the text, then the origin (default: the key's name, as the
 * medledger log signer is named after its origin). `cosigners` are optional witness vkeys
 * (cosignature/v1 or Ed25519), given as options.cosigners or as the third argument itself;
 * the names of those whose valid signatures are present come
 * back in `cosigners`; a present but invalid one rejects the note.
 * Returns {origin, size, rootHash, extensions, cosigners, text}.
 */
export async function verifyCheckpoint(noteText, verifierKey, options = {}) {
  // The third argument is an options object, or just the list of cosigner keys.
  const { cosigners = [], origin } = Array.isArray(options) ? { cosigners: options } : options;
  const logKey = typeof verifierKey === "string" ? await parseVerifierKey(verifierKey) : verifierKey;
  const witnessKeys = await Promise.all(
    cosigners.map((k) => (typeof k === "string" ? parseVerifierKey(k, { types: [SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE_V1] }) : k)),
  );
  const opened = await openNote(noteText, logKey, witnessKeys);
  const checkpoint = parseCheckpointBody(opened.text);
  if (checkpoint.origin !== (origin ?? logKey.name)) {
    throw new NoteError("origin", "checkpoint is for a different origin than the one expected");
  }
  return { ...checkpoint, cosigners: opened.verified, text: opened.text };
}
