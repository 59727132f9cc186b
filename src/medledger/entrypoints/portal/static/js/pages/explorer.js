// The ledger explorer (issue 8 item 6), open to anyone: blocks with paging, a block's
// transactions, the log's signed checkpoints, and a consistency check between any two
// checkpoints run HERE: both notes verified against the log key (the one pinned at sign-in,
// else the one this page was served with, said so), the proof from /log/proof/consistency
// checked with RFC 9162 §2.1.4.2. Tampering shows as failed, loudly.
import { ApiError, currentIdentity, el, flash, formatTime, getJson, nodeInfo } from "./shell.js";
import { b64decode, b64encode } from "../lib/encoding.js";
import { verifyConsistency } from "../lib/merkle.js";
import { verifyCheckpoint } from "../lib/note.js";
import { nameOf } from "./officer_names.js";
import { keepNote, keptNotes, seenNote } from "./explorer_store.js";

const BLOCKS_PER_PAGE = 10;
const MAX_TXS_SHOWN = 50;
const CHECKPOINTS_PER_PAGE = 20;

let verifierKey = null;
let origin = null;
let latestHeight = 0;
let topHeight = 0;
const checkpoints = new Map(); // size -> {size, note, rootHash, ok, reason}
let nextBefore = null;

// --- blocks -------------------------------------------------------------------------------
// Only the latest paging or block request paints: an older, slower answer may finish last.
let paging = 0;
let showing = 0;

