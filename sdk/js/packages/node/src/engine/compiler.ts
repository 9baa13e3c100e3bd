/** compileRuleset: a ruleset document becomes closures, built once per ruleset version. */
import {
  attributeGetter,
  type Condition,
  CompileProblem,
  ConditionProblem,
  compileCondition,
  type RawCondition,
  TARGETING_KEY,
  wellFormed,
} from "./operators.js";
import { compileServe, type FlagShape, outcome, type RawServe } from "./serve.js";
import {
  type Context,
  details,
  type EvaluationDetails,
  errorDetails,
  type Resolver,
  RULESET_SCHEMA_VERSION,
  RulesetInvalid,
} from "./types.js";

export type ValueType = "boolean" | "string" | "number" | "json";

interface RawRule {
  id: string;
  conditions: RawCondition[];
  serve: RawServe;
}
interface RawFlag {
  key: string;
  version: number;
  valueType: ValueType;
  variants: Record<string, unknown>;
  enabled: boolean;
  offVariant: string;
  salt: string;
  clientVisible?: boolean;
  prerequisites?: { flag: string; variants: string[] }[];
  rules: RawRule[];
  defaultServe: RawServe;
}
interface RawSegment {
  key: string;
  keyAttribute?: string;
  included?: string[];
  excluded?: string[];
  rules?: { id: string; conditions: RawCondition[] }[];
}
export interface RulesetDocument {
  schemaVersion: number;
  project?: string;
  environment: string;
  version: number;
  generatedAt?: string;
  flags: Record<string, RawFlag>;
  segments: Record<string, RawSegment>;
}

export interface CompiledFlag {
  readonly key: string;
  readonly version: number;
  readonly valueType: ValueType;
  readonly clientVisible: boolean;
  readonly variants: Readonly<Record<string, unknown>>;
  readonly resolve: Resolver;
  /** Why the flag could not be compiled (it then answers ERROR / PARSE_ERROR), else null. */
  readonly problem: string | null;
}

const EMPTY: Context = Object.freeze({});
/** The key grammar of ruleset.schema.json ($defs.key), as flagsite_sdk.engine.KEY_PATTERN. */
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const VALUE_TYPES: ReadonlySet<string> = new Set(["boolean", "string", "number", "json"]);
/** Each prerequisite is one nested evaluation: deeper chains are refused (validate.py's limit). */
const MAX_PREREQUISITE_DEPTH = 64;

function acceptsDefault(valueType: ValueType, value: unknown): boolean {
  if (value === null || value === undefined || valueType === "json") return true;
  return typeof value === valueType || (valueType === "number" && typeof value === "bigint");
}

/** The flags and segments of one environment at one ruleset version. */
export class CompiledRuleset {
  readonly version: number;
  readonly environment: string;
  readonly project: string | null;
  /**
   * What could not be compiled, each set aside on its own (forward compatibility, see
   * compileRuleset): flag key -> why. These flags answer ERROR / PARSE_ERROR.
   */
  readonly brokenFlags: ReadonlyMap<string, string>;
  /** Segment key -> why it could not be compiled (the flags using it are broken too). */
  readonly brokenSegments: ReadonlyMap<string, string>;
  private readonly flags: Map<string, CompiledFlag>;
  private readonly booleans: Map<string, Resolver>;

  constructor(
    readonly source: RulesetDocument,
    flags: Map<string, CompiledFlag>,
    brokenSegments: ReadonlyMap<string, string> = new Map(),
  ) {
    this.version = source.version;
    this.environment = source.environment;
    this.project = source.project ?? null;
    this.flags = flags;
    this.brokenFlags = new Map(
      [...flags].filter(([, f]) => f.problem !== null).map(([k, f]) => [k, f.problem as string]),
    );
    this.brokenSegments = brokenSegments;
    this.booleans = new Map([...flags].filter(([, f]) => f.valueType === "boolean").map(([k, f]) => [k, f.resolve]));
  }

  flagKeys(): string[] {
    return [...this.flags.keys()];
  }

  flag(key: string): CompiledFlag | undefined {
    return this.flags.get(key);
  }

  /** Fast boolean check; unknown or non-boolean flags and any error give `fallback`. */
  isEnabled(key: string, context: Context | null | undefined, fallback = false): boolean {
    const resolve = this.booleans.get(key);
    if (resolve === undefined) return fallback;
    try {
      const d = resolve(context ?? EMPTY);
      return d.errorCode === null ? (d.value as boolean) : fallback;
    } catch {
      return fallback;
    }
  }

