// Node engine benchmark: the five seed flags over 10,000 contexts, against floors and peers.
//
// Run: (cd bench && npm install) && (cd sdk/js && npm run build) && node bench/node_engine.mjs
// The peers live in bench/package.json, so the test command never installs them.
//
// Every implementation evaluates the same five flags for the same contexts in one process.
// Contexts are converted to each library's own shape before timing, so nobody is charged for
// that conversion; ours take the plain object as is. Each row prints the share of "on" per flag,
// to show that all of them serve the same populations (rollouts hash differently in each
// product, so 5% and 50% agree in share, not in who).
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { compileRuleset, FlagsiteClient } from "../sdk/js/packages/node/dist/index.js";

const require = createRequire(import.meta.url);
const N_CONTEXTS = 10_000;
const REPEATS = 9;
const PEER_REPEATS = 3;
const FLAG_KEYS = ["new-pdf-engine", "redesigned-dashboard", "ai-chatbot", "bulk-invoice-api", "maintenance-mode"];
const ENTERPRISE = ["acc-1", "acc-2", "acc-3"];

function makeContexts() {
  let seed = 20240601;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = (xs) => xs[Math.floor(random() * xs.length)];
  return Array.from({ length: N_CONTEXTS }, (_, i) => ({
    targetingKey: `user-${i}`,
    accountId: `acc-${Math.floor(random() * 4000)}`,
    plan: pick(["free", "team", "enterprise"]),
    country: pick(["US", "UK", "DE", "FR", "IN"]),
  }));
}

const booleanFlag = (key, fields) => ({
  key, version: 1, valueType: "boolean", variants: { on: true, off: false }, enabled: true, offVariant: "off",
  salt: key, rules: [], defaultServe: { variant: "off" }, ...fields,
});
const split = (on, bucketBy) => ({ rollout: { bucketBy, fallbackVariant: "off", variants: [
  { variant: "on", weight: on }, { variant: "off", weight: 100_000 - on }] } });

function seedRuleset() {
  const flags = [
    booleanFlag("new-pdf-engine", { defaultServe: split(5_000, "accountId") }),
    booleanFlag("redesigned-dashboard", { defaultServe: split(50_000, "targetingKey") }),
    booleanFlag("ai-chatbot", { rules: [{ id: "free-us-uk", conditions: [
      { attribute: "plan", operator: "equals", values: ["free"] },
      { attribute: "country", operator: "in", values: ["US", "UK"] }], serve: { variant: "on" } }] }),
    booleanFlag("bulk-invoice-api", { rules: [{ id: "enterprise", conditions: [
      { attribute: "accountId", operator: "in", values: ENTERPRISE }], serve: { variant: "on" } }] }),
    booleanFlag("maintenance-mode", { enabled: false, defaultServe: { variant: "on" } }),
  ];
  return { schemaVersion: 1, project: "invoicing", environment: "production", version: 1,
    flags: Object.fromEntries(flags.map((f) => [f.key, f])), segments: {} };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median ns per evaluation over `repeats` passes, and per-flag "on" counts. */
function timeSync(check, contexts, repeats) {
  const counts = FLAG_KEYS.map((k) => contexts.reduce((n, c) => n + (check(k, c) ? 1 : 0), 0));
  const samples = [];
  let sink = 0;
  // untimed passes first, so the JIT has compiled the closures before the clock runs
  for (let w = 0; w < 5; w++) for (const key of FLAG_KEYS) for (const ctx of contexts) if (check(key, ctx)) sink++;
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint();
    for (const key of FLAG_KEYS) for (const ctx of contexts) if (check(key, ctx)) sink++;
    samples.push(Number(process.hrtime.bigint() - start) / (FLAG_KEYS.length * contexts.length));
  }
  if (sink < 0) console.log(sink);
  return { ns: median(samples), counts };
}

/** The same for APIs that answer with a promise (each evaluation awaited, as callers must). */
async function timeAsync(check, contexts, repeats) {
  const counts = [];
  for (const k of FLAG_KEYS) {
    let n = 0;
    for (const c of contexts) if (await check(k, c)) n++;
    counts.push(n);
  }
  const samples = [];
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint();
    for (const key of FLAG_KEYS) for (const ctx of contexts) await check(key, ctx);
    samples.push(Number(process.hrtime.bigint() - start) / (FLAG_KEYS.length * contexts.length));
  }
  return { ns: median(samples), counts };
}

function ours(contexts) {
  const compiled = compileRuleset(seedRuleset());
  const client = new FlagsiteClient({ bootstrap: seedRuleset(), offline: true, events: false });
  const recording = new FlagsiteClient({ bootstrap: seedRuleset(), offline: true });
  return {
    "flagsite engine isEnabled": [(k, c) => compiled.isEnabled(k, c), contexts],
    "flagsite engine evaluate (details)": [(k, c) => compiled.evaluate(k, c, false).value, contexts],
    "flagsite client isEnabled (no events)": [(k, c) => client.isEnabled(k, c), contexts],
    "flagsite client isEnabled (exposures)": [(k, c) => recording.isEnabled(k, c), contexts],
  };
}

