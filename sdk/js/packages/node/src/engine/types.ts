/** Result types of the engine; the same vocabulary as sdk/python/flagsite_sdk/engine/types.py. */

export const RULESET_SCHEMA_VERSION = 1;
export const BUCKETS = 100_000;
/** A string context value longer than this many code points counts as absent (docs/ruleset.md). */
export const MAX_VALUE_CODE_POINTS = 4096;

export type Reason = "STATIC" | "TARGETING_MATCH" | "SPLIT" | "DEFAULT" | "DISABLED" | "ERROR";
export type ErrorCode =
  | "FLAG_NOT_FOUND"
  | "TYPE_MISMATCH"
  | "PARSE_ERROR"
  | "TARGETING_KEY_MISSING"
  | "GENERAL";

export type Context = Readonly<Record<string, unknown>>;

/**
 * The outcome of one evaluation. Static outcomes are built at compile time, frozen and shared
 * between evaluations, so the common path allocates nothing: treat them (and json values) as
 * read-only.
 */
export interface EvaluationDetails<T = unknown> {
  readonly flagKey: string;
  readonly value: T;
  readonly variant: string | null;
  readonly reason: Reason;
  readonly errorCode: ErrorCode | null;
  readonly errorMessage: string | null;
  readonly ruleId: string | null;
  readonly flagVersion: number | null;
  readonly notes: readonly string[];
}

export type Resolver = (ctx: Context) => EvaluationDetails;

const NO_NOTES: readonly string[] = Object.freeze([]);

export function details(fields: {
  flagKey: string;
  value: unknown;
  variant: string | null;
  reason: Reason;
  errorCode?: ErrorCode | null;
  errorMessage?: string | null;
  ruleId?: string | null;
  flagVersion?: number | null;
  notes?: readonly string[];
}): EvaluationDetails {
  return Object.freeze({
    flagKey: fields.flagKey,
    value: fields.value,
    variant: fields.variant,
    reason: fields.reason,
    errorCode: fields.errorCode ?? null,
    errorMessage: fields.errorMessage ?? null,
    ruleId: fields.ruleId ?? null,
    flagVersion: fields.flagVersion ?? null,
    notes: fields.notes && fields.notes.length > 0 ? Object.freeze([...fields.notes]) : NO_NOTES,
  });
}

export function errorDetails(
  flagKey: string,
  value: unknown,
  errorCode: ErrorCode,
  errorMessage: string,
  flagVersion: number | null,
): EvaluationDetails {
  return details({ flagKey, value, variant: null, reason: "ERROR", errorCode, errorMessage, flagVersion });
}

/** A compile failure: the document is not a ruleset this engine can evaluate. */
export class RulesetInvalid extends Error {
  constructor(message: string) {
    super(`invalid ruleset: ${message}`);
    this.name = "RulesetInvalid";
  }
}
