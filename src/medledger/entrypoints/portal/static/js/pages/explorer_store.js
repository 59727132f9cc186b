// The checkpoints this browser has seen (IndexedDB "medledger-explorer"), by log origin and
// size: only notes that verified against the log key are kept, so any two of them can be
// checked for consistency later, and a node that serves a different note for a size this
// browser already knows is caught (the caller compares).
const DB = "medledger-explorer";
const STORE = "checkpoints";
const MAX_KEPT = 2000;

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

const key = (origin, size) => `${origin}\u0000${String(size).padStart(20, "0")}`;

/** The note kept for (origin, size), or undefined. */
export function seenNote(origin, size) {
  return run("readonly", (store) => store.get(key(origin, size))).then((v) => v && v.note);
}

/** Keep a verified note (at most MAX_KEPT per browser: the oldest are dropped). */
export async function keepNote(origin, size, note) {
  await run("readwrite", (store) => store.put({ origin, size, note }, key(origin, size)));
  const count = await run("readonly", (store) => store.count());
  if (count > MAX_KEPT) {
    await run("readwrite", (store) => {
      const cursor = store.openCursor();
      let left = count - MAX_KEPT;
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (c && left > 0) { c.delete(); left -= 1; c.continue(); }
      };
      return null;
    });
  }
}

/** Every kept note of `origin`: [{size, note}], by size. */
export function keptNotes(origin) {
  const range = IDBKeyRange.bound(`${origin}\u0000`, `${origin}\u0001`, false, true);
  return run("readonly", (store) => store.getAll(range))
    .then((rows) => rows.map((r) => ({ size: r.size, note: r.note })));
}
