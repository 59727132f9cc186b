// Copies the portal's one third-party dependency, scrypt from @noble/hashes, out of
// node_modules (installed by `npm ci --ignore-scripts` from package-lock.json) into the
// portal's static directory, and writes SHA256SUMS over what it copied.
//
// Deterministic: the file set is the transitive closure of relative imports from the entry
// points, visited in sorted order; files are copied byte for byte except for bare
// `@noble/hashes/...` specifiers, rewritten to relative ones (none in 2.x, but a future
// version must not break the pages, which load these files with no import map); no
// timestamps are written anywhere. Running it twice gives byte-identical output.
//
// Usage (from the repository root): node portal-vendor/build.mjs   (`make portal-vendor`)

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = "@noble/hashes";
const ENTRY_POINTS = ["scrypt.js"];
const SOURCE = join(HERE, "node_modules", ...PACKAGE.split("/"));
const VENDOR = join(HERE, "..", "src", "medledger", "entrypoints", "portal", "static", "vendor");
const TARGET_DIR = "noble-hashes";
// Static import/export statements at the start of a line (as tsc emits them); the same
// words inside doc comments (" * import { _SHA1 } from ...") are not followed.
const IMPORT = /^((?:import|export)\b[^;"']*?\bfrom\s*|import\s*)(["'])([^"']+)\2/gm;

function fail(message) {
  process.stderr.write(`portal-vendor: ${message}\n`);
  process.exit(1);
}

// 1. The version installed must be the one the lock file pins, with its integrity hash.
const lock = JSON.parse(readFileSync(join(HERE, "package-lock.json"), "utf8"));
const locked = lock.packages?.[`node_modules/${PACKAGE}`];
if (!locked?.version || !locked?.integrity) fail(`${PACKAGE} is not in package-lock.json`);
const installed = JSON.parse(readFileSync(join(SOURCE, "package.json"), "utf8")).version;
if (installed !== locked.version) {
  fail(`node_modules has ${PACKAGE} ${installed}, the lock pins ${locked.version}: run npm ci`);
}

// 2. The files the entry points need: relative imports only, followed transitively.
function rewrite(text, file) {
  return text.replace(IMPORT, (match, head, quote, spec) => {
    if (spec.startsWith("./")) return match;
    if (spec.startsWith(`${PACKAGE}/`)) {
      const target = spec.slice(PACKAGE.length + 1);
      return `${head}${quote}./${target.endsWith(".js") ? target : `${target}.js`}${quote}`;
    }
    fail(`${file} imports ${spec}, which is neither relative nor ${PACKAGE}`);
  });
}

const files = new Map();
const queue = [...ENTRY_POINTS];
while (queue.length) {
  const name = queue.shift();
  if (files.has(name)) continue;
  if (name.includes("/") || !name.endsWith(".js")) fail(`unexpected module path ${name}`);
  const text = rewrite(readFileSync(join(SOURCE, name), "utf8"), name);
  files.set(name, text);
  for (const [, , , spec] of text.matchAll(IMPORT)) queue.push(posix.normalize(spec));
  queue.sort();
}

// 3. Replace the vendored directory with exactly those files and the upstream LICENSE.
const outDir = join(VENDOR, TARGET_DIR);
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
files.set("LICENSE", readFileSync(join(SOURCE, "LICENSE"), "utf8"));
const sums = [];
for (const name of [...files.keys()].sort()) {
  const bytes = Buffer.from(files.get(name), "utf8");
  writeFileSync(join(outDir, name), bytes);
  sums.push(`${createHash("sha256").update(bytes).digest("hex")}  ${TARGET_DIR}/${name}`);
}

// 4. SHA256SUMS: a comment naming the pinned version and its registry integrity, then one
//    `sha256sum` line per file (check with: grep -v '^#' SHA256SUMS | sha256sum -c).
const header = `# ${PACKAGE} ${locked.version} ${locked.integrity}`;
writeFileSync(join(VENDOR, "SHA256SUMS"), [header, ...sums].join("\n") + "\n");
for (const name of readdirSync(outDir).sort()) process.stdout.write(`vendored ${TARGET_DIR}/${name}\n`);
