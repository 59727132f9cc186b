// A convenience for pages: verify many access-event receipts against one log key, sharing the
// work that receipts have in common. Checkpoint verification is cached per note text and the
// anchor check (log inclusion and the anchor transaction's signature) per anchor text, so a
// timeline of thousands of events costs one signature check per checkpoint and per batch,
// plus a few hashes per event. Nothing is cached across calls.

import { parseVerifierKey } from "./note.js";
import { VerificationFailed, verifyEventReceipt } from "./receipt.js";

/**
 * Verify each receipt (JSON text or object) against verifierKey; call onEach(i, result) as
 * each finishes, in order, where result is {ok: true, reason: null, event, checkpoint, anchor}
 * or {ok: false, reason, message}. Returns the list of results. A bad verifier key throws
 * (nothing can be verified without it); a bad receipt is a failed item, never an exception.
 */
export async function verifyAll(receipts, verifierKey, onEach = () => {}) {
  const logKey = typeof verifierKey === "string" ? await parseVerifierKey(verifierKey) : verifierKey;
  const checkpointCache = new Map();
  const anchorCache = new Map();
  const results = [];
  for (let i = 0; i < receipts.length; i++) {
    let result;
    try {
      const verified = await verifyEventReceipt(receipts[i], logKey, { checkpointCache, anchorCache });
      result = { ok: true, reason: null, ...verified };
    } catch (e) {
      if (!(e instanceof VerificationFailed)) {
        result = { ok: false, reason: "error", message: String(e?.message ?? e) };
      } else {
        result = { ok: false, reason: e.reason, message: e.message };
      }
    }
    results.push(result);
    onEach(i, result);
  }
  return results;
}
