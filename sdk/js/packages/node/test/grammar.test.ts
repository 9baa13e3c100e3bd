/**
 * The operand grammar is written once, in ruleset.schema.json, which the Python engine reads;
 * grammar.ts holds copies (an edge bundle cannot read the file). They must be the same strings.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { INSTANT_PATTERN, NUMBER_LIMIT, SEMVER_PATTERN } from "../src/engine/index.js";

const SCHEMA = new URL("../../../../python/flagsite_sdk/engine/ruleset.schema.json", import.meta.url);
const defs = JSON.parse(readFileSync(SCHEMA, "utf8")).$defs;

describe("operand grammar", () => {
  it("is the schema's, string for string", () => {
    expect(INSTANT_PATTERN).toBe(defs.instant.pattern);
    expect(SEMVER_PATTERN).toBe(defs.semver.pattern);
    expect(NUMBER_LIMIT).toBe(defs.operandNumber.maximum);
    expect(-NUMBER_LIMIT).toBe(defs.operandNumber.minimum);
    expect(NUMBER_LIMIT).toBe(Number.MAX_SAFE_INTEGER);
  });
});
