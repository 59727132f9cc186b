// Sign-in (issue 8 item 1, ADR 0020): a medledger-key/v1 file is opened HERE, in the browser,
// with its passphrase; the seed becomes a non-extractable WebCrypto key and is zeroed; the
// participant's kind and roles come from the ledger; the log verifier key shown on this page is
// pinned for the network (trust on first use: a different key later is refused, loudly).
// Nothing secret leaves the page: the key file is fetched (demo) or read from disk, never sent.
import { openKeyFile, KeyFileError, DECRYPTION_FAILED, MAX_KEY_FILE_BYTES } from "../lib/keyfile.js";
import { importSeed } from "../lib/ed25519.js";
import { saveIdentity, loadIdentity } from "../lib/keyring.js";
import { ApiError, nodeInfo, getJson, flash } from "./shell.js";

const PIN_PREFIX = "medledger.pinned-log-key/";

class SignInError extends Error {}

/** Where a user of this kind and roles starts. */
export function homeOf(participant) {
  if (participant.kind === "patient") return "/portal/timeline";
  if ((participant.roles || []).includes("privacy-officer")) return "/portal/officer";
  return "/portal/clinician";
}

/** ``?next=`` only if it is a portal page of this origin (never another site, never //host). */
export function safeNext(raw) {
  if (!raw || typeof raw !== "string" || raw.length > 512 || !raw.startsWith("/portal/")) return null;
  if (raw.startsWith("//") || raw.includes("\\")) return null;
  try {
    const url = new URL(raw, location.origin);
    if (url.origin !== location.origin || !url.pathname.startsWith("/portal/")) return null;
    return url.pathname + url.search;
  } catch {
    return null;
  }
}

/** Trust on first use: the key this browser pinned for the network, or pin the page's one. */
function pinVerifierKey(network, shown) {
  const name = PIN_PREFIX + network;
  const pinned = localStorage.getItem(name);
  if (pinned !== null && pinned !== shown) {
    throw new SignInError(
      "This node shows a different log key from the one this browser pinned for network " +
      `"${network}". Someone may be showing you a forged log: not signing in. ` +
      "Compare the key with the one your network publishes.",
    );
  }
  localStorage.setItem(name, shown);
  return shown;
}

async function participantOf(did) {
  try {
    return await getJson(`/ledger/participants/${encodeURIComponent(did)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      throw new SignInError("This key is not a registered participant of this network.");
    }
    throw e;
  }
}

function demoLabel(did) {
  const user = (nodeInfo().demo || []).find((u) => u.did === did);
  return user ? user.name : null;
}

async function openAndImport(text, passphrase) {
  let opened;
  try {
    opened = await openKeyFile(text, passphrase);
  } catch (e) {
    if (e instanceof KeyFileError) {
      throw new SignInError(e.kind === "decryption" ? DECRYPTION_FAILED : `key file refused: ${e.message}`);
    }
    throw e;
  }
  try {
    return { did: opened.did, privateKey: await importSeed(opened.seed, { extractable: false }) };
  } finally {
    opened.seed.fill(0);
  }
}

async function signIn(text, passphrase) {
  const info = nodeInfo();
  status("Opening the key in this browser…");
  const { did, privateKey } = await openAndImport(text, passphrase);
  status("Looking the key up on the ledger…");
  const participant = await participantOf(did);
  if (participant.active === false) throw new SignInError("This participant is no longer active.");
  const logKey = pinVerifierKey(info.network, info.verifierKey);
  await saveIdentity({
    did,
    privateKey,
    name: participant.name || demoLabel(did) || did,
    kind: participant.kind,
    roles: participant.roles || [],
    organization: participant.organization || null,
    logKey,
  });
  const next = safeNext(new URLSearchParams(location.search).get("next"));
  location.assign(next || homeOf(participant));
}

function status(text) {
  document.getElementById("signin-status").textContent = text;
}

let busy = false;
async function guarded(run) {
  if (busy) return;
  busy = true;
  document.getElementById("flash").hidden = true;
  try {
    await run();
  } catch (e) {
    status("");
    flash(e instanceof SignInError || e instanceof ApiError ? e.message : `Sign-in failed: ${e.message}`);
  } finally {
    busy = false;
  }
}

async function readFile(file) {
  if (!file) throw new SignInError("Choose your key file first.");
  if (file.size > MAX_KEY_FILE_BYTES) throw new SignInError("That file is too large to be a medledger key file.");
  return file.text();
}

function wire() {
  const form = document.getElementById("keyfile-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const text = await readFile(document.getElementById("key-file").files[0]);
      await signIn(text, document.getElementById("passphrase").value);
    });
  });
  document.getElementById("keyfile-submit").disabled = false;
  for (const button of document.querySelectorAll("[data-demo-user]")) {
    button.addEventListener("click", () => guarded(async () => {
      const name = button.dataset.demoUser;
      status(`Fetching ${name}'s encrypted key file…`);
      const response = await fetch(`/portal/demo-keys/${encodeURIComponent(name)}`);
      if (!response.ok) throw new SignInError(`No demo key for ${name}.`);
      await signIn(await response.text(), nodeInfo().demoPassphrase || "");
    }));
    button.disabled = false;
  }
}

async function showCurrent() {
  const current = await loadIdentity().catch(() => null);
  if (!current) return;
  const home = current.kind === "patient" ? "/portal/timeline" : null;
  const root = document.getElementById("signin-status");
  root.replaceChildren(`You are signed in as ${current.name}. Signing in again replaces that key in this browser.`);
  if (home) {
    const link = document.createElement("a");
    link.href = home;
    link.textContent = " Go to your page";
    root.append(link);
  }
}

wire();
showCurrent();
