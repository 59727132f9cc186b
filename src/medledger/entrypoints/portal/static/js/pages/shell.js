// The portal's shell: who is signed in, signed calls to the node's API, and a safe DOM builder.
// Every page module imports from here; nothing here ever touches a raw private key (the
// identity holds a non-extractable WebCrypto key, see ../lib/keyring.js).
import { loadIdentity, forgetIdentity } from "../lib/keyring.js";
import { signEnvelope } from "../lib/tx.js";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error.message
      : body && body.issue ? body.issue.map((i) => i.diagnostics).join("; ")
      : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
  }
}

let cachedInfo = null;
/** The node's public facts embedded by the server: network, verifier key, demo users... */
export function nodeInfo() {
  if (!cachedInfo) cachedInfo = JSON.parse(document.getElementById("node-info").textContent);
  return cachedInfo;
}

export async function currentIdentity() {
  return loadIdentity();
}

/** The signed-in identity, or a redirect to the sign-in page (returns a never-settling promise). */
export async function requireIdentity({ kinds } = {}) {
  const identity = await loadIdentity();
  if (identity && (!kinds || kinds.includes(identity.kind))) return identity;
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/portal?next=${next}`);
  return new Promise(() => {});
}

async function parse(response) {
  const text = await response.text();
  let body;
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: { message: text } }; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function getJson(path, init = {}) {
  return parse(await fetch(path, { headers: { Accept: "application/json" }, ...init }));
}

/** A signed request (``request.*``, never on the ledger), signed here with the user's key. */
export async function signedPost(path, type, payload, { ttlS = 120 } = {}) {
  const identity = await requireIdentity();
  const envelope = await signEnvelope(identity, {
    network: nodeInfo().network, type, payload,
    expires: Math.floor(Date.now() / 1000) + ttlS,
  });
  return parse(await fetch(path, {
    method: "POST", body: envelope,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  }));
}

/** A ledger transaction signed here; resolves once committed (or rejects with the reason). */
export async function submitTx(type, payload, { ttlS = 300 } = {}) {
  const identity = await requireIdentity();
  const envelope = await signEnvelope(identity, {
    network: nodeInfo().network, type, payload,
    expires: Math.floor(Date.now() / 1000) + ttlS,
  });
  const status = await parse(await fetch("/ledger/transactions?wait=commit&timeout=30", {
    method: "POST", body: envelope,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  }));
  if (status.status !== "committed" || !status.ok) { // committed but refused: ok false, reason
    throw new ApiError(409, { error: { message: status.reason || `transaction ${status.status}` } });
  }
  return status;
}

/** Builds an element; children are nodes or strings (always text, never parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Shows a message at the top of the page (role=alert): kind "error" or "info". */
export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = `flash ${kind}`;
  box.hidden = false;
  box.focus?.();
}

export function shortDid(did) {
  return did && did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-6)}` : did;
}

export function formatTime(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

async function paintHeader() {
  const who = document.getElementById("who");
  const identity = await loadIdentity().catch(() => null);
  for (const link of document.querySelectorAll("nav [data-nav]")) {
    if (link.dataset.nav === document.body.dataset.section) link.setAttribute("aria-current", "page");
    const kinds = link.dataset.kinds ? link.dataset.kinds.split(",") : null;
    link.parentElement.hidden = Boolean(kinds && !(identity && kinds.includes(identity.kind)));
  }
  if (!identity) return;
  who.replaceChildren(
    el("span", { class: "name", title: identity.did }, identity.name || shortDid(identity.did)),
    " ",
    el("button", {
      type: "button", class: "link", id: "sign-out",
      onclick: async () => { await forgetIdentity(); location.assign("/portal"); },
    }, "Sign out"),
  );
}

paintHeader();
