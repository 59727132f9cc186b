// Ledger status for the officer's console (and the explorer): height, the latest checkpoint
// verified HERE against the log key pinned at sign-in, who signed it, and how far behind
// things are. A checkpoint that does not verify is shown failed, loudly, never hidden.
import { ApiError, el, formatTime, getJson } from "./shell.js";
import { verifyCheckpoint } from "../lib/note.js";
import { b64encode } from "../lib/encoding.js";

const MAX_NOTE_CHARS = 16 * 1024;

export async function getText(path) {
  const response = await fetch(path, { headers: { Accept: "text/plain" } });
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, null);
  if (text.length > MAX_NOTE_CHARS) throw new ApiError(413, { error: { message: "checkpoint too large" } });
  return text;
}

/** The names on a signed note's signature lines ("— <name> <base64>"), verified or not. */
export function signerNames(note) {
  const at = note.indexOf("\n\n");
  if (at < 0) return [];
  return note.slice(at + 2).split("\n").filter((l) => l.startsWith("\u2014 "))
    .map((l) => l.slice(2).split(" ")[0]);
}

/** The consortium's status, or null on a solo node (which serves no /consortium routes). */
async function consortiumStatus() {
  try {
    return await getJson("/consortium/status");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

function item(term, ...value) {
  return el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
}

/** Fills `box` with the status; resolves to {checkpoint, ok}. */
export async function renderStatus(box, verifierKey) {
  const [block, note, health, consortium] = await Promise.all([
    getJson("/ledger/blocks/latest"), getText("/log/checkpoint"), getJson("/healthz"),
    consortiumStatus(),
  ]);
  let checkpoint = null;
  let failure = null;
  try {
    checkpoint = await verifyCheckpoint(note, verifierKey);
  } catch (e) {
    failure = e.message || String(e);
  }
  const logName = verifierKey.split("+")[0];
  const signers = signerNames(note);
  const cosigners = signers.filter((n) => n !== logName);
  const lag = consortium
    ? `consortium: ${consortium.height - (consortium.final_height ?? 0)} block(s) awaiting finality`
      + ` (final height ${consortium.final_height ?? "none"})`
    : "solo: this node is the network's only orderer, a committed block is final";
  const uncovered = checkpoint ? Math.max(0, health.log_size - Number(checkpoint.size)) : null;
  box.replaceChildren(
    el("dl", { class: "status-grid" },
      item("Block height", el("span", { id: "status-height" }, String(block.header.height))),
      item("Latest block", formatTime(block.header.time_ms)),
      item("Latest checkpoint",
        checkpoint
          ? el("span", { id: "status-checkpoint", "data-verified": "true" },
            `size ${checkpoint.size} `, el("span", { class: "badge ok" }, "verified"))
          : el("span", { id: "status-checkpoint", "data-verified": "false", class: "verify-failed" },
            `checkpoint FAILED verification against the pinned key: ${failure}`)),
      item("Checkpoint root", el("code", {}, checkpoint ? b64encode(checkpoint.rootHash) : "—")),
      item("Signed by", el("span", { id: "status-signers" },
        signers.includes(logName) ? `${logName} (log key, ${checkpoint ? "verified" : "not verified"})` : "—")),
      item("Co-signers", el("span", { id: "status-cosigners" },
        cosigners.length ? cosigners.join(", ") + " (present; no witness key pinned to check them)"
          : "none (a solo node's checkpoints carry the log's signature only)")),
      item("Lag", el("span", { id: "status-lag", "data-mode": consortium ? "consortium" : "solo" }, lag)),
      item("Log entries not yet in a checkpoint",
        el("span", { id: "status-uncovered" }, uncovered === null ? "—" : String(uncovered)))),
  );
  return { checkpoint, ok: Boolean(checkpoint) };
}