async function loadBlocks(top) {
  const mine = ++paging;
  const box = document.getElementById("blocks");
  box.setAttribute("aria-busy", "true");
  try {
    const latest = await getJson("/ledger/blocks/latest");
    if (mine !== paging) return;
    latestHeight = latest.height;
    topHeight = Math.max(0, Math.min(top ?? latestHeight, latestHeight));
    const heights = [];
    for (let h = topHeight; h >= 0 && heights.length < BLOCKS_PER_PAGE; h -= 1) heights.push(h);
    const blocks = await Promise.all(heights.map((h) => (h === latest.height ? latest : getJson(`/ledger/blocks/${h}`))));
    if (mine !== paging) return;
    box.replaceChildren(el("table", { class: "responsive", id: "blocks-table" },
      el("thead", {}, el("tr", {}, ["Height", "Time", "Transactions", "Hash", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, blocks.map((b) => el("tr", { "data-height": b.height },
        el("td", { "data-label": "Height" }, String(b.height)),
        el("td", { "data-label": "Time" }, formatTime(b.header.time_ms)),
        el("td", { "data-label": "Transactions" }, String(b.transactions.length)),
        el("td", { "data-label": "Hash" }, el("code", { title: b.hash }, `${b.hash.slice(0, 16)}…`)),
        el("td", {}, el("button", { type: "button", class: "link", "data-show-block": b.height,
          onclick: () => showBlock(b) }, `Show block ${b.height}`)))))));
    document.getElementById("blocks-newer").disabled = topHeight >= latestHeight;
    document.getElementById("blocks-older").disabled = topHeight - BLOCKS_PER_PAGE < 0;
  } catch (e) {
    if (mine === paging) flash(`Blocks not loaded: ${e.message || e}`);
  } finally {
    if (mine === paging) box.removeAttribute("aria-busy");
  }
}

async function txRow(summary) {
  let body;
  try {
    body = (await getJson(`/ledger/transactions/${summary.tx_id}`)).transaction;
  } catch {
    body = null;
  }
  const sender = body ? await nameOf(body.sender) : "?";
  return el("tr", { "data-tx-id": summary.tx_id, "data-type": body ? body.type : "" },
    el("td", { "data-label": "Type" }, body ? body.type : "(not found)"),
    el("td", { "data-label": "Sender" }, el("span", { title: body ? body.sender : "" }, sender)),
    el("td", { "data-label": "Transaction" }, el("code", { title: summary.tx_id }, `${summary.tx_id.slice(0, 16)}…`)),
    el("td", { "data-label": "Result" }, summary.ok
      ? el("span", { class: "badge ok" }, "ok")
      : el("span", { class: "badge bad" }, `failed: ${summary.reason}`)),
    el("td", { "data-label": "Payload" }, body
      ? el("details", {}, el("summary", {}, "payload"), el("pre", { class: "payload" }, JSON.stringify(body.payload, null, 2)))
      : ""));
}

async function showBlock(block) {
  const mine = ++showing;
  const section = document.getElementById("block-section");
  const detail = document.getElementById("block-detail");
  section.hidden = false;
  document.getElementById("block-h").textContent = `Block ${block.height}`;
  document.querySelectorAll("#blocks-table tr.selected").forEach((r) => r.classList.remove("selected"));
  document.querySelector(`#blocks-table tr[data-height="${block.height}"]`)?.classList.add("selected");
  detail.replaceChildren(el("p", { class: "muted" }, "Loading transactions…"));
  const shown = block.transactions.slice(0, MAX_TXS_SHOWN);
  const rows = await Promise.all(shown.map(txRow));
  if (mine !== showing) return;
  const missing = rows.filter((r) => !r.dataset.type).length;
  if (missing) flash(`${missing} transaction(s) of block ${block.height} could not be loaded.`);
  detail.replaceChildren(el("div", {},
    el("dl", { class: "status-grid" },
      el("div", {}, el("dt", {}, "Hash"), el("dd", {}, el("code", {}, block.hash))),
      el("div", {}, el("dt", {}, "Previous"), el("dd", {}, el("code", {}, block.header.prev || "—"))),
      el("div", {}, el("dt", {}, "State root"), el("dd", {}, el("code", {}, block.header.state_root || "—"))),
      el("div", {}, el("dt", {}, "Log size after the block"), el("dd", {}, String(block.header.log_size)))),
    block.transactions.length > MAX_TXS_SHOWN
      ? el("p", {}, `The first ${MAX_TXS_SHOWN} of ${block.transactions.length} transactions.`) : null,
    rows.length
      ? el("table", { class: "responsive", id: "txs-table" },
        el("thead", {}, el("tr", {}, ["Type", "Sender", "Transaction", "Result", "Payload"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows))
      : el("p", {}, "No transactions in this block.")));
  document.getElementById("block-h").focus();
}

// --- checkpoints --------------------------------------------------------------------------
async function check(size, note) {
  try {
    const cp = await verifyCheckpoint(note, verifierKey);
    if (cp.size !== size) throw new Error(`the note says size ${cp.size}, the listing ${size}`);
    const seen = await seenNote(origin, size).catch(() => undefined);
    if (seen !== undefined && seen !== note) {
      throw new Error(`this browser saw a different checkpoint of size ${size} before: the log forked`);
    }
    await keepNote(origin, size, note).catch(() => {});
    return { size, note, rootHash: cp.rootHash, ok: true, reason: null };
  } catch (e) {
    return { size, note, rootHash: null, ok: false, reason: e.message || String(e) };
  }
}

function renderCheckpoints() {
  const rows = [...checkpoints.values()].sort((a, b) => b.size - a.size);
  document.getElementById("checkpoints").replaceChildren(
    el("table", { class: "responsive", id: "checkpoints-table" },
      el("thead", {}, el("tr", {}, ["Size", "Root hash", "Signature"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((c) => el("tr", { "data-size": c.size, "data-verified": String(c.ok) },
        el("td", { "data-label": "Size" }, String(c.size)),
        el("td", { "data-label": "Root hash" }, el("code", {}, c.rootHash ? b64encode(c.rootHash) : "—")),
        el("td", { "data-label": "Signature" }, c.ok
          ? el("span", { class: "badge ok" }, "verified")
          : el("span", { class: "verify-failed" }, `FAILED: ${c.reason}`)))))));
  const good = rows.filter((c) => c.ok);
  for (const [id, pick] of [["cp-from", good[good.length > 1 ? 1 : 0]], ["cp-to", good[0]]]) {
    const select = document.getElementById(id);
    const current = select.value;
    select.replaceChildren(...good.map((c) => el("option", { value: c.size }, `size ${c.size}`)));
    select.value = current && checkpoints.has(Number(current)) ? current : String(pick ? pick.size : "");
  }
}

async function loadCheckpoints() {
  const query = new URLSearchParams({ limit: String(CHECKPOINTS_PER_PAGE) });
  if (nextBefore !== null) query.set("before", String(nextBefore));
  try {
    const page = await getJson(`/log/checkpoints?${query}`);
    const checked = await Promise.all(page.items.map((i) => check(i.size, i.note)));
    for (const c of checked) checkpoints.set(c.size, c);
    nextBefore = page.next;
    document.getElementById("checkpoints-more").hidden = page.next === null;
    if (checked.some((c) => !c.ok)) flash("A checkpoint served by the node FAILED verification: see below.");
  } catch (e) {
    flash(`Checkpoints not loaded: ${e.message || e}`);
  }
  renderCheckpoints();
}

async function loadKept() {
  const kept = await keptNotes(origin).catch(() => []);
  for (const { size, note } of kept) {
    if (!checkpoints.has(size)) checkpoints.set(size, await check(size, note));
  }
}

// --- the consistency check ----------------------------------------------------------------
function showResult(ok, message, details = []) {
  const box = document.getElementById("consistency-result");
  box.replaceChildren(el("div", { class: ok ? "consistency-ok" : "verify-failed", "data-result": ok ? "ok" : "failed" },
    el("p", {}, message), details.length ? el("ul", {}, details.map((d) => el("li", {}, d))) : null));
}

async function checkConsistency(fromSize, toSize) {
  let [a, b] = [checkpoints.get(fromSize), checkpoints.get(toSize)];
  if (!a || !b || a.size === b.size) { flash("Pick two different checkpoints."); return; }
  if (a.size > b.size) [a, b] = [b, a];
  document.getElementById("consistency-result").replaceChildren(el("p", { class: "muted" }, "Checking…"));
  // 1. both notes, again, against the key (they may come from storage)
  const [older, newer] = [await check(a.size, a.note), await check(b.size, b.note)];
  for (const c of [older, newer]) {
    if (!c.ok) {
      showResult(false, `FAILED: checkpoint ${c.size} does not verify against the log key.`, [c.reason]);
      return;
    }
  }
  // 2. the proof, as served
  let proof;
  try {
    const body = await getJson(`/log/proof/consistency?from=${older.size}&to=${newer.size}`);
    if (body.from !== older.size || body.to !== newer.size || !Array.isArray(body.hashes) || body.hashes.length > 64) {
      throw new Error("the node answered for other sizes or with a malformed proof");
    }
    proof = body.hashes.map((h) => b64decode(h));
  } catch (e) {
    showResult(false, "FAILED: no usable consistency proof.", [e instanceof ApiError ? e.message : String(e.message || e)]);
    return;
  }
  // 3. RFC 9162 §2.1.4.2
  let ok;
  try {
    ok = await verifyConsistency(older.size, newer.size, older.rootHash, newer.rootHash, proof);
  } catch {
    ok = false;
  }
  if (ok) {
    showResult(true, `Consistent: the log of size ${newer.size} extends the log of size ${older.size}.`, [
      `Both checkpoints signed by ${verifierKey.split("+")[0]}, verified in this browser.`,
      `Proof of ${proof.length} hash(es) checked (RFC 9162 §2.1.4.2).`,
    ]);
  } else {
    showResult(false, `FAILED: the proof does not show that size ${newer.size} extends size ${older.size}.`, [
      "Either the proof was altered in transit or the log rewrote its history. Do not trust this log's answers.",
    ]);
    flash("Consistency check FAILED.");
  }
}

// --- the page -----------------------------------------------------------------------------
async function main() {
  const identity = await currentIdentity().catch(() => null);
  verifierKey = (identity && identity.logKey) || nodeInfo().verifierKey;
  origin = verifierKey.split("+")[0];
  if (!(identity && identity.logKey)) {
    document.getElementById("key-source").textContent = "this page was served with (sign in to pin it)";
  }
  document.getElementById("blocks-newer").addEventListener("click", () => loadBlocks(topHeight + BLOCKS_PER_PAGE));
  document.getElementById("blocks-older").addEventListener("click", () => loadBlocks(topHeight - BLOCKS_PER_PAGE));
  document.getElementById("blocks-latest").addEventListener("click", () => loadBlocks(null));
  document.getElementById("checkpoints-more").addEventListener("click", loadCheckpoints);
  const form = document.getElementById("consistency-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    checkConsistency(Number(form.elements.from.value), Number(form.elements.to.value));
  });
  await Promise.all([loadBlocks(null), loadKept().then(loadCheckpoints)]);
}

main().catch((e) => flash(`The explorer could not start: ${e.message || e}`));
