// The privacy officer's console (issue 8 item 5): break-glass review queue, access-decision
// charts, ledger status. A client of the node's signed API (ADR 0020): the queue and the
// aggregates are signed requests (request.review_queue, request.access_stats) and each
// ruling an access.review transaction, all signed in this browser; the node decides who may.
import { ApiError, el, flash, formatTime, requireIdentity, shortDid, signedPost, submitTx } from "./shell.js";
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
async function review(row, event, batchId, outcome) {
  const buttons = row.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  row.setAttribute("aria-busy", "true");
  try {
    const status = await submitTx("access.review", { batch_id: batchId, event_id: event.event_id, outcome });
    // keyboard users keep their place: focus moves to the next row's ruling, else the heading
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    (next?.querySelector("button") || document.getElementById("reviewed-h")).focus();
    document.getElementById("reviewed").append(el("li", {
      "data-event-id": event.event_id, "data-tx-id": status.tx_id, "data-outcome": outcome,
    }, `${formatTime(event.time_ms)} — ${outcome} (block ${status.height}, transaction `,
    el("code", {}, status.tx_id.slice(0, 16) + "…"), ")"));
    flash(`Reviewed as ${outcome}: recorded on the ledger in block ${status.height}.`, "info");
    const body = document.querySelector("#queue tbody");
    if (body && !body.children.length) await loadQueue();
  } catch (e) {
    if (e instanceof ApiError && e.message === "already_reviewed") {
      flash("Someone reviewed this access already: the queue is reloaded.", "info");
      await loadQueue();
      return;
    }
    buttons.forEach((b) => { b.disabled = false; });
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
    for (const id of ["status", "queue", "charts"]) {
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
  await Promise.all([loadQueue(), loadCharts(Number(form.elements.days.value))]);
}

main().catch((e) => flash(failure("The console could not start", e)));
