import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type BootstrapPayload, FlagsiteWebClient } from "../src/index.js";

const quiet = { debug: () => {}, warn: () => {} };
const flag = (flagKey: string, value: unknown, variant: string) => ({
  flagKey, value, variant, reason: "STATIC", errorCode: null, errorMessage: null, flagVersion: 1,
});
const boot: BootstrapPayload = { version: 4, flags: { a: flag("a", true, "on"), s: flag("s", "new", "treatment") } };

class MemoryStorage {
  items = new Map<string, string>();
  getItem(k: string) { return this.items.get(k) ?? null; }
  setItem(k: string, v: string) { this.items.set(k, v); }
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function server(handler: (url: string, body: string) => [number, unknown]) {
  const seen: { url: string; body: string; auth: string | undefined }[] = [];
  const s = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ url: req.url ?? "", body, auth: req.headers.authorization });
      const [status, out] = handler(req.url ?? "", body);
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => s.close(() => r())));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

describe("FlagsiteWebClient", () => {
  it("serves the bootstrap, typed, with defaults for unknown or mistyped flags", () => {
    const c = new FlagsiteWebClient({ clientKey: "k", baseUrl: "http://x", bootstrap: boot, storage: null, logger: quiet });
    expect(c.getSnapshot().source).toBe("bootstrap");
    expect(c.getInitialSnapshot()).toBe(c.getSnapshot());
    expect(c.value("a", false)).toBe(true);
    expect(c.value("s", "old")).toBe("new");
    expect(c.value("s", false)).toBe(false);
    expect(c.value("missing", "d")).toBe("d");
    expect(c.variant("s")).toBe("treatment");
  });

  it("prefers the bootstrap to the cache, and uses the cache without one", async () => {
    const storage = new MemoryStorage();
    const api = await server(() => [200, { version: 9, flags: { a: flag("a", false, "off") } }]);
    const first = new FlagsiteWebClient({ clientKey: "k", baseUrl: api.url, context: { targetingKey: "u" }, storage, logger: quiet });
    expect(await first.refresh()).toBe(true);
    expect(first.value("a", true)).toBe(false);
    expect(api.seen[0]).toMatchObject({ url: "/api/v1/evaluate/all", auth: "Bearer k" });
    expect(JSON.parse(api.seen[0]!.body)).toEqual({ context: { targetingKey: "u" } });
    const booted = new FlagsiteWebClient({ clientKey: "k", baseUrl: api.url, context: { targetingKey: "u" }, bootstrap: boot, storage, logger: quiet });
    expect(booted.value("a", false)).toBe(true);
    const cached = new FlagsiteWebClient({ clientKey: "k", baseUrl: api.url, context: { targetingKey: "u" }, storage, logger: quiet });
    expect([cached.getSnapshot().source, cached.value("a", true)]).toEqual(["cache", false]);
  });

  it("keeps its values, and the same snapshot, when the server is gone or answers the same", async () => {
    const api = await server(() => [200, boot]);
    const c = new FlagsiteWebClient({ clientKey: "k", baseUrl: api.url, bootstrap: boot, storage: null, logger: quiet });
    const before = c.getSnapshot();
    let changes = 0;
    c.subscribe(() => changes++);
    expect(await c.refresh()).toBe(true);
    expect(c.getSnapshot()).toBe(before);
    const gone = new FlagsiteWebClient({ clientKey: "k", baseUrl: "http://127.0.0.1:9", bootstrap: boot, storage: null, logger: quiet });
    expect(await gone.refresh()).toBe(false);
    expect(gone.value("a", false)).toBe(true);
    expect(changes).toBe(0);
  });

  it("sends each flag+variant exposure once per context key", async () => {
    const api = await server(() => [202, { accepted: 1 }]);
    const c = new FlagsiteWebClient({ clientKey: "k", baseUrl: api.url, bootstrap: boot, context: { targetingKey: "u" }, storage: null, logger: quiet });
    c.recordExposure("a");
    c.recordExposure("a");
    c.recordExposure("s");
    c.recordExposure("missing");
    await c.flush();
    const sent = JSON.parse(api.seen[0]!.body);
    expect(sent.events.map((e: { flag: string; variant: string; context_key: string }) => [e.flag, e.variant, e.context_key])).toEqual([
      ["a", "on", "u"], ["s", "treatment", "u"],
    ]);
    await c.flush();
    expect(api.seen).toHaveLength(1);
  });
});
