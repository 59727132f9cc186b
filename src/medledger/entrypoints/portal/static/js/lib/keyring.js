// The signed-in identity, kept in the browser's IndexedDB: the participant's did, a
// NON-EXTRACTABLE private Ed25519 CryptoKey (the raw seed is never stored: IndexedDB keeps the
// CryptoKey object, which can sign but not be read back), a display name, a kind, and the log
// verifier key pinned at sign-in (trust on first use, shown to the user; ADR 0019).
//
// The network's genesis is pinned the same way, per network, on first use (pinGenesis, ADR
// 0024): its hash is kept under "genesis:<network>" (signing out keeps it), and a node that
// later presents another genesis for the network is refused loudly (PinMismatch).
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

export class PinMismatch extends Error {
  constructor(message) {
    super(message);
    this.name = "PinMismatch";
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Trust on first use of a network's genesis: store `genesisHash` (hex) for `network` if none
 * is pinned and resolve "pinned"; resolve "known" if it is the pinned one; throw PinMismatch
 * if another is pinned. The read and the write are one IndexedDB transaction.
 */
export async function pinGenesis(network, genesisHash) {
  checkText(network, "network");
  if (!network || typeof genesisHash !== "string" || !HEX64.test(genesisHash)) {
    throw new TypeError("pinGenesis takes a network name and a 64-hex-digit genesis hash");
  }
  const key = `genesis:${network}`;
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      let outcome = null;
      const read = store.get(key);
      read.onsuccess = () => {
        if (read.result === undefined) {
          store.put(genesisHash, key);
          outcome = "pinned";
        } else if (read.result === genesisHash) {
          outcome = "known";
        } else {
          outcome = new PinMismatch(`the node presents another genesis for network ${network} than the one this browser pinned: refusing it`);
        }
      };
      tx.oncomplete = () => (outcome instanceof PinMismatch ? reject(outcome) : resolve(outcome));
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}
