/**
 * Deterministic bucketing shared by every SDK:
 * bucket = MurmurHash3_x86_32(UTF-8(salt + "." + value), seed 0) as unsigned, mod 100000.
 * TextEncoder replaces lone surrogates by U+FFFD, which is the rule of docs/ruleset.md.
 */
import murmurhash from "murmurhash";
import { BUCKETS } from "./types.js";

// murmurhash's v3 is MurmurHash3 x86 32-bit (unsigned) over a Uint8Array; tests/vectors/
// bucketing.json pins it to mmh3's answers.
const hash32 = murmurhash.v3;
const encoder = new TextEncoder();
// A reused buffer and one view of it per length: hashing allocates nothing per evaluation.
let scratch = new Uint8Array(1024);
let views: Uint8Array[] = [];

function view(length: number): Uint8Array {
  let v = views[length];
  if (v === undefined) views[length] = v = scratch.subarray(0, length);
  return v;
}

/** MurmurHash3 x86 32-bit (seed 0, unsigned) of the UTF-8 bytes of `text`. */
export function murmur32(text: string): number {
  const n = text.length;
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (n * 3 > scratch.length) {
    scratch = new Uint8Array(n * 3);
    views = [];
  }
  // ASCII, the usual key, is copied as is; anything else goes through TextEncoder, which also
  // turns lone surrogates into U+FFFD as docs/ruleset.md requires.
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return hash32(view(encoder.encodeInto(text, scratch).written), 0);
    scratch[i] = c;
  }
  return hash32(view(n), 0);
}

/** Bucket in [0, 100000) of `value` for a flag salted with `salt`. */
export function bucket(salt: string, value: string): number {
  return murmur32(`${salt}.${value}`) % BUCKETS;
}
