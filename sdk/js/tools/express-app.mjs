// A small Express service on @flagsite/node (packages/node/dist), for tests/js/test_node_service.py:
// the invoicing API's PDF endpoint picks its engine with new-pdf-engine, evaluated locally.
// Env: FLAGSITE_URL, FLAGSITE_SERVER_KEY, PORT. Prints one JSON line once it listens.
import express from "express";
import { FlagsiteClient } from "../packages/node/dist/index.js";

const flags = new FlagsiteClient({
  baseUrl: process.env.FLAGSITE_URL,
  serverKey: process.env.FLAGSITE_SERVER_KEY,
  reconnectInitialMs: 200,
  reconnectMaxMs: 2000,
  pollIntervalMs: 5000,
  events: { flushIntervalMs: 500 },
});
const ready = await flags.ready(15_000);

function contextOf(req) {
  const account = req.params.account;
  return { targetingKey: `user-${account}`, userId: `user-${account}`, accountId: account,
           plan: req.query.plan, country: req.query.country };
}

const app = express();
app.get("/healthz", (_req, res) => res.json({ ready, version: flags.version }));
app.get("/accounts/:account/invoices/pdf", (req, res) => {
  const ctx = contextOf(req);
  const engine = flags.isEnabled("new-pdf-engine", ctx, false) ? "new" : "classic";
  res.json({ engine, version: flags.version });
});
app.get("/accounts/:account/flags", (req, res) => {
  const ctx = contextOf(req);
  const out = {};
  for (const key of flags.compiled?.flagKeys() ?? []) out[key] = flags.details(key, ctx).variant;
  res.json({ version: flags.version, flags: out });
});
const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log(JSON.stringify({ listening: Number(process.env.PORT), ready, version: flags.version }));
});
async function stop() {
  server.close();
  await flags.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
