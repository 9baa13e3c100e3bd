// Evaluates batches with the Node engine (packages/node/dist), for tests/js (test_cross_language.py,
// test_operand_grammar.py).
// usage: node evaluate-batch.mjs [--reader=lossless|json]
// stdin: {"batches": [{"ruleset": doc, "cases": [[flagKey, context], ...]}, ...]}
// stdout: {"results": [[[variant, reason, ruleId, errorCode, hasNotes, value], ...], ...],
//          "broken": [[flag keys the engine set aside, sorted], ...],
//          "brokenSegments": [[segment keys the engine set aside, sorted], ...],
//          "refused": [null | why the whole document was refused, ...]}
// --reader=lossless (the default) reads integers beyond 2^53 as bigints, as Python keeps them
// exact; "json" is JSON.parse, as the SDK's fetch reads the server's answers.
import { readFileSync } from "node:fs";
import { isSafeNumber, parse } from "lossless-json";
import { compileRuleset } from "../packages/node/dist/index.js";

const number = (text) => (isSafeNumber(text) ? Number(text) : /^-?\d+$/.test(text) ? BigInt(text) : Number(text));
const raw = readFileSync(0, "utf8");
const input = process.argv.includes("--reader=json") ? JSON.parse(raw) : parse(raw, null, number);
const results = [];
const broken = [];
const brokenSegments = [];
const refused = [];
for (const { ruleset, cases } of input.batches) {
  let compiled;
  try {
    compiled = compileRuleset(ruleset);
  } catch (exc) {
    results.push([]);
    broken.push([]);
    brokenSegments.push([]);
    refused.push(String(exc instanceof Error ? exc.message : exc));
    continue;
  }
  refused.push(null);
  broken.push([...compiled.brokenFlags.keys()].sort());
  brokenSegments.push([...compiled.brokenSegments.keys()].sort());
  results.push(
    cases.map(([flag, context]) => {
      const d = compiled.evaluate(flag, context);
      const value = typeof d.value === "bigint" ? Number(d.value) : d.value;
      return [d.variant, d.reason, d.ruleId, d.errorCode, d.notes.length > 0, value];
    }),
  );
}
process.stdout.write(JSON.stringify({ results, broken, brokenSegments, refused }));
