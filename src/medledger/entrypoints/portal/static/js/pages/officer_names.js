// Who a did:key is, for the officer's console, the practitioner page and the explorer.
// People carry no name on the ledger (only organizations do), so a person shows as their demo
// name when this is a demo network, else as a shortened did:key; an organization as its
// registered name. Lookups are public ledger state (GET /ledger/participants/{did}), cached
// per page; nothing here is PHI.
import { getJson, nodeInfo, shortDid } from "./shell.js";

const participants = new Map();

/** The participant record at participant/<did> (cached), or null if none is registered. */
export function participant(did) {
  if (!participants.has(did)) {
    participants.set(did, getJson(`/ledger/participants/${encodeURIComponent(did)}`)
      .catch((e) => { if (e.status === 404) return null; participants.delete(did); throw e; }));
  }
  return participants.get(did);
}

/** A short display name for a did:key: demo name, organization name, or the shortened DID. */
export async function nameOf(did) {
  if (!did) return "";
  const demo = (nodeInfo().demo || []).find((u) => u.did === did);
  if (demo) return demo.name;
  const record = await participant(did).catch(() => null);
  return (record && record.name) || shortDid(did);
}

/** Every registered patient (paged through /ledger/participants, at most `maxPages` pages). */
export async function registeredPatients({ maxPages = 20 } = {}) {
  const found = [];
  let after = "";
  for (let page = 0; page < maxPages; page += 1) {
    const query = new URLSearchParams({ limit: "500" });
    if (after) query.set("after", after);
    const body = await getJson(`/ledger/participants?${query}`);
    for (const p of body.items) {
      participants.set(p.did, Promise.resolve(p));
      if (p.kind === "patient" && p.active) found.push(p);
    }
    if (!body.next) break;
    after = body.next;
  }
  return found;
}
