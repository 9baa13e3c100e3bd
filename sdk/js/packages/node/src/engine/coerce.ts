/** Semantic versions and instants in the operand grammar (grammar.ts), as in coerce.py. */
import { INSTANT_RE, inNumberRange, SEMVER_RE } from "./grammar.js";

/**
 * Release triple, "no pre-release" flag (1 ranks above 0), then pre-release identifiers.
 * Numbers stay digit strings: parts of any length compare exactly, as in the Python engine
 * (Number() would round a 17-digit part and call two versions equal).
 */
export interface SemverKey {
  readonly release: readonly [string, string, string];
  readonly final: 0 | 1;
  /** A numeric identifier is {n: digits}, an alphanumeric one its text. */
  readonly pre: readonly (string | { readonly n: string })[];
}

const DIGITS = /^[0-9]+$/;

export function parseSemver(text: string): SemverKey | null {
  const m = SEMVER_RE.exec(text);
  if (m === null) return null;
  const release: [string, string, string] = [m[1]!, m[2]!, m[3]!];
  if (m[4] === undefined) return { release, final: 1, pre: [] };
  const pre = m[4].split(".").map((p) => (DIGITS.test(p) ? { n: p } : p));
  return { release, final: 0, pre };
}

/** Digit strings without leading zeros (the grammar's numbers): longer is larger. */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

/** -1, 0 or 1, ordering like Python's tuple comparison of coerce.py's keys. */
export function compareSemver(a: SemverKey, b: SemverKey): number {
  for (let i = 0; i < 3; i++) {
    const d = compareDigits(a.release[i]!, b.release[i]!);
    if (d !== 0) return d;
  }
  if (a.final !== b.final) return a.final < b.final ? -1 : 1;
  const n = Math.min(a.pre.length, b.pre.length);
  for (let i = 0; i < n; i++) {
    const x = a.pre[i]!;
    const y = b.pre[i]!;
    if (typeof x !== "string" && typeof y !== "string") {
      const d = compareDigits(x.n, y.n);
      if (d !== 0) return d;
    } else if (typeof x !== "string") {
      return -1; // numeric identifiers rank below alphanumeric ones
    } else if (typeof y !== "string") {
      return 1;
    } else if (x !== y) {
      // identifiers are ASCII, where UTF-16 order is code point order
      return x < y ? -1 : 1;
    }
  }
  return a.pre.length === b.pre.length ? 0 : a.pre.length < b.pre.length ? -1 : 1;
}

// Days before each month in a common year; a leap year adds one from March on.
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MS_PER_DAY = 86_400_000;
/** Days from 0000-01-01 (proleptic Gregorian, year 0 a leap year) to 1970-01-01. */
const EPOCH_DAYS = 719_528;

function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysSinceEpoch(year: number, month: number, day: number): number {
  // Years are 0..9999, so the leap days before `year` are plain ceiling divisions.
  const leapDays = Math.floor((year + 3) / 4) - Math.floor((year + 99) / 100) + Math.floor((year + 399) / 400);
  let days = 365 * year + leapDays + DAYS_BEFORE_MONTH[month - 1]! + day - 1;
  if (month > 2 && isLeap(year)) days += 1;
  return days - EPOCH_DAYS;
}

/**
 * Epoch milliseconds of a date or date-time in the grammar, null for anything else. Integer
 * arithmetic only (every value stays far below 2^53), the same steps as coerce.py: a full-date is
 * midnight UTC, the offset is subtracted, fraction digits past the millisecond are dropped.
 */
export function parseInstant(text: string): number | null {
  const m = INSTANT_RE.exec(text);
  if (m === null) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (day > MONTH_DAYS[month - 1]! + (month === 2 && isLeap(year) ? 1 : 0)) return null;
  let ms = daysSinceEpoch(year, month, day) * MS_PER_DAY;
  if (m[4] === undefined) return ms;
  ms += ((Number(m[4]) * 60 + Number(m[5])) * 60 + Number(m[6])) * 1000;
  if (m[7] !== undefined) ms += Number(m[7].slice(0, 3).padEnd(3, "0"));
  if (m[8] !== undefined) {
    const offset = (Number(m[9]) * 60 + Number(m[10])) * 60_000;
    ms += m[8] === "+" ? -offset : offset;
  }
  return ms;
}

const instantCache = new Map<string, number | null>();

/**
 * Epoch milliseconds of a context value: a grammar string, epoch milliseconds within the number
 * range, or a Date; null for anything else.
 */
export function instantOf(value: unknown): number | null {
  if (typeof value === "number") return inNumberRange(value) ? value : null;
  if (typeof value === "bigint") return inNumberRange(value) ? Number(value) : null;
  if (typeof value === "string") {
    let t = instantCache.get(value);
    if (t === undefined) {
      t = parseInstant(value);
      if (instantCache.size >= 4096) instantCache.clear();
      instantCache.set(value, t);
    }
    return t;
  }
  if (value instanceof Date) {
    const t = value.getTime();
    return Number.isNaN(t) ? null : t;
  }
  return null;
}
