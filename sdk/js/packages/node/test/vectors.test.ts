/** The shared JSON vectors (tests/vectors/*.json), the same ones the Python engine passes. */
import { readFileSync } from "node:fs";
import { isSafeNumber, parse } from "lossless-json";
import { describe, expect, it } from "vitest";
import { bucket, compileRuleset, OPERATORS, type RulesetDocument } from "../src/engine/index.js";

const VECTORS = new URL("../../../../../tests/vectors/", import.meta.url);
// Integers beyond 2^53 become bigints, which the engine compares exactly (as Python does).
const number = (text: string) => (isSafeNumber(text) ? Number(text) : /^-?\d+$/.test(text) ? BigInt(text) : Number(text));
const load = (name: string): any => parse(readFileSync(new URL(name, VECTORS), "utf8"), null, number);
const operators = load("operators.json");
const evaluation = load("evaluation.json");
const bucketing = load("bucketing.json");

function booleanFlag(key: string, rules: unknown[]) {
  return {
    key, version: 1, valueType: "boolean", variants: { on: true, off: false }, enabled: true,
    offVariant: "off", salt: key, rules, defaultServe: { variant: "off" },
  };
}

describe("operators.json", () => {
  it.each(operators.cases.map((c: { name: string }) => [c.name, c]))("%s", (_name, c: any) => {
    const rule = { id: "rule", conditions: [c.condition], serve: { variant: "on" } };
    const doc = {
      schemaVersion: 1, environment: "test", version: 1,
      flags: { f: booleanFlag("f", [rule]) }, segments: operators.segments,
    } as unknown as RulesetDocument;
    const d = compileRuleset(doc).evaluate("f", c.context, false);
    expect(d.errorCode).toBeNull();
    expect(d.value).toBe(c.expect);
    expect(d.ruleId).toBe(c.expect ? "rule" : null);
    expect(d.notes.length > 0, JSON.stringify(d.notes)).toBe(c.problem ?? false);
  });

  it("covers every operator", () => {
    const covered = new Set(operators.cases.map((c: any) => c.condition.operator));
    expect([...covered].sort()).toEqual([...OPERATORS].sort());
  });
});

describe("evaluation.json", () => {
  const compiled = compileRuleset(evaluation.ruleset);
  it.each(evaluation.cases.map((c: { name: string }) => [c.name, c]))("%s", (_name, c: any) => {
    const d = compiled.evaluate(c.flag, c.context, c.default);
    expect(d.value).toEqual(c.expect.value);
    expect(d.variant).toBe(c.expect.variant);
    expect(d.reason).toBe(c.expect.reason);
    expect(d.ruleId).toBe(c.expect.ruleId);
    expect(d.errorCode).toBe(c.expect.errorCode);
    if ("notes" in c.expect) expect(d.notes.length > 0, JSON.stringify(d.notes)).toBe(c.expect.notes);
  });
});

describe("bucketing.json", () => {
  it.each(bucketing.cases.map((c: any) => [`${c.salt}/${c.value}`, c]))("%s", (_n, c: any) => {
    expect(bucket(c.salt, c.value)).toBe(c.bucket);
  });
});
