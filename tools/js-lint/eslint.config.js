// ESLint for the portal's browser code: plain ES modules loaded by <script type="module">, no
// build step, run only in the browser. `make lint-js` runs it from the repository root; the
// globs below are relative to the root (basePath), not to this folder.
import js from "@eslint/js";
import globals from "globals";

const PORTAL_JS = "src/medledger/entrypoints/portal/static/js/**/*.js";

export default [
  { basePath: "../.." },
  // Vendored third-party code (ADR 0019) is pinned by SHA256SUMS: never linted, never edited.
  { ignores: ["src/medledger/entrypoints/portal/static/vendor/**"] },
  { files: [PORTAL_JS], ...js.configs.recommended },
  {
    files: [PORTAL_JS],
    languageOptions: {
      sourceType: "module",
      // Browser globals only, so a Node name (`process`, `require`, `Buffer`) is a finding.
      globals: { ...globals.browser },
    },
    linterOptions: {
      reportUnusedDisableDirectives: "error",
      reportUnusedInlineConfigs: "error",
    },
    rules: {
      // no-undef (browser globals above) and no-unused-vars come from the recommended set.
      eqeqeq: ["error", "always"],
      "prefer-const": "error",
      "no-var": "error",
      "no-shadow": "error",
      // A value no path reads (dead store); in the recommended set from ESLint 10 on.
      "no-useless-assignment": "error",
      // Not no-implicit-globals: it only looks at classic scripts, and every file here is a
      // module (module scope, strict mode); an assignment to an undeclared name is no-undef's.
    },
  },
];
