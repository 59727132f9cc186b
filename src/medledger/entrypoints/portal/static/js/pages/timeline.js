// "Who looked at my data" (issue 8 item 2): the patient's access events from a signed
// request.list_audit, each with its receipt, and a per-row mark computed HERE: the event's
// inclusion in its batch, the batch anchor's inclusion in the log, and the checkpoint's
// signature, checked against the log key pinned at sign-in (never the key this page shows).
// A receipt that does not verify marks its row and the page, loudly. Pending receipts (batch
// not anchored yet) are asked for again until they arrive. Newest first: page 1 is the most
// recent events, "Older" goes on before the last event shown (the node's "before" cursor: a
// page never repeats or skips an event, however many arrive meanwhile), "Newer" goes back.
import { verifyEventReceipt } from "../lib/receipt.js";
import { canonicalize } from "../lib/jcs.js";
import { isNoteCommitted } from "../lib/review_note.js";
import { requireIdentity, signedPost, el, flash, formatTime } from "./shell.js";
import { participants, nameOf, organizationOf, grantees } from "./patient_directory.js";

const PAGE_SIZE = 50;
const POLL_MS = 1500;
const MAX_POLLS = 20;
const DAY_MS = 86_400_000;

const identity = await requireIdentity({ kinds: ["patient"] });
const body = document.getElementById("events-body");
const table = document.getElementById("events");
const alertBox = document.getElementById("verify-alert");

// By default the list is what others did: the patient's own actions (each visit to this page is
// itself an access event) are one tick away, not the bulk of the first page.
const OTHERS_ONLY = { others_only: true };

const view = {
  filters: { ...OTHERS_ONLY },
  cursors: [null], // cursors[i]: the "before" event id that starts page i (null: the newest)
  page: 0,
  generation: 0, // bumps on every new page, so a late poll never paints an old page
  failed: new Set(),
  caches: { checkpointCache: new Map(), anchorCache: new Map() }, // shared by a page's receipts
  rows: new Map(), // event_id -> <tr>
};

function payload(extra = {}) {
  const before = view.cursors[view.page];
  return {
    patient: identity.did,
    purpose: "PATRQT",
    limit: PAGE_SIZE,
    order: "newest",
    ...view.filters,
    ...(before ? { before } : {}),
    ...extra,
  };
}

function whatOf(event) {
  if (event.action === "list-audit") return "listed your access events";
  const id = event.record_id && event.record_id.length > 12 ? `${event.record_id.slice(0, 8)}…` : event.record_id;
  const ref = [event.resource_type, id].filter(Boolean).join("/");
  const version = event.version ? ` v${event.version}` : "";
  return `${event.action} ${ref || "your records"}${version}`;
}

const RULINGS = {
  justified: "reviewed: the privacy officer found it justified",
  unjustified: "reviewed: the privacy officer FLAGGED it as unjustified",
  referred: "reviewed: the privacy officer referred it on",
};

// The officer's ruling (on the ledger) and note (ADR 0022: kept off the ledger, which holds its
// salted commitment); the note is checked against that commitment here, in the browser.
function reviewOf(row, event) {
  const review = row.review;
  if (!review && !row.reviewed) {
    return el("span", { class: "muted review-state" }, "awaiting the privacy officer's review");
  }
  const ruling = review ? RULINGS[review.outcome] || `reviewed: ${review.outcome}` : "reviewed by a privacy officer";
  const block = el("span", { class: "review-state", "data-review-outcome": review ? review.outcome : "" }, ruling);
  if (!review || !review.note) return block;
  const note = el("blockquote", { class: "review-note", "data-note-verified": "pending" }, review.note);
  const show = (ok) => {
    note.dataset.noteVerified = String(ok);
    note.prepend(el("span", { class: `badge ${ok ? "ok" : "bad"}` },
      ok ? "note matches the ruling's commitment" : "note does NOT match the ruling's commitment"), " ");
  };
  isNoteCommitted(review.note_commitment, event.event_id, review.note, review.note_salt)
    .then(show, () => show(false));
  return el("span", {}, block, note);
}