  /** Full details; never throws. On error the value is `fallback` and errorCode says why. */
  evaluate(key: string, context: Context | null | undefined, fallback: unknown = null): EvaluationDetails {
    const flag = this.flags.get(key);
    if (flag === undefined) return errorDetails(key, fallback, "FLAG_NOT_FOUND", `no flag '${key}'`, null);
    // a broken flag answers its error whatever the default: no TYPE_MISMATCH check
    if (flag.problem === null && !acceptsDefault(flag.valueType, fallback)) {
      const got = Array.isArray(fallback) ? "list" : typeof fallback;
      return errorDetails(
        key,
        fallback,
        "TYPE_MISMATCH",
        `flag '${key}' is a ${flag.valueType}, the default is a ${got}`,
        flag.version,
      );
    }
    let d: EvaluationDetails;
    try {
      d = flag.resolve(context ?? EMPTY);
    } catch (exc) {
      return errorDetails(key, fallback, "GENERAL", String(exc), flag.version);
    }
    return d.errorCode === null ? d : { ...d, value: fallback };
  }

  evaluateAll(context: Context | null | undefined, clientVisibleOnly = false): Record<string, EvaluationDetails> {
    const out: Record<string, EvaluationDetails> = {};
    for (const [key, flag] of this.flags) {
      if (flag.clientVisible || !clientVisibleOnly) out[key] = this.evaluate(key, context);
    }
    return out;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function why(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}

/**
 * Compiles a ruleset document, forward-compatibly (docs/ruleset.md, "Forward compatibility"):
 * fields this engine does not know are ignored, and a flag or segment it cannot compile (an
 * operator or serve kind from a newer server, an operand outside the grammar) is set aside on
 * its own. Such a flag answers ERROR / PARSE_ERROR with the caller's default, and so does every
 * flag using such a segment; every other flag of the version applies, so a kill switch beside a
 * broken flag still arrives. Only an unusable top level throws RulesetInvalid (the SDK then keeps
 * its last good ruleset). The Python engine's compile_ruleset(doc, lenient=True) does the same.
 */
export function compileRuleset(doc: RulesetDocument): CompiledRuleset {
  if (!isObject(doc)) throw new RulesetInvalid("the document is not an object");
  if (doc.schemaVersion !== RULESET_SCHEMA_VERSION) {
    throw new RulesetInvalid(`schemaVersion ${String(doc.schemaVersion)} is not ${RULESET_SCHEMA_VERSION}`);
  }
  if (!Number.isInteger(doc.version) || (doc.version as number) < 0) {
    throw new RulesetInvalid("version must be an integer from 0");
  }
  if (typeof doc.environment !== "string" || doc.environment === "") {
    throw new RulesetInvalid("environment must be a non-empty string");
  }
  for (const name of ["project", "generatedAt"] as const) {
    if (doc[name] !== undefined && typeof doc[name] !== "string") throw new RulesetInvalid(`${name} must be a string`);
  }
  if (!isObject(doc.flags) || !isObject(doc.segments)) throw new RulesetInvalid("flags and segments must be objects");
  const flags = doc.flags as Record<string, unknown>;
  const segments = new Map<string, Condition>();
  const brokenSegments = new Map<string, string>();
  for (const [key, seg] of Object.entries(doc.segments as Record<string, unknown>)) {
    try {
      if (!KEY_RE.test(key)) throw new CompileProblem(`'${key}' is not a key`);
      segments.set(key, compileSegment(key, seg));
    } catch (exc) {
      brokenSegments.set(key, `segments.${key}: ${why(exc)}`);
    }
  }
  const done = new Map<string, CompiledFlag>();
  const depths = new Map<string, number>();
  const visiting = new Set<string>();
  const compileOne = (key: string): CompiledFlag => {
    const ready = done.get(key);
    if (ready !== undefined) return ready;
    // a missing prerequisite or a cycle is the problem of the flag that names it
    if (!Object.hasOwn(flags, key)) throw new CompileProblem(`unknown prerequisite flag '${key}'`);
    if (visiting.has(key)) throw new CompileProblem(`prerequisite cycle through '${key}'`);
    const raw = flags[key];
    visiting.add(key);
    let flag: CompiledFlag;
    try {
      flag = compileFlag(key, raw, flags, compileOne, segments, brokenSegments);
    } catch (exc) {
      flag = brokenFlag(key, raw, `flags.${key}: ${why(exc)}`);
    } finally {
      visiting.delete(key);
    }
    // Only the first flag past the limit is refused, as the Python validator reports it; the
    // flags above it depend on a broken flag, which serves them their offVariant.
    const below = (isObject(raw) && Array.isArray(raw.prerequisites) ? raw.prerequisites : [])
      .map((p: unknown) => (isObject(p) && typeof p.flag === "string" ? depths.get(p.flag) : undefined))
      .filter((d): d is number => d !== undefined);
    const depth = 1 + Math.max(0, ...below);
    depths.set(key, depth);
    if (flag.problem === null && depth > MAX_PREREQUISITE_DEPTH && below.every((d) => d <= MAX_PREREQUISITE_DEPTH)) {
      flag = brokenFlag(key, raw, `flags.${key}.prerequisites: chain longer than ${MAX_PREREQUISITE_DEPTH} flags`);
    }
    done.set(key, flag);
    return flag;
  };
  const ordered = new Map<string, CompiledFlag>();
  for (const key of Object.keys(flags)) ordered.set(key, compileOne(key));
  return new CompiledRuleset(doc, ordered, brokenSegments);
}

/** A flag that could not be compiled: ERROR / PARSE_ERROR, with the caller's default. */
function brokenFlag(key: string, raw: unknown, problem: string): CompiledFlag {
  const fields = isObject(raw) ? raw : {};
  const version = Number.isInteger(fields.version) ? (fields.version as number) : null;
  const valueType = VALUE_TYPES.has(fields.valueType as string) ? (fields.valueType as ValueType) : "json";
  const failed = errorDetails(key, null, "PARSE_ERROR", `flag '${key}' could not be compiled: ${problem}`.slice(0, 500), version);
  return Object.freeze({
    key,
    version: version ?? 0,
    valueType,
    clientVisible: fields.clientVisible === true,
    variants: Object.freeze({}),
    resolve: () => failed,
    problem,
  });
}

function wellFormedText(s: unknown, what: string): void {
  if (typeof s !== "string" || s === "") throw new CompileProblem(`${what} must be a non-empty string`);
  // as the Python validator's invalid_text: no lone surrogate, no NUL
  if (!s.isWellFormed() || s.includes("\0")) throw new CompileProblem(`${what} contains a lone surrogate or a NUL`);
}

const VALUE_CHECKS: Record<ValueType, (v: unknown) => boolean> = {
  boolean: (v) => typeof v === "boolean",
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number" || typeof v === "bigint",
  json: () => true,
};

/** What compiling needs of a flag entry, checked as the Python validator checks it. */
function checkFlag(key: string, raw: unknown): asserts raw is RawFlag {
  if (!KEY_RE.test(key)) throw new CompileProblem(`'${key}' is not a key`);
  if (!isObject(raw)) throw new CompileProblem("not an object");
  if (raw.key !== key) throw new CompileProblem(`key '${String(raw.key)}' differs from its entry name`);
  if (!Number.isInteger(raw.version) || (raw.version as number) < 0) throw new CompileProblem("version must be an integer");
  if (!VALUE_TYPES.has(raw.valueType as string)) throw new CompileProblem(`unknown valueType '${String(raw.valueType)}'`);
  if (!isObject(raw.variants) || Object.keys(raw.variants).length === 0) throw new CompileProblem("variants are required");
  const check = VALUE_CHECKS[raw.valueType as ValueType];
  for (const [name, value] of Object.entries(raw.variants)) {
    wellFormedText(name, "a variant name");
    if (!check(value)) throw new CompileProblem(`variants.${name} is not a ${String(raw.valueType)}`);
  }
  if (typeof raw.enabled !== "boolean") throw new CompileProblem("enabled must be a boolean");
  if (typeof raw.offVariant !== "string" || !Object.hasOwn(raw.variants, raw.offVariant)) {
    throw new CompileProblem(`unknown offVariant '${String(raw.offVariant)}'`);
  }
  wellFormedText(raw.salt, "salt");
  if (raw.prerequisites !== undefined && !Array.isArray(raw.prerequisites)) throw new CompileProblem("prerequisites must be a list");
  if (!Array.isArray(raw.rules)) throw new CompileProblem("rules must be a list");
  const ids = new Set<string>();
  raw.rules.forEach((rule: unknown, i: number) => {
    if (!isObject(rule) || !Array.isArray(rule.conditions)) throw new CompileProblem(`rules[${i}] needs conditions`);
    wellFormedText(rule.id, `rules[${i}].id`);
    if (ids.has(rule.id as string)) throw new CompileProblem(`rules[${i}].id: duplicate rule id`);
    ids.add(rule.id as string);
  });
}

function compileFlag(
  key: string,
  entry: unknown,
  flags: Readonly<Record<string, unknown>>,
  compileOne: (key: string) => CompiledFlag,
  segments: ReadonlyMap<string, Condition>,
  brokenSegments: ReadonlyMap<string, string>,
): CompiledFlag {
  checkFlag(key, entry);
  const raw = entry;
  const prereqs = new Map<string, CompiledFlag>();
  (raw.prerequisites ?? []).forEach((p: unknown, i: number) => {
    if (!isObject(p) || typeof p.flag !== "string" || !Array.isArray(p.variants) || p.variants.length === 0) {
      throw new CompileProblem(`prerequisites[${i}] needs a flag and variants`);
    }
    const target = compileOne(p.flag);
    const targetVariants = isObject(flags[p.flag]) ? (flags[p.flag] as Record<string, unknown>).variants : undefined;
    for (const name of p.variants) {
      if (isObject(targetVariants) && !Object.hasOwn(targetVariants, name as string)) {
        throw new CompileProblem(`prerequisites[${i}]: flag '${p.flag}' has no variant '${String(name)}'`);
      }
    }
    prereqs.set(p.flag, target);
  });
  for (const rule of raw.rules) {
    for (const cond of rule.conditions) {
      if (cond?.operator !== "in_segment" && cond?.operator !== "not_in_segment") continue;
      for (const name of cond.values ?? []) {
        if (brokenSegments.has(name as string)) {
          throw new CompileProblem(`uses segment '${String(name)}', which could not be compiled`);
        }
      }
    }
  }
  const shape: FlagShape = {
    key: raw.key,
    version: raw.version,
    salt: raw.salt,
    variants: Object.freeze({ ...raw.variants }),
  };
  return Object.freeze({
    key: raw.key,
    version: raw.version,
    valueType: raw.valueType,
    clientVisible: Boolean(raw.clientVisible),
    variants: shape.variants,
    resolve: flagResolver(shape, raw, prereqs, segments),
    problem: null,
  });
}

type Step = readonly [Condition, EvaluationDetails | null, Resolver | null];

function flagResolver(
  shape: FlagShape,
  raw: RawFlag,
  prereqs: ReadonlyMap<string, CompiledFlag>,
  segments: ReadonlyMap<string, Condition>,
): Resolver {
  const off = raw.offVariant;
  // Everything is compiled even when the flag is disabled: whether a flag is broken must not
  // depend on its on/off state, in this engine as in the Python one (which validates it all).
  const checks = (raw.prerequisites ?? []).map((p) => prerequisiteCheck(shape, off, p, prereqs));
  const steps: Step[] = raw.rules.map((rule, i) => {
    const match = allOf(rule.conditions.map((c, j) => compileCondition(c, `rules[${i}].conditions[${j}]`, segments)));
    const served = compileServe(shape, rule.serve, "TARGETING_MATCH", rule.id);
    return typeof served === "function" ? [match, null, served] : [match, served, null];
  });
  const dynamic = checks.length > 0 || steps.length > 0;
  const fallback = compileServe(shape, raw.defaultServe, dynamic ? "DEFAULT" : "STATIC", null);
  if (!raw.enabled) {
    const disabled = outcome(shape, off, "DISABLED", null);
    return () => disabled;
  }
  if (!dynamic) {
    if (typeof fallback === "function") return fallback;
    return () => fallback;
  }
  return generalResolver(checks, steps, fallback);
}

function generalResolver(
  checks: ((ctx: Context) => EvaluationDetails | null)[],
  steps: Step[],
  fallback: EvaluationDetails | Resolver,
): Resolver {
  const fallbackStatic = typeof fallback === "function" ? null : fallback;
  const fallbackDynamic = typeof fallback === "function" ? fallback : null;
  return (ctx) => {
    for (const check of checks) {
      const failed = check(ctx);
      if (failed !== null) return failed;
    }
    let notes: string[] | null = null;
    let result: EvaluationDetails | null = null;
    for (const [match, fixed, rollout] of steps) {
      let hit: boolean;
      try {
        hit = match(ctx);
      } catch (exc) {
        if (!(exc instanceof ConditionProblem)) throw exc;
        (notes ??= []).push(`${exc.message}; condition is false`);
        continue;
      }
      if (hit) {
        result = fixed ?? rollout!(ctx);
        break;
      }
    }
    result ??= fallbackStatic ?? fallbackDynamic!(ctx);
    if (notes !== null) return details({ ...result, notes: [...notes, ...result.notes] });
    return result;
  };
}

function prerequisiteCheck(
  shape: FlagShape,
  off: string,
  pre: { flag: string; variants: string[] },
  prereqs: ReadonlyMap<string, CompiledFlag>,
): (ctx: Context) => EvaluationDetails | null {
  const required = new Set(pre.variants);
  const target = prereqs.get(pre.flag)!.resolve;
  const wanted = pre.variants.map((v) => `'${v}'`).join(", ");
  const failed = outcome(shape, off, "DEFAULT", null, [
    `prerequisite '${pre.flag}' not met (needs variant ${wanted}); served offVariant`,
  ]);
  return (ctx) => {
    const variant = target(ctx).variant;
    return variant !== null && required.has(variant) ? null : failed;
  };
}

function allOf(conditions: Condition[]): Condition {
  if (conditions.length === 0) return () => true;
  if (conditions.length === 1) return conditions[0]!;
  if (conditions.length === 2) {
    const [first, second] = conditions as [Condition, Condition];
    return (ctx) => first(ctx) && second(ctx);
  }
  return (ctx) => conditions.every((c) => c(ctx));
}

/** Membership test: excluded keys lose, then included keys win, then any rule. */
function compileSegment(key: string, entry: unknown): Condition {
  if (!isObject(entry) || entry.key !== key) throw new CompileProblem("not a segment of this key");
  const seg = entry as unknown as RawSegment;
  if (!Number.isInteger(entry.version) || (entry.version as number) < 0) throw new CompileProblem("version must be an integer");
  if (seg.keyAttribute !== undefined && (typeof seg.keyAttribute !== "string" || seg.keyAttribute === "")) {
    throw new CompileProblem("keyAttribute must be a non-empty string");
  }
  for (const list of [seg.included, seg.excluded]) {
    if (list !== undefined && !(Array.isArray(list) && list.every((k) => typeof k === "string"))) {
      throw new CompileProblem("included and excluded are lists of strings");
    }
  }
  if (seg.rules !== undefined && !Array.isArray(seg.rules)) throw new CompileProblem("rules must be a list");
  const ids = new Set<string>();
  (seg.rules ?? []).forEach((rule: unknown, i: number) => {
    if (!isObject(rule) || !Array.isArray(rule.conditions)) throw new CompileProblem(`rules[${i}] needs conditions`);
    wellFormedText(rule.id, `rules[${i}].id`);
    if (ids.has(rule.id as string)) throw new CompileProblem(`rules[${i}].id: duplicate rule id`);
    ids.add(rule.id as string);
  });
  const attr = seg.keyAttribute ?? TARGETING_KEY;
  const get = attributeGetter(attr);
  const included = new Set((seg.included ?? []).map(wellFormed));
  const excluded = new Set((seg.excluded ?? []).map(wellFormed));
  const rules = (seg.rules ?? []).map((rule, i) =>
    allOf(rule.conditions.map((c, j) => compileCondition(c, `segments.${key}.rules[${i}].conditions[${j}]`, new Map()))),
  );
  return (ctx) => {
    const raw = get(ctx);
    if (typeof raw === "string") {
      const v = wellFormed(raw);
      if (excluded.has(v)) return false;
      if (included.has(v)) return true;
    }
    let problem: ConditionProblem | null = null;
    for (const rule of rules) {
      try {
        if (rule(ctx)) return true;
      } catch (exc) {
        if (!(exc instanceof ConditionProblem)) throw exc;
        problem = exc;
      }
    }
    // membership is unknown, so neither in_segment nor not_in_segment may hold
    if (problem !== null) throw problem;
    return false;
  };
}

export { details };
