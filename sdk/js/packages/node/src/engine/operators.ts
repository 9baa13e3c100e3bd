/**
 * Condition operators compiled into closures, as in the Python engine's operators.py.
 * A compiled condition returns a boolean; a context value of the wrong type throws
 * ConditionProblem, which the rule loop turns into "condition false" plus a note.
 */
import { RE2JS } from "re2js";
import { CASEFOLD_EXCEPTIONS } from "./casefold-table.js";
import { compareSemver, instantOf, parseInstant, parseSemver } from "./coerce.js";
import { inNumberRange, isNumber, NUMBER_LIMIT } from "./grammar.js";
import { type Context, MAX_VALUE_CODE_POINTS } from "./types.js";

export type Condition = (ctx: Context) => boolean;
type Test = (v: unknown) => boolean;
export type Getter = (ctx: Context) => unknown;

export const OPERATORS = [
  "equals", "not_equals", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
  "lt", "lte", "gt", "gte", "semver_eq", "semver_lt", "semver_gt", "before", "after",
  "exists", "not_exists", "in_segment", "not_in_segment", "email_domain_in",
] as const;
const KNOWN_OPERATORS: ReadonlySet<string> = new Set(OPERATORS);
const CASE_OPERATORS = new Set([
  "equals", "not_equals", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
]);
const SEGMENT_OPERATORS = new Set(["in_segment", "not_in_segment"]);
const NO_OPERAND_OPERATORS = new Set(["exists", "not_exists"]);
const SINGLE_OPERAND_OPERATORS = new Set([
  "equals", "not_equals", "lt", "lte", "gt", "gte", "semver_eq", "semver_lt", "semver_gt", "before", "after",
]);
const STRING_OPERATORS = new Set([
  "contains", "starts_with", "ends_with", "matches", "email_domain_in", "semver_eq", "semver_lt", "semver_gt",
  "before", "after",
]);
const NUMBER_OPERATORS = new Set(["lt", "lte", "gt", "gte"]);
const SCALAR_OPERATORS = new Set(["equals", "not_equals", "in", "not_in"]);
const MAX_PATTERN_LENGTH = 256;
const NUMBER_RANGE_TEXT = `the number range \u00b1${NUMBER_LIMIT} (2^53-1)`;
export const TARGETING_KEY = "targetingKey";
export const TARGETING_KEY_ALIAS = "userId";

/** A context value could not be tested; the condition counts as false. */
export class ConditionProblem extends Error {}

/** A condition this engine cannot compile; its flag (or segment) is set aside as broken. */
export class CompileProblem extends Error {}

function clip(text: string): string {
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

function shown(v: unknown): string {
  return clip(typeof v === "string" ? `'${v}'` : String(v));
}

/**
 * Why `values` do not suit `op` (with the index of the value at fault, null for the list as a
 * whole), or null: the same checks, in the same order, as operators.py's operand_problem, so
 * an operand the server's validator refuses is refused here and the other way round.
 */
export function operandProblem(op: string, values: readonly unknown[]): [number | null, string] | null {
  if (NO_OPERAND_OPERATORS.has(op)) return values.length > 0 ? [null, "takes no values"] : null;
  if (SINGLE_OPERAND_OPERATORS.has(op) && values.length !== 1) return [null, "takes exactly one value"];
  if ((SEGMENT_OPERATORS.has(op) || STRING_OPERATORS.has(op)) && !values.every((v) => typeof v === "string")) {
    return [null, "values must be strings"];
  }
  if (NUMBER_OPERATORS.has(op) && !isNumber(values[0])) return [null, "value must be a number"];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (isNumber(v) && !inNumberRange(v)) return [i, `${shown(v)} is outside ${NUMBER_RANGE_TEXT}`];
  }
  if (
    SCALAR_OPERATORS.has(op) &&
    !values.every((v) => typeof v === "string" || typeof v === "boolean" || isNumber(v))
  ) {
    return [null, "values must be strings, numbers or booleans"];
  }
  if (op.startsWith("semver_") && parseSemver(values[0] as string) === null) {
    return [0, `${shown(values[0])} is not a semantic version`];
  }
  if ((op === "before" || op === "after") && parseInstant(values[0] as string) === null) {
    return [0, `${shown(values[0])} is not an RFC 3339 date or date-time`];
  }
  return null;
}

