/**
 * Deterministic bucketing shared by every SDK:
 * bucket = MurmurHash3_x86_32(UTF-8(salt + "." + value), seed 0) as unsigned, mod 100000.
 * TextEncoder replaces lone surrogates by U+FFFD, which is the rule of docs/ruleset.md.
 */
import murmur from "murmurhash3js-revisited";
import { BUCKETS } from "./types.js";

// The package checks every byte of its input by default; our input is always a Uint8Array.
murmur.inputValidation = false;
const hash32 = murmur.x86.hash32;
const encoder = new TextEncoder();
// A reused buffer: encodeInto writes the key without allocating an array per evaluation.
let scratch = new Uint8Array(1024);

export function murmur32(text: string): number {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return hash32(scratch.subarray(0, written), 0);
}

/** Bucket in [0, 100000) of `value` for a flag salted with `salt`. */
export function bucket(salt: string, value: string): number {
  return murmur32(`${salt}.${value}`) % BUCKETS;
}
