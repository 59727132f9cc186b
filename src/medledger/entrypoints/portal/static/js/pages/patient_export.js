// Download everything (GDPR art. 15 and 20): the patient's records as FHIR ($everything, with a
// SMART token from a private_key_jwt assertion signed HERE, ADR 0017 / token_cmd.py) and their
// audit trail as IHE BALP AuditEvents (signed request.list_audit, output fhir), in ONE FHIR R4
// Bundle of type "collection", saved as a file by the browser. Nothing is sent anywhere else.
import { b64urlEncode, randomBytes, utf8 } from "../lib/encoding.js";
import { canonicalize } from "../lib/jcs.js";
import { sign } from "../lib/ed25519.js";
import { ApiError, getJson, signedPost, nodeInfo } from "./shell.js";

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ASSERTION_LIFETIME_S = 60;
const AUDIT_PAGE = 1000;
const MAX_AUDIT_PAGES = 200; // 200,000 events: far beyond any patient's trail today
const FHIR_JSON = "application/fhir+json";
const DID_SYSTEM = "urn:ietf:rfc:3986";

/** RFC 7523 client assertion, EdDSA compact JWS (RFC 8037), kid = the did:key. */
export async function clientAssertion(identity, tokenEndpoint, nowS = Math.floor(Date.now() / 1000)) {
  const header = b64urlEncode(utf8(JSON.stringify({ alg: "EdDSA", kid: identity.did, typ: "JWT" })));
  const claims = {
    iss: identity.did, sub: identity.did, aud: tokenEndpoint,
    iat: nowS, exp: nowS + ASSERTION_LIFETIME_S, jti: b64urlEncode(randomBytes(18)),
  };
  const input = `${header}.${b64urlEncode(utf8(canonicalize(claims)))}`;
  return `${input}.${b64urlEncode(await sign(identity.privateKey, utf8(input)))}`;
}

/** A SMART access token for the patient's own data (patient/*.rs), via the node's endpoint. */
export async function patientToken(identity) {
  const config = await getJson("/.well-known/smart-configuration");
  const endpoint = new URL(config.token_endpoint, location.origin);
  if (endpoint.origin !== location.origin) throw new Error("the node names a token endpoint on another site");
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: await clientAssertion(identity, config.token_endpoint),
    scope: "patient/*.rs",
  });
  const response = await fetch(endpoint.pathname, {
    method: "POST", body: form,
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.access_token !== "string") {
    throw new Error(`token refused: ${body.error_description || body.error || response.status}`);
  }
  return body.access_token;
}

async function fhirGet(path, token) {
  const response = await fetch(path, { headers: { Accept: FHIR_JSON, Authorization: `Bearer ${token}` } });
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** The FHIR Patient whose identifier is the patient's did:key (their pseudonymous id). */
async function patientId(identity, token) {
  const query = new URLSearchParams({ identifier: `${DID_SYSTEM}|${identity.did}` });
  const bundle = await fhirGet(`/fhir/Patient?${query}`, token);
  const match = (bundle.entry || []).map((e) => e.resource).find((r) =>
    r && r.resourceType === "Patient" && (r.identifier || []).some((i) => i.value === identity.did));
  if (!match) throw new Error("this node holds no FHIR Patient for you");
  return match.id;
}

async function auditTrail(identity) {
  const entries = [];
  let after = null;
  for (let page = 0; page < MAX_AUDIT_PAGES; page += 1) {
    const bundle = await signedPost("/audit/events", "request.list_audit", {
      patient: identity.did, purpose: "PATRQT", format: "fhir", limit: AUDIT_PAGE, ...(after ? { after } : {}),
    });
    const got = bundle.entry || [];
    entries.push(...got);
    const ids = new Set(got.map((e) => String(e.resource.id).split("-")[0]));
    if (ids.size < AUDIT_PAGE || got.length === 0) return entries;
    after = String(got.at(-1).resource.id).split("-")[0];
  }
  throw new Error("the audit trail is longer than the portal downloads at once; use the CLI");
}

/** Entries as a collection holds them: a fullUrl and the resource, no search/request parts. */
function collected(entries, base) {
  return entries.map((e) => ({
    fullUrl: e.fullUrl || `${base}/${e.resource.resourceType}/${e.resource.id}`,
    resource: e.resource,
  }));
}

/** The whole export as a FHIR R4 Bundle (type collection). */
export async function exportBundle(identity) {
  const token = await patientToken(identity);
  const id = await patientId(identity, token);
  const everything = await fhirGet(`/fhir/Patient/${encodeURIComponent(id)}/$everything`, token);
  const audit = await auditTrail(identity);
  const base = nodeInfo().fhirBase;
  const seen = new Set();
  const entry = [...collected(everything.entry || [], base), ...collected(audit, base)]
    .filter((e) => (seen.has(e.fullUrl) ? false : seen.add(e.fullUrl)));
  return {
    resourceType: "Bundle",
    type: "collection",
    timestamp: new Date().toISOString(),
    entry,
  };
}

/** Hands a JSON document to the browser as a file download. */
export function download(document_, filename) {
  const blob = new Blob([JSON.stringify(document_, null, 2)], { type: FHIR_JSON });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