function patternProblem(pattern: string): string | null {
  let n = 0;
  for (const _ of pattern) n++;
  if (n > MAX_PATTERN_LENGTH) return `pattern longer than ${MAX_PATTERN_LENGTH} characters`;
  if (!pattern.isWellFormed()) return "pattern is not valid Unicode (lone surrogate)";
  return null;
}

function outsideRange(label: string, attr: string): ConditionProblem {
  // Two JSON readers may hold different values for such a number (JSON.parse rounds it to a
  // double, Python keeps it exact), so no engine compares it: the condition is false.
  return new ConditionProblem(
    `${label}: attribute '${attr}' is a number outside ${NUMBER_RANGE_TEXT}, which no condition matches`,
  );
}

export interface RawCondition {
  attribute?: string;
  operator: string;
  values?: unknown[];
  negate?: boolean;
  caseInsensitive?: boolean;
}

/** Normalizes a string like the Python engine: lone surrogates become U+FFFD. */
export function wellFormed(s: string): string {
  return s.isWellFormed() ? s : s.toWellFormed();
}

function tooLong(s: string): boolean {
  if (s.length <= MAX_VALUE_CODE_POINTS) return false; // code points never outnumber units
  let n = 0;
  for (const _ of s) if (++n > MAX_VALUE_CODE_POINTS) return true;
  return false;
}

/** null/undefined, and strings over the length bound, are absent. */
function present(v: unknown): unknown {
  if (v === null || v === undefined) return undefined;
  if (typeof v === "string" && v.length > MAX_VALUE_CODE_POINTS && tooLong(v)) return undefined;
  return v;
}

function rawGetter(attr: string): Getter {
  // Names such as "constructor" or "__proto__" would otherwise reach Object.prototype.
  if (attr in Object.prototype) {
    return (ctx) => (Object.hasOwn(ctx, attr) ? ctx[attr] : undefined);
  }
  return (ctx) => ctx[attr];
}

/** The value of `attr` in a context (undefined when absent); targetingKey falls back to userId. */
export function attributeGetter(attr: string): Getter {
  const read = rawGetter(attr);
  if (attr !== TARGETING_KEY) return (ctx) => present(read(ctx));
  const alias = rawGetter(TARGETING_KEY_ALIAS);
  return (ctx) => {
    const v = present(read(ctx));
    return v === undefined ? present(alias(ctx)) : v;
  };
}

export function kind(v: unknown): string {
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "number" || typeof v === "bigint") return "number";
  if (Array.isArray(v)) return "list";
  if (v === null || v === undefined) return "NoneType";
  return "dict";
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * Python's str.casefold: per code point, the full upper-then-lower mapping, corrected by the
 * generated table where the two languages' Unicode data disagree (Cherokee, ẞ, final sigma...).
 */
export function casefold(s: string): string {
  if (ASCII.test(s)) return s.toLowerCase();
  let out = "";
  for (const c of wellFormed(s)) {
    out += CASEFOLD_EXCEPTIONS.get(c.codePointAt(0)!) ?? c.toUpperCase().toLowerCase();
  }
  return out;
}

/**
 * Compiles one condition; throws CompileProblem for anything outside the contract (an unknown
 * operator from a newer server, an operand outside the grammar, a missing segment), which sets
 * its flag aside as broken rather than the whole ruleset.
 */
