/** The shared JSON vectors (tests/vectors/*.json), the same ones the Python engine passes. */
import { readFileSync } from "node:fs";
import { isSafeNumber, parse } from "lossless-json";
import { describe, expect, it } from "vitest";
import { bucket, compileRuleset, OPERATORS, operandProblem, type RulesetDocument } from "../src/engine/index.js";

const VECTORS = new URL("../../../../../tests/vectors/", import.meta.url);
// Two readers of the same JSON text: JSON.parse (what the SDK's fetch uses) rounds integers
// beyond 2^53 to doubles; the lossless reader keeps them as bigints, as Python keeps them exact.
// The vectors must pass with both, since the number range makes the difference irrelevant.
const number = (text: string) => (isSafeNumber(text) ? Number(text) : /^-?\d+$/.test(text) ? BigInt(text) : Number(text));
const readers = {
  "JSON.parse": (text: string): any => JSON.parse(text),
  lossless: (text: string): any => parse(text, null, number),
};
const text = (name: string) => readFileSync(new URL(name, VECTORS), "utf8");

function booleanFlag(key: string, rules: unknown[]) {
  return {
    key, version: 1, valueType: "boolean", variants: { on: true, off: false }, enabled: true,
    offVariant: "off", salt: key, rules, defaultServe: { variant: "off" },
  };
}

function conditionDoc(condition: unknown, segments: unknown = {}): RulesetDocument {
  const rule = { id: "rule", conditions: [condition], serve: { variant: "on" } };
  return {
    schemaVersion: 1, environment: "test", version: 1, flags: { f: booleanFlag("f", [rule]) }, segments,
  } as unknown as RulesetDocument;
}

for (const [reader, read] of Object.entries(readers)) {
  const operators = read(text("operators.json"));
  const evaluation = read(text("evaluation.json"));

  describe(`operators.json (${reader})`, () => {
    it.each(operators.cases.map((c: { name: string }) => [c.name, c]))("%s", (_name, c: any) => {
      const compiled = compileRuleset(conditionDoc(c.condition, operators.segments));
      expect([...compiled.brokenFlags]).toEqual([]);
      const d = compiled.evaluate("f", c.context, false);
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

  describe(`evaluation.json (${reader})`, () => {
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

  describe(`operands.json (${reader})`, () => {
    const operands = read(text("operands.json"));
    it.each(operands.cases.map((c: { name: string }) => [c.name, c]))("%s", (_name, c: any) => {
      const compiled = compileRuleset(conditionDoc({ attribute: "a", operator: c.operator, values: c.values }));
      expect(compiled.brokenFlags.has("f"), compiled.brokenFlags.get("f")).toBe(!c.valid);
      const problem = operandProblem(c.operator, c.values);
      if (c.valid) {
        expect(problem).toBeNull();
      } else {
        const [index] = problem!;
        expect(index === null ? "values" : `values[${index}]`).toBe(c.path);
        expect(compiled.evaluate("f", { a: 1 }, true)).toMatchObject({ value: true, errorCode: "PARSE_ERROR" });
      }
    });
  });

  describe(`forward.json (${reader})`, () => {
    const forward = read(text("forward.json"));
    const compiled = compileRuleset(forward.ruleset);
    it("sets aside exactly the flags and segments that cannot compile", () => {
      expect([...compiled.brokenFlags.keys()].sort()).toEqual(forward.brokenFlags);
      expect([...compiled.brokenSegments.keys()].sort()).toEqual(forward.brokenSegments);
    });
    it.each(forward.cases.map((c: { name: string }) => [c.name, c]))("%s", (_name, c: any) => {
      const d = compiled.evaluate(c.flag, c.context, c.default);
      expect(d.value).toEqual(c.expect.value);
      expect(d.variant).toBe(c.expect.variant);
      expect(d.reason).toBe(c.expect.reason);
      expect(d.ruleId).toBe(c.expect.ruleId);
      expect(d.errorCode).toBe(c.expect.errorCode);
      expect(d.notes.length > 0, JSON.stringify(d.notes)).toBe(c.expect.notes);
    });
  });
}

describe("bucketing.json", () => {
  const bucketing = JSON.parse(text("bucketing.json"));
  it.each(bucketing.cases.map((c: any) => [`${c.salt}/${c.value}`, c]))("%s", (_n, c: any) => {
    expect(bucket(c.salt, c.value)).toBe(c.bucket);
  });
});
