/** Semantic versions and instants, parsed like the Python engine's coerce.py. */

const SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** Release triple, "no pre-release" flag (1 ranks above 0), then pre-release identifiers. */
export interface SemverKey {
  readonly release: readonly [number, number, number];
  readonly final: 0 | 1;
  readonly pre: readonly (number | string)[];
}

export function parseSemver(text: string): SemverKey | null {
  const m = SEMVER.exec(text);
  if (m === null) return null;
  const release: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (m[4] === undefined) return { release, final: 1, pre: [] };
  const pre = m[4].split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return { release, final: 0, pre };
}

/** -1, 0 or 1, ordering like Python's tuple comparison of coerce.py's keys. */
export function compareSemver(a: SemverKey, b: SemverKey): number {
  for (let i = 0; i < 3; i++) {
    const d = a.release[i]! - b.release[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  if (a.final !== b.final) return a.final < b.final ? -1 : 1;
  const n = Math.min(a.pre.length, b.pre.length);
  for (let i = 0; i < n; i++) {
    const x = a.pre[i]!;
    const y = b.pre[i]!;
    if (typeof x === "number" && typeof y === "number") {
      if (x !== y) return x < y ? -1 : 1;
    } else if (typeof x === "number") {
      return -1; // numeric identifiers rank below alphanumeric ones
    } else if (typeof y === "number") {
      return 1;
    } else if (x !== y) {
      return compareCodePoints(x, y);
    }
  }
  return a.pre.length === b.pre.length ? 0 : a.pre.length < b.pre.length ? -1 : 1;
}

function compareCodePoints(x: string, y: string): number {
  // identifiers are ASCII, where UTF-16 order is code point order
  return x < y ? -1 : 1;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function validDate(y: number, mo: number, d: number): boolean {
  return y >= 1 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(y, mo);
}

function utcMillis(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d); // Date.UTC would map years 0-99 to 1900-1999
  date.setUTCHours(h, mi, s, 0);
  return date.getTime();
}

/**
 * Epoch milliseconds of an ISO 8601 date or date-time (the forms Python 3.11's fromisoformat
 * reads that people write: `2025-01-31`, `2025-01-31T10:00`, seconds, fractions, `Z` or an
 * offset); a date-time without an offset is UTC; null when it does not parse.
 */
export function parseInstant(text: string): number | null {
  let m = DATE.exec(text);
  if (m !== null) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    return validDate(y, mo, d) ? utcMillis(y, mo, d) : null;
  }
  m = DATE_TIME.exec(text);
  if (m === null) return null;
  const [y, mo, d, h] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  const mi = m[5] === undefined ? 0 : Number(m[5]);
  const s = m[6] === undefined ? 0 : Number(m[6]);
  if (!validDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return null;
  // Python keeps microseconds: digits past the sixth are dropped
  const micros = m[7] === undefined ? 0 : Number(m[7].slice(0, 6).padEnd(6, "0"));
  let offset = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== "Z") {
    const digits = zone.slice(1).replaceAll(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = digits.length >= 4 ? Number(digits.slice(2, 4)) : 0;
    const os = digits.length >= 6 ? Number(digits.slice(4, 6)) : 0;
    if (oh > 23 || om > 59 || os > 59) return null;
    offset = (zone[0] === "-" ? -1 : 1) * (oh * 3600 + om * 60 + os) * 1000;
  }
  return utcMillis(y, mo, d, h, mi, s) + micros / 1000 - offset;
}

const instantCache = new Map<string, number | null>();

/** Epoch milliseconds of a context value: an ISO string, epoch-ms number or a Date. */
export function instantOf(value: unknown): number | null {
  if (typeof value === "number") return Number.isNaN(value) ? null : value;
  if (typeof value === "bigint") return Number(value);
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
