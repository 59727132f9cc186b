// RFC 9162 Merkle trees in the browser: leaf and node hashes (§2.1.1), inclusion (§2.1.3.2)
// and consistency (§2.1.4.2) proof verification. A port of src/medledger/core/merkle
// (hashing.py, verify.py) with the same edge cases.
//
// Indices and sizes are integers as Number (safe integers) or BigInt (the full uint64 range
// of the test vectors); they are handled as BigInt inside. rootFromInclusionProof and the
// check* functions throw ProofError saying which rule failed; verifyInclusion and
// verifyConsistency return a boolean, as the pages want. SHA-256 is WebCrypto.

import { concat, equalBytes, sha256 } from "./encoding.js";

export const HASH_SIZE = 32;
/** A tree of up to 2**64 leaves never needs a longer proof. */
export const MAX_PROOF_HASHES = 64;
const MAX_UINT64 = 2n ** 64n - 1n;
const LEAF = Uint8Array.of(0x00);
const NODE = Uint8Array.of(0x01);

export class ProofError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
}

/** MTH({d(0)}) = SHA-256(0x00 || d(0)). */
export async function leafHash(bytes) {
  return sha256(concat(LEAF, bytes));
}

/** MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
export async function nodeHash(left, right) {
  return sha256(concat(NODE, left, right));
}

function uint64(value, what) {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === "bigint" && value >= 0n && value <= MAX_UINT64) return value;
  throw new ProofError(`${what} must be an integer in 0..2**64 - 1`);
}

function checkHashes(proof, ...roots) {
  if (!Array.isArray(proof)) throw new ProofError("a proof is an array of hashes");
  if (proof.length > MAX_PROOF_HASHES) {
    throw new ProofError(`proof has ${proof.length} hashes, at most ${MAX_PROOF_HASHES} are possible`);
  }
  if (proof.some((h) => !(h instanceof Uint8Array) || h.length !== HASH_SIZE)) {
    throw new ProofError("every proof hash must be 32 bytes");
  }
  if (roots.some((r) => !(r instanceof Uint8Array) || r.length !== HASH_SIZE)) {
    throw new ProofError("hashes and roots must be 32 bytes");
  }
}

/** Steps 1-5 of RFC 9162 §2.1.3.2: the root that `proof` implies for `leaf` at `index`. */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  checkHashes(proof, leaf);
  let fn = uint64(index, "index");
  let sn = uint64(size, "size");
  // 1. Compare leaf_index against tree_size; fail if >=.
  if (fn >= sn) throw new ProofError(`index ${fn} is outside a tree of size ${sn}`);
  // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
  sn -= 1n;
  let r = leaf;
  // 4. For each value p in the inclusion_path array:
  for (const p of proof) {
    // a. If sn is 0, stop and fail.
    if (sn === 0n) throw new ProofError("proof is longer than the path for this index and size");
    // b. If LSB(fn) is set, or fn equals sn:
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      // If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
      if (!(fn & 1n)) {
        while (!(fn & 1n || fn === 0n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    // c. Right-shift both fn and sn once.
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5. Compare sn to 0; fail if different (the proof was too short).
  if (sn !== 0n) throw new ProofError("proof is shorter than the path for this index and size");
  return r;
}

/** RFC 9162 §2.1.3.2 in full; throws ProofError unless `leaf` is at `index` under `root`. */
export async function checkInclusion(index, size, leaf, proof, root) {
  const computed = await rootFromInclusionProof(index, size, leaf, proof);
  checkHashes([], root);
  // 6. Compare r against root_hash (constant time).
  if (!equalBytes(computed, root)) throw new ProofError("inclusion proof does not lead to the expected root");
}

/** Whether `leaf` is at `index` in the tree of `size` with `root`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  return passes(() => checkInclusion(index, size, leaf, proof, root));
}

/** RFC 9162 §2.1.4.2 in full; throws ProofError unless tree size2 extends tree size1. */
export async function checkConsistency(size1, size2, root1, root2, proof) {
  checkHashes(proof, root1, root2);
  const first = uint64(size1, "size1");
  const second = uint64(size2, "size2");
  if (first > second) throw new ProofError(`sizes must satisfy 0 <= first <= second, got ${first}, ${second}`);
  if (first === second) {
    if (proof.length) throw new ProofError("consistency between equal sizes takes an empty proof");
    if (!equalBytes(root1, root2)) throw new ProofError("equal sizes with different roots: the log forked");
    return;
  }
  if (first === 0n) {
    if (proof.length) throw new ProofError("consistency from the empty tree takes an empty proof");
    return;
  }
  // 1. If consistency_path is empty, fail.
  if (!proof.length) throw new ProofError("consistency proof is empty");
  const path = [...proof];
  // 2. If first is an exact power of 2, prepend first_hash.
  if ((first & (first - 1n)) === 0n) path.unshift(root1);
  // 3. fn = first - 1, sn = second - 1.
  let fn = first - 1n;
  let sn = second - 1n;
  // 4. If LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5. fr = sr = the first value of the path.
  let fr = path[0];
  let sr = path[0];
  // 6. For each subsequent value c:
  for (const c of path.slice(1)) {
    // a. If sn is 0, stop and fail.
    if (sn === 0n) throw new ProofError("consistency proof is longer than needed");
    // b. If LSB(fn) is set, or fn equals sn:
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1n)) {
        while (!(fn & 1n || fn === 0n)) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    // c. Right-shift both once.
    fn >>= 1n;
    sn >>= 1n;
  }
  // 7. fr == first_hash, sr == second_hash and sn == 0.
  if (sn !== 0n) throw new ProofError("consistency proof is shorter than needed");
  if (!equalBytes(fr, root1)) throw new ProofError("consistency proof does not lead to the first root");
  if (!equalBytes(sr, root2)) throw new ProofError("consistency proof does not lead to the second root");
}

/** Whether the tree of size2 with root2 extends the tree of size1 with root1. */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  return passes(() => checkConsistency(size1, size2, root1, root2, proof));
}

async function passes(check) {
  try {
    await check();
    return true;
  } catch (e) {
    if (e instanceof ProofError) return false;
    throw e;
  }
}
