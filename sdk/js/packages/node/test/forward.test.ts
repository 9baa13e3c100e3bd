/**
 * Forward compatibility through the real client: a server (here a small stand-in speaking the
 * SDK endpoints) sends a ruleset whose one flag uses an operator this SDK does not know. The
 * client still becomes ready, every other flag applies, and a later version (the kill switch
 * turned on) arrives over the stream.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FlagsiteClient, type RulesetDocument } from "../src/index.js";

const quiet = { debug: () => {}, warn: () => {} };

function ruleset(version: number, maintenance: boolean): RulesetDocument {
  const flag = (key: string, extra: Record<string, unknown> = {}) => ({
    key, version: 1, valueType: "boolean", variants: { on: true, off: false }, enabled: true,
    offVariant: "off", salt: key, rules: [], defaultServe: { variant: "off" }, ...extra,
  });
  return {
    schemaVersion: 1, environment: "production", version, segments: {},
    flags: {
      "maintenance-mode": flag("maintenance-mode", { defaultServe: { variant: maintenance ? "on" : "off" } }),
      "geo-pricing": flag("geo-pricing", {
        rules: [{ id: "near", conditions: [{ attribute: "location", operator: "within_radius", values: ["52.5,13.4", "10km"] }],
                  serve: { variant: "on" } }],
      }),
      checkout: flag("checkout", {
        prerequisites: [{ flag: "maintenance-mode", variants: ["off"] }], defaultServe: { variant: "on" },
      }),
    },
  } as unknown as RulesetDocument;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

/** GET /api/v1/sdk/ruleset and an SSE /api/v1/sdk/stream that `publish` pushes frames to. */
async function standIn(first: RulesetDocument) {
  let current = first;
  const streams = new Set<ServerResponse>();
  const frame = (doc: RulesetDocument) =>
    `id: ${doc.version}\nevent: ruleset\ndata: ${JSON.stringify({ version: doc.version, ruleset: doc })}\n\n`;
  const server = createServer((req, res) => {
    if (req.url === "/api/v1/sdk/stream") {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
      res.write(frame(current));
      streams.add(res);
      req.on("close", () => streams.delete(res));
      return;
    }
    if (req.url === "/api/v1/sdk/ruleset") {
      res.writeHead(200, { "Content-Type": "application/json", ETag: `"${current.version}"` });
      res.end(JSON.stringify(current));
      return;
    }
    res.writeHead(202, { "Content-Type": "application/json" });
    res.end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(async () => {
    for (const res of streams) res.end();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    publish(doc: RulesetDocument) {
      current = doc;
      for (const res of streams) res.write(frame(doc));
    },
  };
}

describe("a ruleset with a flag this SDK cannot compile", () => {
  it("makes the client ready, applies the other flags, and later versions still arrive", async () => {
    const server = await standIn(ruleset(1, false));
    const warnings: string[] = [];
    const client = new FlagsiteClient({
      baseUrl: server.baseUrl, serverKey: "fs_srv_test", events: false, pollIntervalMs: 60_000,
      logger: { ...quiet, warn: (message: string) => warnings.push(message) },
    });
    cleanup.push(() => client.close());

    expect(await client.ready(5_000)).toBe(true);
    expect(client.isEnabled("maintenance-mode", {}, true)).toBe(false);
    expect(client.isEnabled("checkout", {}, false)).toBe(true);
    expect(client.details("geo-pricing", { location: "52.5,13.4" }, true)).toMatchObject({
      value: true, variant: null, reason: "ERROR", errorCode: "PARSE_ERROR",
    });
    expect(warnings.some((w) => w.includes("geo-pricing") && w.includes("within_radius"))).toBe(true);

    const arrived = new Promise<number>((resolve) => client.onChange(resolve));
    server.publish(ruleset(2, true)); // the kill switch, in a version that still holds the broken flag
    expect(await arrived).toBe(2);
    expect(client.isEnabled("maintenance-mode", {}, false)).toBe(true);
    expect(client.isEnabled("checkout", {}, true)).toBe(false);
    expect(client.details("geo-pricing", {}, false).errorCode).toBe("PARSE_ERROR");
  });
});

describe("a bootstrap file with a flag this SDK cannot compile", () => {
  it("serves every other flag of it", () => {
    const path = join(mkdtempSync(join(tmpdir(), "flagsite-")), "ruleset.json");
    writeFileSync(path, JSON.stringify(ruleset(4, true)));
    const client = new FlagsiteClient({ bootstrapFile: path, offline: true, events: false, logger: quiet });
    cleanup.push(() => client.close());

    expect(client.version).toBe(4);
    expect(client.isEnabled("maintenance-mode", {}, false)).toBe(true);
    expect(client.details("geo-pricing", {}, false).errorCode).toBe("PARSE_ERROR");
  });
});