function decisionCell(row, event) {
  if (event.decision === "break-glass") {
    return el("td", { "data-label": "Decision" },
      el("strong", { class: "badge warn" }, "BREAK-GLASS"),
      el("span", { class: "justification" }, `“${event.justification || "no justification"}”`),
      reviewOf(row, event));
  }
  const permitted = event.decision === "permit";
  return el("td", { "data-label": "Decision" },
    el("span", { class: `badge ${permitted ? "ok" : "bad"}` }, permitted ? "permitted" : "denied"));
}

function markCell(state, reason) {
  const label = { ok: "verified", pending: "pending: not anchored yet", failed: `FAILED: ${reason}` }[state];
  const cls = { ok: "ok", pending: "pending", failed: "bad" }[state];
  return el("td", { "data-label": "Verified", class: "mark" }, el("span", { class: `badge ${cls}` }, label));
}

function rowOf(directory, row) {
  const event = row.event;
  const tr = el("tr", {
    class: event.decision === "break-glass" ? "break-glass" : null,
    dataset: { eventId: event.event_id, verified: "pending", decision: event.decision },
  },
  el("td", { "data-label": "When" }, el("time", { datetime: new Date(event.time_ms).toISOString() }, formatTime(event.time_ms))),
  el("td", { "data-label": "Who", title: event.actor }, event.actor === identity.did ? "you" : nameOf(directory, event.actor)),
  el("td", { "data-label": "Organization" }, organizationOf(directory, event.actor, event.actor_org)),
  el("td", { "data-label": "What" }, whatOf(event)),
  el("td", { "data-label": "Purpose" }, event.purpose),
  decisionCell(row, event),
  markCell("pending"));
  return tr;
}

function setMark(tr, state, reason = "", code = "") {
  tr.dataset.verified = state;
  if (code) tr.dataset.reason = code;
  tr.lastElementChild.replaceWith(markCell(state, reason));
  tr.classList.toggle("verify-failed", state === "failed");
}

/** One row's receipt, checked against the pinned key; the listed event must be the proved one. */
async function verifyRow(tr, row) {
  if (!row.receipt) return "pending";
  try {
    const { event } = await verifyEventReceipt(row.receipt, identity.logKey, view.caches);
    if (canonicalize(event) !== canonicalize(row.event)) {
      throw Object.assign(new Error("the listed event is not the event its receipt proves"), { reason: "listed-event" });
    }
    setMark(tr, "ok");
    return "ok";
  } catch (e) {
    setMark(tr, "failed", e.message || String(e), e.reason || "error");
    view.failed.add(row.event.event_id);
    return "failed";
  }
}

function showFailures() {
  if (view.failed.size === 0) {
    alertBox.hidden = true;
    return;
  }
  const message =
    `${view.failed.size} event(s) on this page FAILED verification against the log key you pinned. ` +
    "What this page shows for them cannot be trusted: the proof or the checkpoint was altered.";
  alertBox.textContent = message;
  alertBox.hidden = false;
  flash("Verification FAILED for some events: see the alert and the rows marked in red.");
}

function summarize(count, states) {
  const n = (s) => states.filter((x) => x === s).length;
  document.getElementById("summary").textContent =
    `${count} event(s) on page ${view.page + 1}: ${n("ok")} verified in your browser, ` +
    `${n("pending")} pending, ${n("failed")} failed.`;
}

async function verifyRows(rows) {
  const started = performance.now();
  const states = [];
  for (const row of rows) {
    const tr = view.rows.get(row.event.event_id);
    if (tr && tr.dataset.verified === "pending") states.push(await verifyRow(tr, row));
    else if (tr) states.push(tr.dataset.verified);
  }
  table.dataset.verifyMs = String(Math.round(performance.now() - started));
  return states;
}

