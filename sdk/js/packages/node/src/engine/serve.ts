/** Serves (a fixed variant or a rollout) compiled to precomputed outcomes, as in serve.py. */
import { inNumberRange } from "./grammar.js";
import { murmur32 } from "./hashing.js";
import { attributeGetter, CompileProblem, TARGETING_KEY } from "./operators.js";
import { BUCKETS, type Context, details, type EvaluationDetails, type Reason, type Resolver } from "./types.js";

export interface FlagShape {
  readonly key: string;
  readonly version: number;
  readonly salt: string;
  readonly variants: Readonly<Record<string, unknown>>;
}

export function outcome(
  shape: FlagShape,
  variant: string,
  reason: Reason,
  ruleId: string | null,
  notes: readonly string[] = [],
): EvaluationDetails {
  if (!Object.hasOwn(shape.variants, variant)) throw new Error(`unknown variant '${variant}'`);
  return details({
    flagKey: shape.key,
    value: shape.variants[variant],
    variant,
    reason,
    ruleId,
    flagVersion: shape.version,
    notes,
  });
}

interface RawRollout {
  bucketBy?: string;
  fallbackVariant?: string;
  variants: { variant: string; weight: number }[];
}
export type RawServe = { variant: string } | { rollout: RawRollout };

/**
 * The decimal text a rollout hashes for a number, null when a number cannot be a key: a whole
 * number within the number range ("10" for 10 and for a JSON 10.0, which JSON.parse cannot tell
 * apart). Fractions and numbers beyond the range (a 2^64 id arrives rounded) are not keys, in
 * every engine alike (serve.py's number_key).
 */
export function numberKey(v: number | bigint): string | null {
  if (!inNumberRange(v)) return null;
  if (typeof v === "bigint") return String(v);
  return Number.isInteger(v) ? String(v) : null; // String(-0) is "0", as Python's str(int(-0.0))
}

/** A shared outcome for a fixed variant, a resolver for a rollout. */
export function compileServe(
  shape: FlagShape,
  serve: RawServe,
  reason: Reason,
  ruleId: string | null,
): EvaluationDetails | Resolver {
  if (serve === null || typeof serve !== "object") throw new CompileProblem("a serve must be an object");
  const kinds = ["variant", "rollout"].filter((k) => Object.hasOwn(serve, k));
  // exactly one known kind; a serve of a kind added by a newer server has none
  if (kinds.length !== 1) throw new CompileProblem("a serve is either a variant or a rollout");
  if ("variant" in serve) return outcome(shape, serve.variant, reason, ruleId);
  return compileRollout(shape, serve.rollout, reason, ruleId);
}

function compileRollout(shape: FlagShape, rollout: RawRollout, reason: Reason, ruleId: string | null): Resolver {
  if (rollout === null || typeof rollout !== "object" || !Array.isArray(rollout.variants) || rollout.variants.length === 0) {
    throw new CompileProblem("a rollout needs variants");
  }
  const weights = rollout.variants.map((p) => p?.weight);
  if (!weights.every((w) => Number.isInteger(w) && w >= 0 && w <= BUCKETS)) {
    throw new CompileProblem("rollout weights are integers from 0 to 100000");
  }
  if (weights.reduce((a, b) => a + b, 0) !== BUCKETS) throw new CompileProblem("rollout weights must sum to 100000");
  const attr = rollout.bucketBy ?? TARGETING_KEY;
  const get = attributeGetter(attr);
  const parts = rollout.variants.filter((p) => p.weight > 0);
  const outcomes = parts.map((p) => outcome(shape, p.variant, "SPLIT", ruleId));
  const ends: number[] = [];
  let total = 0;
  for (const p of parts) ends.push((total += p.weight));
  const fallbackReason: Reason = reason === "STATIC" ? "DEFAULT" : reason; // a fallback is never the one fixed answer
  const missing = missingOutcome(shape, rollout, attr, "is missing", fallbackReason, ruleId);
  const unusable = missingOutcome(
    shape, rollout, attr, "is not a string or a whole number within 2^53", fallbackReason, ruleId,
  );
  const prefix = `${shape.salt}.`;

  // The key to hash, or the outcome to serve when there is none.
  function keyOf(ctx: Context): string | EvaluationDetails {
    const v = get(ctx);
    if (typeof v === "string") return v === "" ? missing : v;
    if (v === undefined) return missing;
    if (typeof v === "number" || typeof v === "bigint") return numberKey(v) ?? unusable;
    return unusable;
  }

  if (outcomes.length === 1) {
    // a 100% rollout still needs the attribute, so that it is the same population as at 99%
    const only = outcomes[0]!;
    return (ctx) => {
      const k = keyOf(ctx);
      return typeof k === "string" ? only : k;
    };
  }
  if (outcomes.length === 2) {
    const [first, second] = outcomes as [EvaluationDetails, EvaluationDetails];
    const cut = ends[0]!;
    return (ctx) => {
      const k = keyOf(ctx);
      if (typeof k !== "string") return k;
      return murmur32(prefix + k) % BUCKETS < cut ? first : second;
    };
  }
  return (ctx) => {
    const k = keyOf(ctx);
    if (typeof k !== "string") return k;
    const b = murmur32(prefix + k) % BUCKETS;
    let i = 0;
    while (ends[i]! <= b) i++; // bisect_right over a handful of variants
    return outcomes[i]!;
  };
}

function missingOutcome(
  shape: FlagShape,
  rollout: RawRollout,
  attr: string,
  why: string,
  reason: Reason,
  ruleId: string | null,
): EvaluationDetails {
  const note = `bucket-by attribute '${attr}' ${why}`;
  if (rollout.fallbackVariant !== undefined && rollout.fallbackVariant !== null) {
    return outcome(shape, rollout.fallbackVariant, reason, ruleId, [`${note}; served the fallback variant`]);
  }
  return details({
    flagKey: shape.key,
    value: null,
    variant: null,
    reason: "ERROR",
    errorCode: "TARGETING_KEY_MISSING",
    errorMessage: `${note} and the rollout has no fallbackVariant`,
    ruleId,
    flagVersion: shape.version,
  });
}
