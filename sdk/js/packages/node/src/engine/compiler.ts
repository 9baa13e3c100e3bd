/** compileRuleset: a ruleset document becomes closures, built once per ruleset version. */
import {
  attributeGetter,
  type Condition,
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
}

const EMPTY: Context = Object.freeze({});

function acceptsDefault(valueType: ValueType, value: unknown): boolean {
  if (value === null || value === undefined || valueType === "json") return true;
  return typeof value === valueType || (valueType === "number" && typeof value === "bigint");
}

/** The flags and segments of one environment at one ruleset version. */
export class CompiledRuleset {
  readonly version: number;
  readonly environment: string;
  readonly project: string | null;
  private readonly flags: Map<string, CompiledFlag>;
  private readonly booleans: Map<string, Resolver>;

  constructor(readonly source: RulesetDocument, flags: Map<string, CompiledFlag>) {
    this.version = source.version;
    this.environment = source.environment;
    this.project = source.project ?? null;
    this.flags = flags;
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
    if (!acceptsDefault(flag.valueType, fallback)) {
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

/**
 * Compiles a document the server validated (flagsite_sdk.engine.validate_ruleset runs on every
 * save). Structural problems this engine meets while compiling throw RulesetInvalid; the SDK
 * then keeps its last good ruleset.
 */
export function compileRuleset(doc: RulesetDocument): CompiledRuleset {
  try {
    return compileUnchecked(doc);
  } catch (exc) {
    if (exc instanceof RulesetInvalid) throw exc;
    throw new RulesetInvalid(String(exc instanceof Error ? exc.message : exc));
  }
}

function compileUnchecked(doc: RulesetDocument): CompiledRuleset {
  if (doc === null || typeof doc !== "object") throw new RulesetInvalid("the document is not an object");
  if (doc.schemaVersion !== RULESET_SCHEMA_VERSION) {
    throw new RulesetInvalid(`schemaVersion ${String(doc.schemaVersion)} is not ${RULESET_SCHEMA_VERSION}`);
  }
  if (!Number.isInteger(doc.version) || typeof doc.flags !== "object" || typeof doc.segments !== "object") {
    throw new RulesetInvalid("version, flags and segments are required");
  }
  const segments = new Map<string, Condition>();
  for (const [key, seg] of Object.entries(doc.segments)) segments.set(key, compileSegment(key, seg));
  const done = new Map<string, CompiledFlag>();
  const visiting = new Set<string>();
  const compileOne = (key: string): CompiledFlag => {
    const ready = done.get(key);
    if (ready !== undefined) return ready;
    const raw = Object.hasOwn(doc.flags, key) ? doc.flags[key] : undefined;
    if (raw === undefined) throw new RulesetInvalid(`unknown prerequisite flag '${key}'`);
    if (visiting.has(key)) throw new RulesetInvalid(`prerequisite cycle through '${key}'`);
    visiting.add(key);
    const prereqs = new Map((raw.prerequisites ?? []).map((p) => [p.flag, compileOne(p.flag)]));
    const flag = compileFlag(raw, prereqs, segments);
    visiting.delete(key);
    done.set(key, flag);
    return flag;
  };
  const ordered = new Map<string, CompiledFlag>();
  for (const key of Object.keys(doc.flags)) ordered.set(key, compileOne(key));
  return new CompiledRuleset(doc, ordered);
}

function compileFlag(
  raw: RawFlag,
  prereqs: ReadonlyMap<string, CompiledFlag>,
  segments: ReadonlyMap<string, Condition>,
): CompiledFlag {
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
  if (!raw.enabled) {
    const disabled = outcome(shape, off, "DISABLED", null);
    return () => disabled;
  }
  const checks = (raw.prerequisites ?? []).map((p) => prerequisiteCheck(shape, off, p, prereqs));
  const steps: Step[] = raw.rules.map((rule, i) => {
    const match = allOf(rule.conditions.map((c, j) => compileCondition(c, `rules[${i}].conditions[${j}]`, segments)));
    const served = compileServe(shape, rule.serve, "TARGETING_MATCH", rule.id);
    return typeof served === "function" ? [match, null, served] : [match, served, null];
  });
  const dynamic = checks.length > 0 || steps.length > 0;
  const fallback = compileServe(shape, raw.defaultServe, dynamic ? "DEFAULT" : "STATIC", null);
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
function compileSegment(key: string, seg: RawSegment): Condition {
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