async function poll(generation, polls = 0) {
  if (generation !== view.generation || polls >= MAX_POLLS) return;
  const pending = [...view.rows.values()].filter((tr) => tr.dataset.verified === "pending");
  if (pending.length === 0) return;
  await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  if (generation !== view.generation) return;
  try {
    const answer = await signedPost("/audit/events", "request.list_audit", payload({ wait_ms: 2000 }));
    if (generation !== view.generation) return;
    const states = await verifyRows(answer.events);
    summarize(answer.count, states);
    showFailures();
  } catch (e) {
    flash(`Could not check pending events again: ${e.message}`);
    return;
  }
  poll(generation, polls + 1);
}

async function load() {
  const generation = ++view.generation;
  view.failed.clear();
  view.rows.clear();
  const started = performance.now();
  table.setAttribute("aria-busy", "true");
  document.getElementById("summary").textContent = "Loading…";
  let answer;
  let directory;
  try {
    [answer, directory] = await Promise.all([
      signedPost("/audit/events", "request.list_audit", payload({ wait_ms: 1000 })),
      participants(),
    ]);
  } catch (e) {
    table.removeAttribute("aria-busy");
    flash(`Could not list your access events: ${e.message}`);
    return;
  }
  if (generation !== view.generation) return;
  const trs = answer.events.map((row) => {
    const tr = rowOf(directory, row);
    view.rows.set(row.event.event_id, tr);
    return tr;
  });
  body.replaceChildren(...trs);
  if (trs.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 7 }, "No access events match.")));
  }
  table.dataset.loadMs = String(Math.round(performance.now() - started));
  const last = answer.events.at(-1);
  view.cursors[view.page + 1] = answer.count === PAGE_SIZE && last ? last.event.event_id : null;
  document.getElementById("older-page").disabled = !view.cursors[view.page + 1];
  document.getElementById("newer-page").disabled = view.page === 0;
  document.getElementById("page-label").textContent = `Page ${view.page + 1}`;
  const states = await verifyRows(answer.events);
  if (generation !== view.generation) return;
  table.removeAttribute("aria-busy");
  table.dataset.page = String(view.page + 1);
  summarize(answer.count, states);
  showFailures();
  poll(generation);
}

function readFilters(form) {
  const data = new FormData(form);
  const filters = data.get("mine") ? {} : { ...OTHERS_ONLY };
  if (data.get("decision")) filters.decision = data.get("decision");
  if (data.get("actor")) filters.actor = data.get("actor");
  if (data.get("purpose")) filters.filter_purpose = data.get("purpose");
  const since = data.get("since") ? Date.parse(`${data.get("since")}T00:00:00Z`) : null;
  const until = data.get("until") ? Date.parse(`${data.get("until")}T00:00:00Z`) + DAY_MS : null;
  if (Number.isFinite(since)) filters.since_ms = since;
  if (Number.isFinite(until)) filters.until_ms = until;
  if (filters.since_ms !== undefined && filters.until_ms !== undefined && filters.since_ms >= filters.until_ms) {
    throw new Error("“From” must be before “Until”.");
  }
  return filters;
}

async function fillActors() {
  const select = document.getElementById("f-actor");
  try {
    const directory = await participants();
    for (const p of grantees(directory)) {
      select.append(el("option", { value: p.did }, `${p.label}${p.kind === "organization" ? " (organization)" : ""}`));
    }
  } catch (e) {
    flash(`Could not load the participants: ${e.message}`);
  }
}

function wire() {
  const form = document.getElementById("filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      view.filters = readFilters(form);
    } catch (e) {
      flash(e.message);
      return;
    }
    view.cursors = [null];
    view.page = 0;
    load();
  });
  form.addEventListener("reset", () => {
    view.filters = { ...OTHERS_ONLY };
    view.cursors = [null];
    view.page = 0;
    setTimeout(load, 0);
  });
  document.getElementById("older-page").addEventListener("click", () => {
    if (!view.cursors[view.page + 1]) return;
    view.page += 1;
    load();
  });
  document.getElementById("newer-page").addEventListener("click", () => {
    if (view.page === 0) return;
    view.page -= 1;
    load();
  });
}

wire();
fillActors();
load();
