// Consent (issue 8 item 3): the patient's consents from the ledger (GET /consents/{patient}),
// a grant built exactly as the CLI's `consent grant --to` builds it (core/consent/simple.py
// permit_to: one permit provision naming the grantee as PRCP), and revocation; each a
// consent.grant / consent.revoke transaction signed in this browser. "Who can see what" is
// recomputed from the ledger after every change.
import { hexEncode, randomBytes } from "../lib/encoding.js";
import { requireIdentity, submitTx, getJson, el, flash, formatTime, shortDid } from "./shell.js";
import { participants, nameOf, grantees } from "./patient_directory.js";

const DAY_MS = 86_400_000;
const identity = await requireIdentity({ kinds: ["patient"] });
let directory = new Map();

/** The policy JSON of permit_to(consent_id, patient, actor, purposes, classes, until_ms), with
 * an optional start of the period too (the policy form's Period; start inclusive, end not). */
export function permitTo(consentId, patient, actor, { purposes, classes, untilMs, fromMs = null }) {
  return {
    consent_id: consentId,
    patient,
    status: "active",
    scope: "patient-privacy",
    categories: ["http://loinc.org|59284-0"],
    performers: [],
    organizations: [],
    policy_rule: null,
    date_time_ms: null,
    provision: {
      type: "permit",
      period: untilMs === null && fromMs === null ? null : { start_ms: fromMs, end_ms: untilMs },
      actors: [{ role: "PRCP", reference: actor, practitioner_role: null }],
      actions: ["access"],
      security_labels: [],
      purposes: [...new Set(purposes)].sort(),
      classes: [...new Set(classes)].sort(),
      codes: [],
      data_period: null,
      data: [],
      provisions: [],
    },
  };
}

function untilText(period) {
  const from = period && period.start_ms !== null && period.start_ms !== undefined ? `from ${formatTime(period.start_ms)} ` : "";
  if (!period || period.end_ms === null || period.end_ms === undefined) return `${from}until revoked`;
  return `${from}until ${formatTime(period.end_ms)}`;
}

function actorsOf(provision) {
  return (provision.actors || []).map((a) =>
    a.reference ? nameOf(directory, a.reference) : a.practitioner_role ? `any ${a.practitioner_role}` : "anyone");
}

function describe(consent) {
  const p = consent.provision || {};
  const classes = (p.classes || []).length ? p.classes.join(", ") : "all records";
  const purposes = (p.purposes || []).length ? p.purposes.join(", ") : "any purpose";
  const nested = (p.provisions || []).length;
  const who = actorsOf(p).join(", ") || "anyone";
  return `${p.type || "?"} ${who}: ${classes}, for ${purposes}, ${untilText(p.period)}` +
    (nested ? ` (with ${nested} exception(s))` : "");
}

/** "Who can see what": one row per grantee of each active permit (nested rules noted). */
function whoCanSee(active) {
  const rows = [];
  for (const row of active) {
    const p = (row.consent && row.consent.provision) || {};
    if (p.type !== "permit") continue;
    const actors = (p.actors || []).length ? p.actors : [{ reference: null, practitioner_role: null }];
    for (const actor of actors) {
      const who = actor.reference ? nameOf(directory, actor.reference)
        : actor.practitioner_role ? `any ${actor.practitioner_role}` : "anyone";
      rows.push(el("tr", { dataset: { grantee: actor.reference || "", consentId: row.consent_id } },
        el("th", { scope: "row", "data-label": "Who" }, who),
        el("td", { "data-label": "Which records" }, (p.classes || []).length ? p.classes.join(", ") : "all records"),
        el("td", { "data-label": "For" }, (p.purposes || []).length ? p.purposes.join(", ") : "any purpose"),
        el("td", { "data-label": "Until" }, untilText(p.period)),
        el("td", { "data-label": "Consent" }, el("code", {}, row.consent_id),
          (p.provisions || []).length ? el("span", { class: "muted" }, ` (+${p.provisions.length} exception(s))`) : null)));
    }
  }
  return rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, "Nobody else, by consent: you have no active grants."))];
}

async function revoke(consentId, button) {
  button.disabled = true;
  try {
    const status = await submitTx("consent.revoke", { patient: identity.did, consent_id: consentId });
    if (!status.ok) throw new Error(status.message || status.reason || "refused");
    flash(`Revoked ${consentId} (block ${status.height}).`, "info");
  } catch (e) {
    flash(`Could not revoke ${consentId}: ${e.message}`);
  }
  await refresh();
}

