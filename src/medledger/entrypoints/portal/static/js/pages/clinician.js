// The practitioner's page (issue 8 item 5-6): pick a registered patient, list their anchored
// records (ledger heads, no content), read one with a signed request.read. The node decides
// against the patient's consent; a denial shows as such (and is an access event the patient
// sees). Emergency physicians may break the glass: purpose BTG or ETREAT with a justification.
// Nothing identifying goes into the URL or the console.
import { ApiError, el, flash, getJson, nodeInfo, requireIdentity, shortDid, signedPost } from "./shell.js";
import { participant, registeredPatients } from "./officer_names.js";

const BREAK_GLASS = ["ETREAT", "BTG"];
const MIN_JUSTIFICATION = 10;
const form = document.getElementById("patient-form");
const purposeSelect = document.getElementById("purpose");
const breakGlass = document.getElementById("break-glass");
const justification = document.getElementById("justification");

const demoNames = new Map((nodeInfo().demo || []).map((u) => [u.did, u.name]));

function patientLabel(p) {
  const demo = demoNames.get(p.did);
  return demo ? `${demo} (${shortDid(p.did)})` : shortDid(p.did);
}

async function fillPatients() {
  const patients = await registeredPatients();
  patients.sort((a, b) => patientLabel(a).localeCompare(patientLabel(b)));
  const select = document.getElementById("patient");
  select.replaceChildren(el("option", { value: "" }, patients.length ? "Choose a patient…" : "No patients registered"),
    ...patients.map((p) => el("option", { value: p.did, "data-name": demoNames.get(p.did) || "" }, patientLabel(p))));
}

// Only the latest listing or read may paint: an earlier, slower answer (the patient changed
// meanwhile) must never show one patient's records under another's name.
let listing = 0;
let reading = 0;

async function listRecords(patient) {
  const mine = ++listing;
  reading += 1; // a read still on its way is about the previous patient
  const box = document.getElementById("records");
  box.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  box.setAttribute("aria-busy", "true");
  try {
    const heads = [];
    let after = "";
    for (let page = 0; page < 10; page += 1) {
      const query = new URLSearchParams({ limit: "100" });
      if (after) query.set("after", after);
      const body = await getJson(`/ledger/records/${encodeURIComponent(patient)}?${query}`);
      if (mine !== listing) return;
      heads.push(...body.items);
      if (!body.next) break;
      after = body.next;
    }
    if (!heads.length) {
      box.replaceChildren(el("p", {}, "No records are anchored for this patient."));
      return;
    }
    box.replaceChildren(el("table", { class: "responsive", id: "records-table" },
      el("thead", {}, el("tr", {}, ["Record", "Type", "Version", "Status", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, heads.map((h) => el("tr", { "data-record-id": h.record_id },
        el("td", { "data-label": "Record" }, el("code", {}, h.record_id)),
        el("td", { "data-label": "Type" }, h.resource_type),
        el("td", { "data-label": "Version" }, String(h.version)),
        el("td", { "data-label": "Status" }, h.tombstoned ? "erased" : "current"),
        el("td", {}, h.tombstoned ? "" : el("button", {
          type: "button", "data-read": h.record_id,
          "aria-label": `Read ${h.resource_type} ${h.record_id}`,
          onclick: () => read(patient, h.record_id),
        }, "Read")))))));
  } catch (e) {
    if (mine !== listing) return;
    box.replaceChildren(el("p", { class: "muted" }, "The records could not be listed."));
    flash(`Records not listed: ${e.message || e}`);
  } finally {
    if (mine === listing) box.removeAttribute("aria-busy");
  }
}

async function read(patient, recordId) {
  const purpose = purposeSelect.value;
  const payload = { patient, record_id: recordId, purpose };
  if (BREAK_GLASS.includes(purpose)) {
    const why = justification.value.trim();
    if (why.length < MIN_JUSTIFICATION) {
      flash(`Breaking the glass needs a justification of at least ${MIN_JUSTIFICATION} characters.`);
      justification.focus();
      return;
    }
    payload.justification = why;
  }
  const mine = ++reading;
  const box = document.getElementById("result");
  box.replaceChildren(el("p", { class: "muted" }, "Asking the record's custodian…"));
  try {
    const result = await signedPost("/records/read", "request.read", payload);
    if (mine !== reading) return;
    box.replaceChildren(el("div", { class: "result", "data-record-id": recordId, "data-outcome": "permitted" },
      el("h3", {}, `Permitted: ${result.resource_type} ${recordId}, version ${result.version}`),
      BREAK_GLASS.includes(purpose)
        ? el("p", { class: "badge warn" }, "Asked as BREAK-GLASS: unless a consent covered it, the access is"
          + " recorded as break-glass with your justification, shown to the patient and queued for review")
        : null,
      el("pre", { class: "payload" }, JSON.stringify(result.content, null, 2))));
    flash("Read permitted; the access is recorded in the patient's audit trail.", "info");
  } catch (e) {
    if (mine !== reading) return;
    if (e instanceof ApiError && e.status === 403) {
      const reasons = (e.message || "").replace(/^access denied:\s*/, "");
      box.replaceChildren(el("div", { class: "result", "data-record-id": recordId, "data-outcome": "denied" },
        el("h3", {}, "Denied by the patient's consent"),
        el("p", {}, `The node refused this read (${reasons || "no permit"}). The attempt is recorded:`
          + " the patient sees it in their audit trail.")));
      flash("Denied by the patient's consent. The attempt is recorded and the patient sees it.");
    } else {
      box.replaceChildren();
      flash(`The read failed: ${e.message || e}`);
    }
  }
}

async function main() {
  const identity = await requireIdentity({ kinds: ["practitioner"] });
  const me = await participant(identity.did).catch(() => null);
  if (me && me.roles.includes("emergency-physician")) {
    purposeSelect.append(
      el("option", { value: "ETREAT" }, "Emergency treatment (ETREAT): break the glass"),
      el("option", { value: "BTG" }, "Break the glass (BTG)"));
  }
  purposeSelect.addEventListener("change", () => {
    breakGlass.hidden = !BREAK_GLASS.includes(purposeSelect.value);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const patient = form.elements.patient.value;
    if (!patient) { flash("Choose a patient first."); return; }
    document.getElementById("result").replaceChildren();
    listRecords(patient);
  });
  form.elements.patient.addEventListener("change", () => form.requestSubmit());
  await fillPatients();
}

main().catch((e) => flash(`The page could not start: ${e.message || e}`));
