// My records (issue 8 item 4): the patient's records as the ledger anchors them (heads: type,
// versions, tombstones), one opened through key release and decrypted in the browser
// (lib/records.js, as `medledger records get`; decided and logged like anyone's),
// everything downloaded as one FHIR Bundle, and erasure (GDPR art. 17): a signed
// request.erase to the record's custodian node, confirmed in a <dialog>, after which the
// ledger's tombstone shows. The patient's own erase request is honoured by the custodian
// node at once (access gate step 2: a patient may act on their own records). A record opened
// here is proven its latest version against a signed block header (lib/records.js `latest`,
// ADR 0024); a node hiding a newer version or an erasure fails loudly.
import { requireIdentity, signedPost, getJson, el, flash, formatTime, nodeInfo } from "./shell.js";
import { participants, nameOf } from "./patient_directory.js";
import { exportBundle, download } from "./patient_export.js";
import { RecordCheckFailed, readRecordInBrowser } from "../lib/records.js";

const PAGE = 50;
const DETAIL_CONCURRENCY = 6;
const identity = await requireIdentity({ kinds: ["patient"] });
const patientPath = encodeURIComponent(identity.did);
const rowsBody = document.getElementById("records-body");
let directory = new Map();
let nextCursor = null;

async function details(heads) {
  const out = new Map();
  const queue = [...heads];
  async function worker() {
    while (queue.length) {
      const head = queue.shift();
      try {
        out.set(head.record_id, await getJson(`/ledger/records/${patientPath}/${encodeURIComponent(head.record_id)}`));
      } catch {
        out.set(head.record_id, null);
      }
    }
  }
  await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, worker));
  return out;
}

function stateCell(head) {
  if (head.tombstoned) {
    const when = head.tombstone && head.tombstone.time_ms ? ` ${formatTime(head.tombstone.time_ms)}` : "";
    return el("td", { "data-label": "State" }, el("span", { class: "badge tombstone" }, `erased${when}`));
  }
  return el("td", { "data-label": "State" }, el("span", { class: "badge ok" }, "held, encrypted"));
}

function rowOf(head, detail) {
  const versions = (detail && detail.versions) || [];
  const first = versions[0];
  const actions = head.tombstoned ? [] : [
    el("button", { type: "button", class: "secondary", dataset: { view: head.record_id },
      onclick: () => view(head) }, "View"),
    el("button", { type: "button", class: "danger", dataset: { erase: head.record_id },
      onclick: () => askErase(head) }, "Request erasure…"),
  ];
  return el("tr", { class: head.tombstoned ? "erased-row" : null,
    dataset: { recordId: head.record_id, tombstoned: head.tombstoned ? "true" : "false" } },
  el("th", { scope: "row", "data-label": "Type", class: head.tombstoned ? "erased" : null }, head.resource_type),
  el("td", { "data-label": "Written" }, first && first.time_ms ? formatTime(first.time_ms) : "—"),
  el("td", { "data-label": "Versions" }, String(head.version)),
  el("td", { "data-label": "By" }, nameOf(directory, head.author_org)),
  stateCell(head),
  el("td", {}, el("div", { class: "actions" }, ...actions)));
}

async function loadPage(after, append) {
  const query = new URLSearchParams({ limit: String(PAGE), ...(after ? { after } : {}) });
  const [page, dir] = await Promise.all([getJson(`/ledger/records/${patientPath}?${query}`), participants()]);
  directory = dir;
  const more = await details(page.items);
  const rows = page.items.map((head) => rowOf(head, more.get(head.record_id)));
  if (append) rowsBody.append(...rows);
  else rowsBody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6 }, "No records."))]));
  nextCursor = page.next;
  document.getElementById("more-records").hidden = !nextCursor;
  document.getElementById("records").dataset.loaded = "true";
}

async function refresh() {
  try {
    await loadPage(null, false);
  } catch (e) {
    flash(`Could not list your records: ${e.message}`);
  }
}

/** The record's latest version, read again once if a newer one was committed during the read
 * (every byte of the second read is checked the same way). */
async function readLatest(head) {
  const args = { identity, network: nodeInfo().network, patient: identity.did, recordId: head.record_id, purpose: "PATRQT" };
  try {
    return await readRecordInBrowser(args);
  } catch (e) {
    if (e instanceof RecordCheckFailed && e.newerVersion) return readRecordInBrowser(args);
    throw e;
  }
}

async function view(head) {
  const section = document.getElementById("record-view");
  try {
    const result = await readLatest(head);
    document.getElementById("view-h").textContent = `${result.resourceType}, version ${result.version}`;
    document.getElementById("view-meta").textContent =
      "Decrypted here, in your browser, with a key released to this page alone; checked against " +
      "its ciphertext's CID and its commitment on the ledger. Logged as an access event. " +
      `Latest version: verified, against block ${result.latest.height} signed by a network authority.`;
    section.dataset.latest = result.checks.latest ? "verified" : "older";
    document.getElementById("view-content").textContent = JSON.stringify(result.content, null, 2);
    section.hidden = false;
    section.dataset.recordId = head.record_id;
    document.getElementById("view-h").focus();
  } catch (e) {
    section.hidden = true;
    section.dataset.latest = e.step === "latest" ? "failed" : "";
    const verification = e instanceof RecordCheckFailed && e.step !== "denied" && e.step !== "release";
    const failed = verification ? `check "${e.step}" FAILED: ` : "";
    flash(`Could not open the record: ${failed}${e.message}`);
  }
}

function askErase(head) {
  if (head.author_org !== nodeInfo().nodeDid) {
    flash(`This record is held by ${nameOf(directory, head.author_org)}: ask for its erasure at that organization's node.`);
    return;
  }
  const dialog = document.getElementById("erase-dialog");
  document.getElementById("erase-what").textContent = head.resource_type;
  document.getElementById("erase-understood").checked = false;
  dialog.returnValue = "";
  dialog.dataset.recordId = head.record_id;
  dialog.showModal();
}

async function erase(recordId) {
  try {
    const result = await signedPost("/records/erase", "request.erase", {
      patient: identity.did, record_id: recordId, purpose: "PATRQT",
    });
    flash(`Erased: ${result.erased_versions} version(s) destroyed; the ledger's tombstone is in block ${result.height ?? "—"}.`, "info");
    const shown = document.getElementById("record-view");
    if (shown.dataset.recordId === recordId) shown.hidden = true;
  } catch (e) {
    flash(`Erasure failed: ${e.message}`);
  }
  await refresh();
}

async function runExport(button) {
  const status = document.getElementById("export-status");
  button.disabled = true;
  status.textContent = "Collecting your records and audit trail…";
  try {
    const bundle = await exportBundle(identity);
    download(bundle, `medledger-export-${new Date().toISOString().slice(0, 10)}.json`);
    status.textContent = `Downloaded ${bundle.entry.length} resources.`;
  } catch (e) {
    status.textContent = "";
    flash(`Could not export your data: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function wire() {
  const dialog = document.getElementById("erase-dialog");
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "erase" && dialog.dataset.recordId) erase(dialog.dataset.recordId);
  });
  const exportButton = document.getElementById("export");
  exportButton.addEventListener("click", () => runExport(exportButton));
  exportButton.disabled = false;
  document.getElementById("more-records").addEventListener("click", async () => {
    try {
      await loadPage(nextCursor, true);
    } catch (e) {
      flash(`Could not list more records: ${e.message}`);
    }
  });
}

wire();
refresh();
