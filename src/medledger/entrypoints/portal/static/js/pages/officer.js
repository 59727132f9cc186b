// The privacy officer's console (issue 8 item 5): break-glass review queue, access-decision
// charts, ledger status. A client of the node's signed API (ADR 0020): the queue and the
// aggregates are signed requests (request.review_queue, request.access_stats) and each
// ruling an access.review transaction, all signed in this browser; the node decides who may.
// A ruling may carry a note (ADR 0022): free text, so never on the ledger. The transaction
// carries its salted commitment; the note and salt then go to this node (request.review_note).
import { ApiError, el, flash, formatTime, requireIdentity, shortDid, signedPost, submitTx } from "./shell.js";
import { isNoteCommitted, newSalt, noteCommitment, noteProblem } from "../lib/review_note.js";
import { horizontalBars, stackedBars } from "./charts.js";
import { nameOf, participant } from "./officer_names.js";
import { renderStatus } from "./officer_status.js";

const PURPOSE = "HOPERAT"; // healthcare operations: reviewing the organization's accesses
const OUTCOMES = [
  { outcome: "justified", label: "Approve", title: "the emergency warranted it", cls: "" },
  { outcome: "unjustified", label: "Flag", title: "it did not: the organization follows up", cls: "danger" },
  { outcome: "referred", label: "Refer", title: "pass on, e.g. to the data protection officer", cls: "secondary" },
];

function failure(what, e) {
  if (e instanceof ApiError && e.status === 403) return `${what}: refused, ${e.message}`;
  return `${what}: ${e.message || e}`;
}

// --- the review queue ---------------------------------------------------------------------
function noteBlock(note, verified) {
  return el("blockquote", { class: "review-note", "data-note-verified": String(verified) },
    el("span", { class: `badge ${verified ? "ok" : "bad"}` },
      verified ? "note matches the ledger's commitment" : "note does NOT match the ledger's commitment"),
    " ", note);
}

// Sends the note of a committed review; on failure the item offers to send it again.
async function sendNote(item, eventId, note, salt) {
  item.querySelector("button.resend")?.remove();
  try {
    const answer = await signedPost("/audit/review-notes", "request.review_note", { event_id: eventId, note, salt });
    const verified = await isNoteCommitted(answer.review.note_commitment, eventId, answer.review.note, answer.review.note_salt);
    item.setAttribute("data-note", "sent");
    item.append(noteBlock(answer.review.note, verified));
    return true;
  } catch (e) {
    item.setAttribute("data-note", "failed");
    item.append(el("button", {
      type: "button", class: "secondary resend", onclick: () => sendNote(item, eventId, note, salt),
    }, "Send the note again"));
    flash(failure("The ruling is on the ledger, but its note was not stored", e));
    return false;
  }
}

async function review(row, event, batchId, outcome) {
  const buttons = row.querySelectorAll("button");
  const box = row.querySelector("textarea");
  const note = box && box.value.trim() ? box.value : null;
  if (note !== null) {
    const problem = noteProblem(note);
    if (problem) {
      flash(`The review was not recorded: ${problem}.`);
      box.focus();
      return;
    }
  }
  buttons.forEach((b) => { b.disabled = true; });
  if (box) box.disabled = true;
  row.setAttribute("aria-busy", "true");
  try {
    const payload = { batch_id: batchId, event_id: event.event_id, outcome };
    const salt = note === null ? null : newSalt();
    if (note !== null) payload.note_commitment = await noteCommitment(event.event_id, note, salt);
    const status = await submitTx("access.review", payload);
    // keyboard users keep their place: focus moves to the next row's ruling, else the heading
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    (next?.querySelector("button") || document.getElementById("reviewed-h")).focus();
    const item = el("li", {
      "data-event-id": event.event_id, "data-tx-id": status.tx_id, "data-outcome": outcome,
    }, `${formatTime(event.time_ms)} — ${outcome} (block ${status.height}, transaction `,
    el("code", {}, status.tx_id.slice(0, 16) + "…"), ")");
    document.getElementById("reviewed").append(item);
    const noted = note === null || await sendNote(item, event.event_id, note, salt);
    if (noted) {
      flash(`Reviewed as ${outcome}: recorded on the ledger in block ${status.height}`
        + (note === null ? "." : ", the note kept off the ledger by this node."), "info");
    }
    loadRulings();
    const body = document.querySelector("#queue tbody");
    if (body && !body.children.length) await loadQueue();
  } catch (e) {
    if (e instanceof ApiError && e.message === "already_reviewed") {
      flash("Someone reviewed this access already: the queue is reloaded.", "info");
      await loadQueue();
      return;
    }
    buttons.forEach((b) => { b.disabled = false; });
    if (box) box.disabled = false;
    flash(failure("The review was not recorded", e));
  } finally {
    row.removeAttribute("aria-busy");
  }
}

