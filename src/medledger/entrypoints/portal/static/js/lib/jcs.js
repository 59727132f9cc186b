// RFC 8785 JSON canonicalization (JCS) for the JSON model the ledger accepts, and a strict
// parser for untrusted JSON.
//
// The model (src/medledger/core/ledger/canonical.py): objects with string keys, arrays,
// strings (Unicode text: no lone surrogates), booleans, null and integers within
// ±(2**53 - 1). No floats. For that model JCS is: members sorted by their keys' UTF-16 code
// units (RFC 8785 §3.2.3), no whitespace, integers in plain decimal, strings escaped as
// ECMAScript JSON.stringify escapes them (§3.2.2.2). Pure: no I/O.

export class JsonError extends Error {
  constructor(message) {
    super(message);
    this.name = "JsonError";
  }
}

/** Deeper than this is refused (also stops cycles); the ledger's own limits are lower. */
export const MAX_DEPTH = 64;

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function serialize(value, depth, out) {
  if (depth > MAX_DEPTH) throw new JsonError(`nested deeper than ${MAX_DEPTH}`);
  if (value === null) return out.push("null");
  switch (typeof value) {
    case "boolean":
      return out.push(value ? "true" : "false");
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new JsonError("only integers within ±(2**53 - 1) are allowed, not floats");
      }
      return out.push(String(value)); // -0 is "0", as Python's 0
    case "string":
      if (!value.isWellFormed()) throw new JsonError("a string holds a lone surrogate");
      return out.push(JSON.stringify(value));
    case "object":
      break;
    default:
      throw new JsonError(`a ${typeof value} is not JSON`);
  }
  if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, i) => {
      if (i) out.push(",");
      serialize(item, depth + 1, out);
    });
    return out.push("]");
  }
  if (!isPlainObject(value)) throw new JsonError("only plain objects, arrays and scalars are JSON");
  // Default string sort compares UTF-16 code units: exactly RFC 8785 §3.2.3.
  const keys = Object.keys(value).sort();
  out.push("{");
  keys.forEach((key, i) => {
    if (!key.isWellFormed()) throw new JsonError("a key holds a lone surrogate");
    if (i) out.push(",");
    out.push(JSON.stringify(key), ":");
    serialize(value[key], depth + 1, out);
  });
  return out.push("}");
}

/** The RFC 8785 text of a value in the ledger's JSON model; throws JsonError otherwise. */
export function canonicalize(value) {
  const out = [];
  serialize(value, 0, out);
  return out.join("");
}

// --- strict parsing ------------------------------------------------------------------------
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/**
 * Parse untrusted JSON text (RFC 8259) strictly, as the Python side's loaders do:
 * unique member names (RFC 7493 §2.3), integers only and within ±(2**53 - 1), no NaN or
 * Infinity, strings that are Unicode text, at most `maxDepth` levels. Members are own data
 * properties (a "__proto__" key is a key). Throws JsonError.
 */
export function parseJson(text, { maxDepth = 32 } = {}) {
  if (typeof text !== "string") throw new JsonError("JSON text must be a string");
  let at = 0;
  const fail = (message) => {
    throw new JsonError(`${message} at offset ${at}`);
  };
  const skip = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) at++;
  };
  const expect = (word) => {
    if (text.startsWith(word, at)) {
      at += word.length;
      return;
    }
    fail(`expected ${word}`);
  };
  const string = () => {
    at++; // the opening quote
    let out = "";
    for (;;) {
      const c = text[at];
      if (c === undefined) fail("unterminated string");
      if (c === '"') {
        at++;
        break;
      }
      if (c < " ") fail("a control character in a string");
      if (c === "\\") {
        const e = text[at + 1];
        if (e === "u") {
          const hex = text.slice(at + 2, at + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("a bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          at += 6;
        } else if (e in ESCAPES) {
          out += ESCAPES[e];
          at += 2;
        } else {
          fail("a bad escape");
        }
        continue;
      }
      out += c;
      at++;
    }
    if (!out.isWellFormed()) fail("a string holds a lone surrogate");
    return out;
  };
  const value = (depth) => {
    if (depth > maxDepth) fail(`nested deeper than ${maxDepth}`);
    skip();
    const c = text[at];
    if (c === "{") {
      at++;
      const obj = {};
      const seen = new Set();
      skip();
      if (text[at] === "}") {
        at++;
        return obj;
      }
      for (;;) {
        skip();
        if (text[at] !== '"') fail("expected a member name");
        const key = string();
        if (seen.has(key)) fail("an object has a duplicate key");
        seen.add(key);
        skip();
        expect(":");
        const v = value(depth + 1);
        Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
        skip();
        if (text[at] === ",") {
          at++;
          continue;
        }
        expect("}");
        return obj;
      }
    }
    if (c === "[") {
      at++;
      const arr = [];
      skip();
      if (text[at] === "]") {
        at++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        skip();
        if (text[at] === ",") {
          at++;
          continue;
        }
        expect("]");
        return arr;
      }
    }
    if (c === '"') return string();
    if (c === "t") return expect("true"), true;
    if (c === "f") return expect("false"), false;
    if (c === "n") return expect("null"), null;
    NUMBER.lastIndex = at;
    const m = NUMBER.exec(text);
    if (!m) fail("not JSON");
    at += m[0].length;
    if (!INTEGER.test(m[0])) fail("numbers must be integers");
    const n = Number(m[0]);
    if (m[0].replace("-", "").length > 16 || !Number.isSafeInteger(n)) fail("an integer is out of range");
    return n;
  };
  const result = value(0);
  skip();
  if (at !== text.length) fail("trailing data after the JSON value");
  return result;
}
