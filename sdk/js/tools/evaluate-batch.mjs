// Evaluates batches with the Node engine (packages/node/dist), for tests/js/test_cross_language.py.
// stdin: {"batches": [{"ruleset": doc, "cases": [[flagKey, context], ...]}, ...]}
// stdout: {"results": [[[variant, reason, ruleId, errorCode, hasNotes, value], ...], ...]}
// Integers beyond 2^53 are read as bigints, as Python keeps them exact.
import { readFileSync } from "node:fs";
import { isSafeNumber, parse } from "lossless-json";
import { compileRuleset } from "../packages/node/dist/index.js";

const number = (text) => (isSafeNumber(text) ? Number(text) : /^-?\d+$/.test(text) ? BigInt(text) : Number(text));
const input = parse(readFileSync(0, "utf8"), null, number);
const results = input.batches.map(({ ruleset, cases }) => {
  const compiled = compileRuleset(ruleset);
  return cases.map(([flag, context]) => {
    const d = compiled.evaluate(flag, context);
    const value = typeof d.value === "bigint" ? Number(d.value) : d.value;
    return [d.variant, d.reason, d.ruleId, d.errorCode, d.notes.length > 0, value];
  });
});
process.stdout.write(JSON.stringify({ results }));