async function queueRow(item) {
  const { event } = item;
  const actor = await nameOf(event.actor);
  const row = el("tr", { "data-event-id": event.event_id, class: "break-glass" },
    el("td", { "data-label": "When" }, formatTime(event.time_ms)),
    el("td", { "data-label": "Who" }, el("span", { title: event.actor }, actor)),
    el("td", { "data-label": "Patient" }, el("span", { class: "did", title: event.patient }, shortDid(event.patient))),
    el("td", { "data-label": "What" }, `${event.action} ${event.resource_type || ""} ${event.record_id || ""}`),
    el("td", { "data-label": "Purpose" }, event.purpose),
    el("td", { "data-label": "Justification", class: "justification" }, event.justification || ""),
  );
  const actions = el("td", { "data-label": "Ruling", class: "review-actions" });
  if (!item.batch_id) {
    actions.append(el("span", { class: "badge pending" }, "anchoring… reload shortly"));
  } else {
    const noteId = `note-${event.event_id}`;
    actions.append(
      el("label", { for: noteId }, "Note (optional; kept off the ledger)"),
      el("textarea", {
        id: noteId, name: "note", rows: "2", "data-note-for": event.event_id,
        "aria-describedby": "note-help",
      }));
    for (const o of OUTCOMES) {
      actions.append(el("button", {
        type: "button", class: o.cls, "data-outcome": o.outcome, title: o.title,
        "aria-label": `${o.label} the break-glass access by ${actor} at ${formatTime(event.time_ms)}: ${o.title}`,
        onclick: () => review(row, event, item.batch_id, o.outcome),
      }, o.label));
    }
  }
  row.append(actions);
  return row;
}