export function compileCondition(
  cond: RawCondition,
  label: string,
  segments: ReadonlyMap<string, Condition>,
): Condition {
  if (cond === null || typeof cond !== "object") throw new CompileProblem(`${label}: not an object`);
  const op = cond.operator;
  if (typeof op !== "string" || !KNOWN_OPERATORS.has(op)) {
    throw new CompileProblem(`${label}.operator: unknown operator '${String(op)}'`);
  }
  const given = cond.values ?? [];
  if (!Array.isArray(given)) throw new CompileProblem(`${label}.values: not a list`);
  const problem = operandProblem(op, given);
  if (problem !== null) {
    const [index, message] = problem;
    throw new CompileProblem(`${label}.values${index === null ? "" : `[${index}]`}: ${op}: ${message}`);
  }
  // bigints only reach here from lossless JSON readers, within the number range: plain numbers
  const values = given.map((v) =>
    typeof v === "string" ? wellFormed(v) : typeof v === "bigint" ? Number(v) : (v as unknown),
  );
  const negate = cond.negate === true;
  if (op === "in_segment" || op === "not_in_segment") {
    if (values.length === 0) throw new CompileProblem(`${label}.values: needs at least one segment`);
    const members = (values as string[]).map((k) => {
      const member = segments.get(k);
      if (member === undefined) throw new CompileProblem(`${label}.values: no usable segment '${k}'`);
      return member;
    });
    return segmentCondition(op, members, negate);
  }
  const attr = cond.attribute;
  if (typeof attr !== "string" || attr === "") throw new CompileProblem(`${label}.attribute: required`);
  const get = attributeGetter(attr);
  if (op === "exists" || op === "not_exists") {
    const expected = (op === "exists") !== negate;
    return (ctx) => (get(ctx) !== undefined) === expected;
  }
  const ci = cond.caseInsensitive === true && CASE_OPERATORS.has(op);
  if (!ci && (op === "in" || op === "not_in" || op === "equals" || op === "not_equals")) {
    return membershipCondition(get, attr, values, (op === "not_in" || op === "not_equals") !== negate, label);
  }
  const test = makeTest(op, values, ci, attr, label);
  return (ctx) => {
    const v = get(ctx);
    if (v === undefined) return false;
    return test(v) !== negate;
  };
}

/** equals / in and their negations: the allowlist hot path, one Set lookup. */
function membershipCondition(
  get: Getter,
  attr: string,
  values: unknown[],
  invert: boolean,
  label: string,
): Condition {
  const strings = new Set(values.filter((v) => typeof v === "string"));
  const numbers = new Set(values.filter((v) => typeof v === "number"));
  const booleans = new Set(values.filter((v) => typeof v === "boolean"));
  const kinds = new Set(values.map(kind));
  const compared = [...kinds].sort().join(" or ");
  const hasStrings = strings.size > 0;

  function classify(v: unknown): boolean {
    let pool: Set<unknown>;
    if (typeof v === "string") pool = strings;
    else if (typeof v === "boolean") pool = booleans;
    else if (typeof v === "number") pool = numbers;
    else if (typeof v === "bigint") pool = numbers;
    else {
      throw new ConditionProblem(
        `${label}: attribute '${attr}' is a ${kind(v)}, the condition compares strings, numbers or booleans`,
      );
    }
    if (values.length > 0 && !kinds.has(kind(v))) {
      throw new ConditionProblem(
        `${label}: attribute '${attr}' is a ${kind(v)}, the condition compares ${compared}`,
      );
    }
    if (typeof v === "number" || typeof v === "bigint") {
      if (!inNumberRange(v)) throw outsideRange(label, attr);
      return numbers.has(Number(v)) !== invert;
    }
    return pool.has(typeof v === "string" ? wellFormed(v) : v) !== invert;
  }

  return (ctx) => {
    const v = get(ctx);
    if (typeof v === "string" && hasStrings) {
      return (strings.has(v) || (!v.isWellFormed() && strings.has(v.toWellFormed()))) !== invert;
    }
    if (v === undefined) return false;
    return classify(v);
  };
}

function segmentCondition(op: string, members: Condition[], negate: boolean): Condition {
  const wantIn = (op === "in_segment") !== negate;
  return (ctx) => {
    for (const member of members) if (member(ctx)) return wantIn;
    return !wantIn;
  };
}

