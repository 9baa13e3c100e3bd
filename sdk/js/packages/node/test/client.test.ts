import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpenFeature } from "@openfeature/server-sdk";
import { afterEach, describe, expect, it } from "vitest";
import { bootstrapPayload, bootstrapScript, FlagsiteClient, FlagsiteProvider, type RulesetDocument } from "../src/index.js";

const quiet = { debug: () => {}, warn: () => {} };

function ruleset(version: number, pdfOn = 5): RulesetDocument {
  return {
    schemaVersion: 1, environment: "test", version, segments: {},
    flags: {
      "new-pdf-engine": {
        key: "new-pdf-engine", version: 1, valueType: "boolean", variants: { on: true, off: false },
        enabled: true, offVariant: "off", salt: "new-pdf-engine", clientVisible: true, rules: [],
        defaultServe: { rollout: { bucketBy: "accountId", variants: [
          { variant: "on", weight: pdfOn * 1000 }, { variant: "off", weight: 100_000 - pdfOn * 1000 }] } },
      },
      banner: {
        key: "banner", version: 1, valueType: "string", variants: { a: "hello", b: "<\/script>" },
        enabled: true, offVariant: "a", salt: "banner", clientVisible: true,
        rules: [{ id: "r1", conditions: [{ attribute: "plan", operator: "equals", values: ["pro"] }], serve: { variant: "b" } }],
        defaultServe: { variant: "a" },
      },
      secret: {
        key: "secret", version: 1, valueType: "number", variants: { x: 1 }, enabled: true, offVariant: "x",
        salt: "secret", rules: [], defaultServe: { variant: "x" },
      },
    },
  } as RulesetDocument;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

function offline(doc: RulesetDocument | undefined, extra = {}) {
  const client = new FlagsiteClient({ bootstrap: doc, offline: true, logger: quiet, ...extra });
  open.push(client);
  return client;
}

describe("FlagsiteClient offline", () => {
  it("evaluates a bootstrap document with typed getters and details", () => {
    const client = offline(ruleset(3, 100));
    expect(client.version).toBe(3);
    expect(client.isEnabled("new-pdf-engine", { accountId: "acc-1" })).toBe(true);
    expect(client.getString("banner", { plan: "pro" }, "x")).toBe("<\/script>");
    expect(client.variant("banner", { plan: "free" })).toBe("a");
    expect(client.getNumber("secret", {}, 0)).toBe(1);
    const d = client.details("banner", { plan: "pro" }, "x");
    expect([d.reason, d.ruleId, d.variant]).toEqual(["TARGETING_MATCH", "r1", "b"]);
  });

  it("gives defaults and never throws on bad input", () => {
    const client = offline(ruleset(1));
    expect(client.isEnabled("nope", {}, true)).toBe(true);
    expect(client.getString("new-pdf-engine", {}, "fallback")).toBe("fallback");
    expect(client.isEnabled("new-pdf-engine", null as never, true)).toBe(true); // no accountId: error -> default
    const weird = { get accountId(): string { throw new Error("boom"); } };
    expect(client.isEnabled("new-pdf-engine", weird, true)).toBe(true);
    expect(client.details("new-pdf-engine", weird, false).errorCode).toBe("GENERAL");
  });

  it("without any ruleset answers defaults with PARSE_ERROR", () => {
    const client = offline(undefined);
    expect(client.isEnabled("new-pdf-engine", { accountId: "a" }, true)).toBe(true);
    expect(client.details("banner", {}, "d").errorCode).toBe("PARSE_ERROR");
  });

  it("reads a bootstrap file, and survives a broken one", () => {
    const dir = mkdtempSync(join(tmpdir(), "flagsite-"));
    writeFileSync(join(dir, "good.json"), JSON.stringify(ruleset(7)));
    writeFileSync(join(dir, "bad.json"), "{not json");
    expect(offline(undefined, { bootstrapFile: join(dir, "good.json") }).version).toBe(7);
    expect(offline(undefined, { bootstrapFile: join(dir, "bad.json") }).version).toBeNull();
  });

  it("keeps the last good ruleset when an unusable one arrives", () => {
    const client = offline(ruleset(2));
    const install = (client as unknown as { install(d: unknown, via: string): boolean }).install.bind(client);
    expect(install({ ...ruleset(3), schemaVersion: 99 }, "stream")).toBe(false);
    expect(install({ ...ruleset(4), flags: [] }, "stream")).toBe(false);
    expect(client.version).toBe(2);
    expect(client.getString("banner", { plan: "pro" }, "")).toBe("<\/script>");
  });

  it("installs a ruleset with a flag it cannot compile, which alone answers PARSE_ERROR", () => {
    const warnings: string[] = [];
    const client = offline(ruleset(2), { logger: { debug: () => {}, warn: (m: string) => warnings.push(m) } });
    const install = (client as unknown as { install(d: unknown, via: string): boolean }).install.bind(client);
    const doc = ruleset(3);
    doc.flags.x = { key: "x" } as never;
    expect(install(doc, "stream")).toBe(true);
    expect(client.version).toBe(3);
    expect(client.getString("banner", { plan: "pro" }, "")).toBe("<\/script>");
    expect(client.details("x", {}, "d")).toMatchObject({ value: "d", reason: "ERROR", errorCode: "PARSE_ERROR" });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("1 flag(s) could not be compiled");
  });
});

describe("SSR helper", () => {
  it("emits client-visible flags only, safe inside a script element", () => {
    const client = offline(ruleset(5, 100));
    const payload = bootstrapPayload(client, { accountId: "acc-1", plan: "pro" });
    expect(Object.keys(payload.flags).sort()).toEqual(["banner", "new-pdf-engine"]);
    expect(payload.flags.banner).not.toHaveProperty("ruleId");
    const html = bootstrapScript(payload);
    expect(html).not.toContain("<\/script><");
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    const json = html.replace(/^<script[^>]*>/, "").replace(/<\/script>$/, "");
    expect(JSON.parse(json)).toEqual(payload);
  });
});

describe("exposures", () => {
  let server: Server;
  const batches: {
    batch_id: string;
    events: { flag: string; variant: string; context_key: string; units?: Record<string, string> }[];
  }[] = [];

  async function recordingServer(): Promise<string> {
    batches.length = 0;
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (req.url === "/api/v1/events") batches.push(JSON.parse(body));
        res.writeHead(req.url === "/api/v1/events" ? 202 : 503, { "Content-Type": "application/json" });
        res.end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    open.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("are deduplicated per flag, variant and context key, and bounded", async () => {
    const baseUrl = await recordingServer();
    const client = new FlagsiteClient({
      baseUrl, serverKey: "fs_srv_test", bootstrap: ruleset(1, 50), stream: false, logger: quiet,
      pollIntervalMs: 60_000, events: { maxQueue: 3, flushIntervalMs: 60_000 },
    });
    for (let i = 0; i < 3; i++) {
      client.isEnabled("new-pdf-engine", { targetingKey: "u1", accountId: "a1" });
      client.getString("banner", { targetingKey: "u1", plan: "free" }, "");
    }
    client.getString("banner", { targetingKey: "u1", plan: "pro" }, ""); // a new variant: recorded
    client.getString("banner", { targetingKey: "u2" }, ""); // queue full: dropped
    client.getString("banner", {}, ""); // no context key: not recorded
    await client.flush();
    const events = batches.flatMap((b) => b.events);
    expect(events.map((e) => [e.flag, e.variant, e.context_key])).toEqual([
      ["new-pdf-engine", client.variant("new-pdf-engine", { accountId: "a1" }), "u1"],
      ["banner", "a", "u1"],
      ["banner", "b", "u1"],
    ]);
    expect(client.eventStats()).toMatchObject({ dropped: 1, sent: 3, queued: 0 });
    await client.close();
  });

  it("carry the units the flag buckets by", async () => {
    const baseUrl = await recordingServer();
    const client = new FlagsiteClient({
      baseUrl, serverKey: "fs_srv_test", bootstrap: ruleset(1, 50), stream: false, logger: quiet,
      pollIntervalMs: 60_000, events: { flushIntervalMs: 60_000 },
    });
    client.isEnabled("new-pdf-engine", { targetingKey: "u1", accountId: "a1" });
    client.isEnabled("new-pdf-engine", { targetingKey: "u2", accountId: 42 }); // an integer id: its digits
    // longer than the server takes: left out rather than have the event refused
    client.isEnabled("new-pdf-engine", { targetingKey: "u3", accountId: "x".repeat(300) });
    client.getString("banner", { targetingKey: "u1", accountId: "a1" }, ""); // buckets by nothing
    await client.flush();
    const events = batches.flatMap((b) => b.events);
    expect(events.map((e) => [e.context_key, e.units])).toEqual([
      ["u1", { accountId: "a1" }],
      ["u2", { accountId: "42" }],
      ["u3", undefined],
      ["u1", undefined],
    ]);
    await client.close();
  });
});

describe("OpenFeature provider", () => {
  it("resolves through the OpenFeature server API", async () => {
    const provider = new FlagsiteProvider(offline(ruleset(1, 100)));
    await OpenFeature.setProviderAndWait("flagsite-test", provider);
    const of = OpenFeature.getClient("flagsite-test");
    expect(await of.getBooleanValue("new-pdf-engine", false, { targetingKey: "u", accountId: "a" })).toBe(true);
    const d = await of.getStringDetails("banner", "", { targetingKey: "u", plan: "pro" });
    expect([d.value, d.variant, d.reason, d.flagMetadata.ruleId]).toEqual(["<\/script>", "b", "TARGETING_MATCH", "r1"]);
    const missing = await of.getBooleanDetails("nope", true, {});
    expect([missing.value, missing.errorCode]).toEqual([true, "FLAG_NOT_FOUND"]);
    await OpenFeature.clearProviders();
  });
});
