// The signed-in identity, kept in the browser's IndexedDB: the participant's did, a
// NON-EXTRACTABLE private Ed25519 CryptoKey (the raw seed is never stored: IndexedDB keeps the
// CryptoKey object, which can sign but not be read back), a display name, a kind, and the log
// verifier key pinned at sign-in (trust on first use, shown to the user; ADR 0019).
//
// saveIdentity refuses an extractable key and a key that is not the did's (it signs a probe
// and verifies it under the did's public key). One identity per browser profile; "sign out" is
// forgetIdentity. I/O: IndexedDB only.

import { publicKeyFromDid } from "./did.js";
import { sign, verify } from "./ed25519.js";
import { randomBytes } from "./encoding.js";
import { parseVerifierKey } from "./note.js";

const DB_NAME = "medledger-portal";
const STORE = "identity";
const KEY = "current";
const MAX_TEXT = 256;

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

function checkText(value, what) {
  if (typeof value !== "string" || value.length > MAX_TEXT) throw new TypeError(`${what} must be a string of at most ${MAX_TEXT} characters`);
}

async function checkIdentity({ did, privateKey, name, kind, logKey }) {
  const publicKey = publicKeyFromDid(did);
  if (!(privateKey instanceof CryptoKey) || privateKey.type !== "private" || privateKey.algorithm.name !== "Ed25519") {
    throw new TypeError("privateKey must be a private Ed25519 CryptoKey");
  }
  if (privateKey.extractable) throw new TypeError("privateKey must be non-extractable: the seed is never stored");
  checkText(name, "name");
  checkText(kind, "kind");
  checkText(logKey, "logKey");
  await parseVerifierKey(logKey);
  const probe = randomBytes(32);
  if (!(await verify(publicKey, probe, await sign(privateKey, probe)))) {
    throw new TypeError("privateKey is not the key of did");
  }
}

/** Store the signed-in identity (replacing any other). */
export async function saveIdentity(identity) {
  const { did, privateKey, name, kind, logKey } = identity;
  await checkIdentity({ did, privateKey, name, kind, logKey });
  await run("readwrite", (store) => store.put({ did, privateKey, name, kind, logKey }, KEY));
}

/** The stored identity {did, privateKey, name, kind, logKey}, or null if none (or unusable). */
export async function loadIdentity() {
  const record = await run("readonly", (store) => store.get(KEY));
  if (!record) return null;
  try {
    await checkIdentity(record);
  } catch {
    return null;
  }
  return record;
}

/** Sign out: delete the stored identity. */
export async function forgetIdentity() {
  await run("readwrite", (store) => store.delete(KEY));
}