async function loadQueue() {
  const box = document.getElementById("queue");
  let queue;
  try {
    queue = await signedPost("/audit/reviews", "request.review_queue", { purpose: PURPOSE });
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted" }, "The review queue could not be loaded."));
    flash(failure("Review queue not loaded", e));
    return;
  }
  if (!queue.events.length) {
    box.replaceChildren(el("p", { id: "queue-empty" }, "Nothing awaits review."));
    return;
  }
  const rows = await Promise.all(queue.events.map(queueRow));
  box.replaceChildren(
    el("p", {}, `${queue.count} break-glass access(es) awaiting review.`),
    el("table", { class: "responsive", id: "queue-table" },
      el("caption", { class: "muted" }, "Oldest first"),
      el("thead", {}, el("tr", {}, ["When", "Who", "Patient", "What", "Purpose", "Justification", "Ruling"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

// --- rulings already made, with their notes ------------------------------------------------
async function rulingItem({ event, review: r }) {
  const officer = await nameOf(r.officer);
  const item = el("li", { "data-event-id": event.event_id, "data-outcome": r.outcome },
    `${formatTime(event.time_ms)} — ${r.outcome} by `, el("span", { title: r.officer }, officer),
    ` (block ${r.height})`);
  if (r.note !== null) {
    item.append(noteBlock(r.note, await isNoteCommitted(r.note_commitment, event.event_id, r.note, r.note_salt)));
  } else if (r.note_commitment) {
    item.append(el("span", { class: "muted" }, " — a note was committed to; this node does not hold it"));
  }
  return item;
}

let rulingsLoad = 0;

async function loadRulings() {
  const mine = ++rulingsLoad;
  const box = document.getElementById("rulings");
  let answer;
  try {
    answer = await signedPost("/audit/reviews", "request.review_queue", { purpose: PURPOSE, reviewed: true });
  } catch (e) {
    if (mine !== rulingsLoad) return;
    box.replaceChildren(el("li", { class: "muted" }, "The rulings could not be loaded."));
    flash(failure("Rulings not loaded", e));
    return;
  }
  const items = await Promise.all([...answer.events].reverse().map(rulingItem)); // newest first
  if (mine !== rulingsLoad) return;
  box.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No rulings yet.")]));
}

// --- charts -------------------------------------------------------------------------------
const DECISIONS = [
  { key: "permit", label: "permitted" },
  { key: "deny", label: "denied" },
  { key: "break-glass", label: "break-glass" },
];

let charting = 0; // only the latest request paints (an older, slower one may finish last)

async function loadCharts(days) {
  const mine = ++charting;
  const box = document.getElementById("charts");
  box.setAttribute("aria-busy", "true");
  let stats;
  try {
    stats = await signedPost("/audit/stats", "request.access_stats", { purpose: PURPOSE, days });
    if (mine !== charting) return;
  } catch (e) {
    if (mine !== charting) return;
    box.replaceChildren(el("p", { class: "muted" }, "The charts could not be loaded."));
    flash(failure("Access statistics not loaded", e));
    return;
  } finally {
    box.removeAttribute("aria-busy");
  }
  const totals = Object.fromEntries(DECISIONS.map((d) => [d.key, stats.days.reduce((n, day) => n + day[d.key], 0)]));
  const perDay = stackedBars({
    id: "chart-decisions", title: `Access decisions per day (UTC), last ${stats.days.length} days`,
    rowHeader: "Day", series: DECISIONS,
    rows: stats.days.map((d) => ({ key: d.day, label: d.day, shortLabel: d.day.slice(5), values: d })),
    summary: DECISIONS.map((d) => `${totals[d.key]} ${d.label}`).join(", "),
  });
  const actors = await Promise.all(stats.denials_by_actor.map(async (a) => ({
    key: a.actor, label: await nameOf(a.actor), value: a.count,
  })));
  if (mine !== charting) return;
  const denials = horizontalBars({
    id: "chart-denials", title: "Denials by actor", rowHeader: "Actor", valueLabel: "denials",
    rows: actors, empty: "No denials in this period.",
    summary: actors.map((a) => `${a.label}: ${a.value}`).join(", "),
  });
  box.replaceChildren(
    el("p", { id: "charts-total" }, `${stats.total} access decision(s) by this node in the period`
      + (stats.truncated ? " (more than could be counted: the figures are a lower bound)" : "")
      + (stats.other_denials ? `; ${stats.other_denials} denial(s) by other actors not shown` : "") + "."),
    perDay, denials);
}

// --- the page -----------------------------------------------------------------------------
async function main() {
  const identity = await requireIdentity({ kinds: ["practitioner"] });
  const me = await participant(identity.did).catch(() => null);
  if (!me || !me.roles.includes("privacy-officer")) {
    flash("This console is for privacy officers: the node refuses its requests to anyone else.");
    for (const id of ["status", "queue", "charts", "rulings"]) {
      document.getElementById(id).replaceChildren(el("p", { class: "muted" }, "Not available."));
    }
    return;
  }
  renderStatus(document.getElementById("status"), identity.logKey)
    .then(({ ok }) => { if (!ok) flash("The latest checkpoint did not verify against the pinned log key."); })
    .catch((e) => flash(failure("Ledger status not loaded", e)));
  const form = document.getElementById("charts-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadCharts(Number(form.elements.days.value));
  });
  await Promise.all([loadQueue(), loadRulings(), loadCharts(Number(form.elements.days.value))]);
}

main().catch((e) => flash(failure("The console could not start", e)));
