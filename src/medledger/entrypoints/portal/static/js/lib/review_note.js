// The privacy officer's review note (ADR 0022), as medledger.core.audit.review_note has it.
// A note is free text (PHI-prone): it never goes on the ledger. The access.review transaction
// carries only its salted commitment,
//   hex(SHA-256("medledger/review-note/v1\0" || JCS({event_id, note, salt: hex(salt)}))),
// and the note with its salt goes to the node holding the event (request.review_note). Anyone
// shown the note and salt recomputes the commitment and compares it with the ledger's.
import { concat, hexDecode, hexEncode, randomBytes, sha256, utf8 } from "./encoding.js";
import { canonicalize } from "./jcs.js";

export const MAX_NOTE_CHARS = 2000; // Unicode code points, as Python's len()
export const SALT_BYTES = 32;
const DOMAIN = utf8("medledger/review-note/v1\0");
// line breaks and tabs are text; other control characters and lone surrogates are not
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/; // eslint-disable-line no-control-regex -- finding them is the point

/** Why the node would refuse this note, or null if it takes it (the same rules). */
export function noteProblem(note) {
  if (typeof note !== "string") return "the note must be text";
  const chars = [...note].length;
  if (chars < 1 || !note.trim()) return "the note is empty";
  if (chars > MAX_NOTE_CHARS) return `the note is ${chars} characters: at most ${MAX_NOTE_CHARS}`;
  if (CONTROL.test(note) || !note.isWellFormed()) return "the note holds control characters";
  return null;
}

/** A fresh salt, as lowercase hex. */
export function newSalt() {
  return hexEncode(randomBytes(SALT_BYTES));
}

/** The commitment (lowercase hex) an access.review carries for `note` about `eventId`. */
export async function noteCommitment(eventId, note, saltHex) {
  if (hexDecode(saltHex).length !== SALT_BYTES) throw new Error(`the salt must be ${SALT_BYTES} bytes`);
  const body = canonicalize({ event_id: eventId, note, salt: saltHex });
  return hexEncode(await sha256(concat(DOMAIN, utf8(body))));
}

/** Whether `note` and `saltHex` open `commitment` for `eventId` (false on any malformed input). */
export async function isNoteCommitted(commitment, eventId, note, saltHex) {
  try {
    return typeof commitment === "string" && commitment === await noteCommitment(eventId, note, saltHex);
  } catch {
    return false;
  }
}