function floors(contexts) {
  const answers = Object.fromEntries(FLAG_KEYS.map((k) => [k, true]));
  return { "floor: plain object lookup": [(k) => answers[k], contexts] };
}

async function unleash(contexts) {
  const { Unleash, InMemStorageProvider } = require("unleash-client");
  const constraint = (contextName, values) => ({ contextName, operator: "IN", values });
  const rollout = (pct, stickiness, groupId) => ({ name: "flexibleRollout", parameters: { rollout: String(pct), stickiness, groupId } });
  const features = [
    { name: "new-pdf-engine", enabled: true, strategies: [rollout(5, "accountId", "new-pdf-engine")] },
    { name: "redesigned-dashboard", enabled: true, strategies: [rollout(50, "userId", "redesigned-dashboard")] },
    { name: "ai-chatbot", enabled: true, strategies: [{ name: "default", constraints: [constraint("plan", ["free"]), constraint("country", ["US", "UK"])] }] },
    { name: "bulk-invoice-api", enabled: true, strategies: [{ name: "default", constraints: [constraint("accountId", ENTERPRISE)] }] },
    { name: "maintenance-mode", enabled: false, strategies: [{ name: "default" }] },
  ];
  const client = new Unleash({
    url: "http://127.0.0.1:9/api", appName: "flagsite-bench", disableMetrics: true,
    refreshInterval: 0, storageProvider: new InMemStorageProvider(), bootstrap: { data: features },
  });
  client.on("error", () => {});
  client.on("warn", () => {});
  await new Promise((resolve) => { client.once("ready", resolve); setTimeout(resolve, 5000); });
  const native = contexts.map((c) => ({ userId: c.targetingKey, properties: { accountId: c.accountId, plan: c.plan, country: c.country } }));
  return [(k, c) => client.isEnabled(k, c), native, () => client.destroy()];
}

function growthbook(contexts) {
  const { GrowthBook } = require("@growthbook/growthbook");
  const features = {
    "new-pdf-engine": { defaultValue: false, rules: [{ force: true, coverage: 0.05, hashAttribute: "accountId" }] },
    "redesigned-dashboard": { defaultValue: false, rules: [{ key: "redesigned-dashboard", variations: [false, true], weights: [0.5, 0.5], hashAttribute: "id" }] },
    "ai-chatbot": { defaultValue: false, rules: [{ condition: { plan: "free", country: { $in: ["US", "UK"] } }, force: true }] },
    "bulk-invoice-api": { defaultValue: false, rules: [{ condition: { accountId: { $in: ENTERPRISE } }, force: true }] },
    "maintenance-mode": { defaultValue: false },
  };
  // one instance per user, built before timing (the usual per-request pattern)
  const native = contexts.map((c) => new GrowthBook({ attributes: { id: c.targetingKey, accountId: c.accountId, plan: c.plan, country: c.country }, features }));
  return [(k, gb) => gb.isOn(k), native];
}

async function launchdarkly(contexts) {
  const ld = require("@launchdarkly/node-server-sdk");
  const { TestData } = require("@launchdarkly/node-server-sdk/integrations");
  const td = new TestData();
  const flag = (key, fields) => ({ key, version: 1, on: true, variations: [true, false], offVariation: 1,
    fallthrough: { variation: 1 }, targets: [], contextTargets: [], rules: [], prerequisites: [], salt: key, ...fields });
  const rollout = (on, bucketBy) => ({ rollout: { bucketBy, variations: [{ variation: 0, weight: on }, { variation: 1, weight: 100_000 - on }] } });
  const clause = (attribute, values) => ({ attribute, op: "in", values, negate: false, contextKind: "user" });
  await td.usePreconfiguredFlag(flag("new-pdf-engine", { fallthrough: rollout(5_000, "accountId") }));
  await td.usePreconfiguredFlag(flag("redesigned-dashboard", { fallthrough: rollout(50_000, "key") }));
  await td.usePreconfiguredFlag(flag("ai-chatbot", { rules: [{ id: "r1", variation: 0, clauses: [clause("plan", ["free"]), clause("country", ["US", "UK"])] }] }));
  await td.usePreconfiguredFlag(flag("bulk-invoice-api", { rules: [{ id: "r2", variation: 0, clauses: [clause("accountId", ENTERPRISE)] }] }));
  await td.usePreconfiguredFlag(flag("maintenance-mode", { on: false, fallthrough: { variation: 0 } }));
  const logger = { error() {}, warn() {}, info() {}, debug() {} };
  const client = ld.init("sdk-bench", { updateProcessor: td.getFactory(), sendEvents: false, diagnosticOptOut: true, logger });
  await client.waitForInitialization({ timeout: 10 });
  const native = contexts.map((c) => ({ kind: "user", key: c.targetingKey, accountId: c.accountId, plan: c.plan, country: c.country }));
  return [(k, c) => client.variation(k, c, false), native, () => client.close()];
}

