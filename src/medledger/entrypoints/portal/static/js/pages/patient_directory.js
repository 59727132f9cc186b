// Who is who, for the patient's pages: the registered participants (public ledger state: DIDs,
// kinds, roles, organizations; names only for organizations and whoever registered one), so a
// page can say "physician at St. Demo General Hospital" instead of a DID.
import { getJson, nodeInfo, shortDid } from "./shell.js";

const PAGE = 500;
const MAX_PAGES = 20; // 10,000 participants: more than any page needs to name

let loading = null;

/** Map did -> participant, loaded once per page from GET /ledger/participants (paged). */
export function participants() {
  if (!loading) {
    loading = (async () => {
      const all = new Map();
      let after = "";
      for (let i = 0; i < MAX_PAGES; i += 1) {
        const page = await getJson(`/ledger/participants?limit=${PAGE}&after=${encodeURIComponent(after)}`);
        for (const p of page.items) all.set(p.did, p);
        if (!page.next) break;
        after = page.next;
      }
      return all;
    })();
    loading.catch(() => { loading = null; });
  }
  return loading;
}

function demoName(did) {
  const user = (nodeInfo().demo || []).find((u) => u.did === did);
  return user ? user.name : null;
}

/** A person's or organization's display name: registered name, demo name, or role + DID. */
export function nameOf(directory, did) {
  if (!did) return "—";
  const p = directory.get(did);
  const named = (p && p.name) || demoName(did);
  if (named) return named;
  if (p && p.kind === "practitioner") return `${(p.roles && p.roles[0]) || "practitioner"} ${shortDid(did)}`;
  return shortDid(did);
}

/** The organization a practitioner acts for, by name. */
export function organizationOf(directory, did, orgDid) {
  const org = orgDid || (directory.get(did) || {}).organization;
  return org ? nameOf(directory, org) : "—";
}

/** Practitioners and organizations a patient can grant to, sorted by what they are called. */
export function grantees(directory) {
  return [...directory.values()]
    .filter((p) => p.active !== false && (p.kind === "practitioner" || p.kind === "organization"))
    .map((p) => ({ ...p, label: nameOf(directory, p.did) }))
    .sort((a, b) => (a.kind === b.kind ? a.label.localeCompare(b.label) : a.kind === "organization" ? -1 : 1));
}
