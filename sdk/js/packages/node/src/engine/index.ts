/** The Flagsite evaluation engine, a port of sdk/python/flagsite_sdk/engine (docs/ruleset.md). */
export { type CompiledFlag, CompiledRuleset, compileRuleset, type RulesetDocument, type ValueType } from "./compiler.js";
export { bucket } from "./hashing.js";
export { INSTANT_PATTERN, NUMBER_LIMIT, SEMVER_PATTERN } from "./grammar.js";
export { OPERATORS, operandProblem } from "./operators.js";
export {
  BUCKETS,
  type Context,
  type ErrorCode,
  type EvaluationDetails,
  MAX_VALUE_CODE_POINTS,
  type Reason,
  RULESET_SCHEMA_VERSION,
  RulesetInvalid,
} from "./types.js";