async function refresh() {
  let listing;
  try {
    [listing, directory] = await Promise.all([
      getJson(`/consents/${encodeURIComponent(identity.did)}`),
      participants(),
    ]);
  } catch (e) {
    flash(`Could not load your consents: ${e.message}`);
    return;
  }
  const active = listing.consents.filter((c) => c.status === "active");
  const revoked = listing.consents.filter((c) => c.status !== "active");
  document.getElementById("who-can-see-body").replaceChildren(...whoCanSee(active));
  document.getElementById("active-body").replaceChildren(
    ...(active.length ? active.map((row) => {
      const button = el("button", { type: "button", class: "danger", "data-revoke": row.consent_id }, "Revoke");
      button.addEventListener("click", () => revoke(row.consent_id, button));
      return el("tr", { dataset: { consentId: row.consent_id, status: "active" } },
        el("th", { scope: "row", "data-label": "Consent" }, el("code", {}, row.consent_id)),
        el("td", { "data-label": "Grants" }, row.consent ? describe(row.consent) : "—"),
        el("td", { "data-label": "Granted in block" }, String(row.granted_height ?? "—")),
        el("td", {}, button));
    }) : [el("tr", {}, el("td", { colspan: 4 }, "No active consents."))]));
  document.getElementById("revoked-body").replaceChildren(
    ...(revoked.length ? revoked.map((row) => el("tr", { dataset: { consentId: row.consent_id, status: row.status } },
      el("th", { scope: "row", "data-label": "Consent" }, el("code", {}, row.consent_id)),
      el("td", { "data-label": "Granted" }, row.consent ? describe(row.consent) : "—"),
      el("td", { "data-label": "Granted in block" }, String(row.granted_height ?? "—")),
      el("td", { "data-label": "Revoked in block" }, String(row.revoked_height ?? "—"))))
      : [el("tr", {}, el("td", { colspan: 4 }, "None."))]));
  document.getElementById("who-can-see").dataset.loaded = "true";
}

async function fillGrantees() {
  const select = document.getElementById("g-grantee");
  try {
    directory = await participants();
  } catch (e) {
    flash(`Could not load the participants: ${e.message}`);
    return;
  }
  for (const p of grantees(directory)) {
    const org = p.kind === "practitioner" && p.organization ? ` — ${nameOf(directory, p.organization)}` : "";
    select.append(el("option", { value: p.did }, `${p.label}${p.kind === "organization" ? " (organization)" : org} · ${shortDid(p.did)}`));
  }
}

function wire() {
  const form = document.getElementById("grant-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const grantee = data.get("grantee");
    const purposes = data.getAll("purpose");
    if (!grantee) return flash("Choose who to grant access to.");
    if (purposes.length === 0) return flash("Choose at least one purpose.");
    const until = data.get("until");
    const untilMs = until ? Date.parse(`${until}T00:00:00Z`) + DAY_MS : null;
    if (untilMs !== null && (!Number.isFinite(untilMs) || untilMs <= Date.now())) {
      return flash("“Until” must be a date in the future.");
    }
    const from = data.get("from");
    const fromMs = from ? Date.parse(`${from}T00:00:00Z`) : null;
    if (fromMs !== null && (!Number.isFinite(fromMs) || (untilMs !== null && fromMs >= untilMs))) {
      return flash("“From” must be a date before “Until”.");
    }
    const consentId = `consent-${hexEncode(randomBytes(6))}`;
    const consent = permitTo(consentId, identity.did, grantee, {
      purposes, classes: data.getAll("class"), untilMs, fromMs,
    });
    const button = document.getElementById("grant-submit");
    button.disabled = true;
    try {
      const status = await submitTx("consent.grant", { consent });
      if (!status.ok) throw new Error(status.message || status.reason || "refused");
      flash(`Granted ${consentId} to ${nameOf(directory, grantee)} (block ${status.height}).`, "info");
      form.reset();
    } catch (e) {
      flash(`Could not grant: ${e.message}`);
    } finally {
      button.disabled = false;
    }
    await refresh();
  });
}

wire();
await fillGrantees();
await refresh();
