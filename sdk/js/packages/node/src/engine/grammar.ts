/**
 * The operand grammar (docs/ruleset.md, "Operand grammar"): what a date, a version and a number
 * are, for operands and context values alike.
 *
 * The one definition is ruleset.schema.json ($defs instant, semver, operandNumber), which the
 * Python engine reads (flagsite_sdk/engine/grammar.py). These are the same strings, copied
 * because edge bundles cannot read a file at run time; test/grammar.test.ts fails if they drift.
 * Library parsers (Date.parse, node-semver) each accept their own superset, which is how the
 * engines came to disagree, so both engines match these patterns instead.
 */

/** An RFC 3339 full-date, or date-time with seconds and Z or ±HH:MM; ASCII digits only. */
export const INSTANT_PATTERN =
  "^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?:[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(?:\\.([0-9]+))?(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9])))?$";

/** SemVer 2.0.0 with an optional leading "v"; ASCII digits, no leading zeros in numbers. */
export const SEMVER_PATTERN =
  "^v?(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$";

/**
 * The number range, ±(2^53 - 1): the integers every JSON reader holds exactly. Beyond it,
 * JSON.parse rounds to a double while Python keeps the exact integer, so no engine compares
 * such a number: an operand beyond it is refused, a context number beyond it matches nothing.
 */
export const NUMBER_LIMIT = 9007199254740991;

export const INSTANT_RE = new RegExp(INSTANT_PATTERN);
export const SEMVER_RE = new RegExp(SEMVER_PATTERN);
const BIG_LIMIT = BigInt(NUMBER_LIMIT);

/** A number (or bigint) within ±NUMBER_LIMIT; false for NaN, the infinities and the rest. */
export function inNumberRange(v: number | bigint): boolean {
  if (typeof v === "bigint") return v >= -BIG_LIMIT && v <= BIG_LIMIT;
  return v >= -NUMBER_LIMIT && v <= NUMBER_LIMIT;
}

/** A number or bigint, NaN excepted: what the Python engine calls a number. */
export function isNumber(v: unknown): v is number | bigint {
  return (typeof v === "number" && !Number.isNaN(v)) || typeof v === "bigint";
}