function makeTest(op: string, values: unknown[], ci: boolean, attr: string, label: string): Test {
  const wrong = (v: unknown, needs: string) =>
    new ConditionProblem(`${label}: attribute '${attr}' is a ${kind(v)}, operator ${op} needs ${needs}`);

  if (op === "equals" || op === "not_equals" || op === "in" || op === "not_in") {
    // only reached with caseInsensitive: strings compare casefolded
    const folded = new Set(values.filter((v) => typeof v === "string").map((v) => casefold(v as string)));
    const kinds = new Set(values.map(kind));
    const invert = op === "not_equals" || op === "not_in";
    const needs = [...kinds].sort().join(" or ") || "a scalar";
    return (v) => {
      const k = kind(v);
      if ((k !== "string" && k !== "number" && k !== "boolean") || (values.length > 0 && !kinds.has(k))) {
        throw wrong(v, needs);
      }
      if (k === "boolean") return values.some((x) => x === v) !== invert;
      if (k === "number") {
        if (!inNumberRange(v as number | bigint)) throw outsideRange(label, attr);
        return values.some((x) => typeof x === "number" && x === Number(v)) !== invert;
      }
      return folded.has(casefold(v as string)) !== invert;
    };
  }

  if (op === "contains" || op === "starts_with" || op === "ends_with") {
    const needles = (values as string[]).map((v) => (ci ? casefold(v) : v));
    return (v) => {
      if (typeof v === "string") {
        const s = ci ? casefold(v) : wellFormed(v);
        if (op === "starts_with") return needles.some((n) => s.startsWith(n));
        if (op === "ends_with") return needles.some((n) => s.endsWith(n));
        return needles.some((n) => s.includes(n));
      }
      if (op === "contains" && Array.isArray(v)) {
        const items = new Set(
          v
            .filter((x) => typeof x === "string" && !tooLong(x)) // over-long items count as absent
            .map((x: string) => (ci ? casefold(x) : wellFormed(x))),
        );
        return needles.some((n) => items.has(n));
      }
      throw wrong(v, op !== "contains" ? "a string" : "a string or a list");
    };
  }

  if (op === "matches") {
    const patterns = (values as string[]).map((p, i) => {
      const problem = patternProblem(p);
      if (problem !== null) throw new CompileProblem(`${label}.values[${i}]: ${problem}`);
      try {
        return RE2JS.compile(ci ? `(?i)${p}` : p);
      } catch (exc) {
        throw new CompileProblem(`${label}.values[${i}]: not a valid RE2 regular expression: ${String(exc)}`);
      }
    });
    return (v) => {
      if (typeof v !== "string") throw wrong(v, "a string");
      const s = wellFormed(v);
      return patterns.some((p) => p.test(s));
    };
  }

  if (op === "lt" || op === "lte" || op === "gt" || op === "gte") {
    // Both sides are within the number range, where doubles compare exactly as Python's ints do.
    const bound = values[0] as number;
    return (raw) => {
      if (typeof raw !== "number" && typeof raw !== "bigint") throw wrong(raw, "a number");
      if (!inNumberRange(raw)) throw outsideRange(label, attr);
      const v = Number(raw);
      if (op === "lt") return v < bound;
      if (op === "lte") return v <= bound;
      if (op === "gt") return v > bound;
      return v >= bound;
    };
  }

  if (op === "semver_eq" || op === "semver_lt" || op === "semver_gt") {
    const bound = parseSemver(values[0] as string)!; // operandProblem checked it
    const cache = new Map<string, ReturnType<typeof parseSemver>>();
    return (v) => {
      let key = null;
      if (typeof v === "string") {
        key = cache.get(v);
        if (key === undefined) {
          key = parseSemver(v);
          if (cache.size >= 4096) cache.clear();
          cache.set(v, key);
        }
      }
      if (key === null) throw wrong(v, "a semantic version string");
      const c = compareSemver(key, bound);
      return op === "semver_eq" ? c === 0 : op === "semver_lt" ? c < 0 : c > 0;
    };
  }

  if (op === "before" || op === "after") {
    const bound = parseInstant(values[0] as string)!; // operandProblem checked it
    const before = op === "before";
    return (v) => {
      const t = instantOf(v);
      if (t === null) throw wrong(v, "an RFC 3339 date or date-time, epoch milliseconds or a datetime");
      return before ? t < bound : t > bound;
    };
  }

  if (op === "email_domain_in") {
    const domains = new Set((values as string[]).map((v) => casefold(v.replace(/^@+/, ""))));
    return (v) => {
      if (typeof v !== "string" || !v.includes("@")) throw wrong(v, "an email address");
      return domains.has(casefold(v.slice(v.lastIndexOf("@") + 1)));
    };
  }

  throw new CompileProblem(`unknown operator '${op}'`);
}