async function flagsmith(contexts) {
  const { Flagsmith, LocalFileHandler } = await import("flagsmith-nodejs");
  let n = 0;
  const featureState = (id, name, enabled) => ({ feature: { id, name, type: "STANDARD" }, enabled, django_id: 100 + ++n,
    feature_state_value: null, featurestate_uuid: randomUUID(), multivariate_feature_state_values: [] });
  const segment = (id, name, featureId, feature, conditions) => ({ id, name,
    rules: [{ type: "ALL", rules: [], conditions }],
    feature_states: [{ ...featureState(featureId, feature, true), feature_segment: { priority: 1 } }] });
  const environment = {
    id: 1, api_key: "bench-env", name: "production",
    project: { id: 1, name: "invoicing", hide_disabled_flags: false,
      organisation: { id: 1, name: "bench", feature_analytics: false, stop_serving_flags: false, persist_trait_data: false },
      segments: [
        // this engine splits by identity only, so 5% of users stand for 5% of accounts
        segment(1, "pdf-5pct", 1, "new-pdf-engine", [{ operator: "PERCENTAGE_SPLIT", value: "5" }]),
        segment(2, "dash-50pct", 2, "redesigned-dashboard", [{ operator: "PERCENTAGE_SPLIT", value: "50" }]),
        segment(3, "free-us-uk", 3, "ai-chatbot", [{ operator: "EQUAL", value: "free", property_: "plan" }, { operator: "IN", value: "US,UK", property_: "country" }]),
        segment(4, "enterprise", 4, "bulk-invoice-api", [{ operator: "IN", value: ENTERPRISE.join(","), property_: "accountId" }]),
      ] },
    feature_states: FLAG_KEYS.map((k, i) => featureState(i + 1, k, false)),
  };
  const dir = mkdtempSync(join(tmpdir(), "flagsmith-bench-"));
  writeFileSync(join(dir, "environment.json"), JSON.stringify(environment));
  const client = new Flagsmith({ offlineMode: true, offlineHandler: new LocalFileHandler(join(dir, "environment.json")), enableAnalytics: false });
  const native = contexts.map((c) => [c.targetingKey, { accountId: c.accountId, plan: c.plan, country: c.country }]);
  return [async (k, [id, traits]) => (await client.getIdentityFlags(id, traits)).isFeatureEnabled(k), native, () => client.close?.()];
}

function version(name) {
  try {
    return JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), "utf8")).version;
  } catch {
    return "?";
  }
}

async function main() {
  const contexts = makeContexts();
  console.log(`Node ${process.version} on ${process.platform}-${process.arch}; CPU ${cpus()[0]?.model ?? "unknown"}`);
  console.log(["unleash-client", "@growthbook/growthbook", "@launchdarkly/node-server-sdk", "flagsmith-nodejs"].map((p) => `${p} ${version(p)}`).join(", "));
  console.log(`${N_CONTEXTS} contexts x ${FLAG_KEYS.length} flags per pass; median of ${REPEATS} passes (peers ${PEER_REPEATS})\n`);
  const rows = [];
  for (const [name, [check, native]] of Object.entries({ ...ours(contexts), ...floors(contexts) })) {
    rows.push([name, timeSync(check, native, REPEATS)]);
  }
  const peers = { "unleash-client isEnabled": [unleash, false], "growthbook isOn": [growthbook, false],
    "launchdarkly variation (async)": [launchdarkly, true], "flagsmith-nodejs local (async)": [flagsmith, true] };
  for (const [name, [setup, isAsync]] of Object.entries(peers)) {
    try {
      const [check, native, close] = await setup(contexts);
      rows.push([name, isAsync ? await timeAsync(check, native, PEER_REPEATS) : timeSync(check, native, PEER_REPEATS)]);
      await close?.();
    } catch (exc) {
      rows.push([name, { error: String(exc?.message ?? exc).slice(0, 120) }]);
    }
  }
  const ourNs = rows[0][1].ns;
  const floor = rows.find(([n]) => n.startsWith("floor"))[1].ns;
  console.log(`${"implementation".padEnd(40)} ${"ns/eval".padStart(9)} ${"x floor".padStart(8)} ${"x ours".padStart(7)}   share on: ${FLAG_KEYS.join(" ")}`);
  for (const [name, r] of rows) {
    if (r.error) {
      console.log(`${name.padEnd(40)} failed: ${r.error}`);
      continue;
    }
    const shares = r.counts.map((c) => `${((100 * c) / N_CONTEXTS).toFixed(1)}%`).join(" ");
    console.log(`${name.padEnd(40)} ${r.ns.toFixed(1).padStart(9)} ${(r.ns / floor).toFixed(1).padStart(8)} ${(r.ns / ourNs).toFixed(2).padStart(7)}   ${shares}`);
  }
  const peerRows = rows.filter(([n, r]) => !n.startsWith("flagsite") && !n.startsWith("floor") && !r.error);
  const fastest = Math.min(...peerRows.map(([, r]) => r.ns));
  const pass = ourNs <= 300 && ourNs < fastest;
  console.log(`\nflagsite engine isEnabled: ${ourNs.toFixed(1)} ns (target <= 300 ns, faster than every peer: fastest peer ${fastest.toFixed(1)} ns) -> ${pass ? "PASS" : "FAIL"}`);
  process.exitCode = pass ? 0 : 1;
}

await main();
