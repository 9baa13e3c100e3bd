// Drives the /demo/ page (sdk/js/demo, @flagsite/react) in Debian's chromium against a real
// Flagsite server. Run by tests/js/test_demo_browser.py, which reads one JSON line per phase on
// stdout and answers on stdin when it has stopped the server. Input: FLAGSITE_BROWSER (JSON).
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

const { baseUrl, managementKey, killPath, maintenancePath, screenshot } = JSON.parse(process.env.FLAGSITE_BROWSER || "{}");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (obj) => console.log(JSON.stringify(obj));

// Installed before any page script: records every value the flag rows ever show, the values at
// the first animation frame (the frame painted first) and at load, and every uncaught error.
function recorder() {
  const w = window;
  w.__flags = { history: [], firstFrame: null, atLoad: null, errors: [], firstContentfulPaint: null };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.name === "first-contentful-paint") w.__flags.firstContentfulPaint = e.startTime;
  }).observe({ type: "paint", buffered: true });
  const read = () => Object.fromEntries([...document.querySelectorAll("tr[data-flag]")].map((r) => [r.dataset.flag, r.dataset.value]));
  const note = () => {
    for (const [flag, value] of Object.entries(read())) {
      const last = w.__flags.history.filter((h) => h.flag === flag).at(-1);
      if (!last || last.value !== value) w.__flags.history.push({ flag, value, at: performance.now() });
    }
  };
  new MutationObserver(note).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-value"] });
  // the first frame drawn with the flag rows in it
  const frame = () => {
    const now = read();
    if (Object.keys(now).length > 0) w.__flags.firstFrame = now;
    else requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  addEventListener("load", () => { note(); w.__flags.atLoad = read(); });
  addEventListener("error", (e) => w.__flags.errors.push(String(e.message)));
  addEventListener("unhandledrejection", (e) => w.__flags.errors.push(`unhandled rejection: ${e.reason}`));
}

async function api(method, path, body) {
  const response = await fetch(baseUrl + path, {
    method, headers: { Authorization: `Bearer ${managementKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

// Milliseconds from the management API's answer until `predicate` holds in the page.
async function timeUntil(page, change, predicate) {
  await change();
  const t0 = Date.now();
  await page.waitForFunction(predicate, null, { timeout: 5000, polling: "raf" });
  return Date.now() - t0;
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.addInitScript(recorder);
  await page.goto(`${baseUrl}/demo/`, { waitUntil: "load" });
  await page.waitForFunction(() => window.__flags.firstFrame !== null && window.__flags.atLoad !== null
    && window.__flags.firstContentfulPaint !== null);
  const rendered = await page.evaluate(() => window.__flags);
  // let the first server answer arrive (it must change nothing), then read the page again
  await page.waitForFunction(() => document.getElementById("flags-source")?.textContent === "bootstrap", null, { timeout: 2000 });
  say({ phase: "loaded", ...rendered, bulkPanel: await page.locator("#bulk-api").count() });

  const killMs = await timeUntil(page, () => api("POST", killPath, { reason: "demo browser test" }),
    () => document.getElementById("bulk-api") === null);
  const state = await api("GET", maintenancePath);
  const maintenanceMs = await timeUntil(page,
    () => api("PATCH", maintenancePath, { version: state.version, enabled: true, defaultServe: { variant: "on" }, reason: "demo browser test" }),
    () => document.getElementById("maintenance-banner") !== null);
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  say({ phase: "changed", killMs, maintenanceMs, reloads: await page.evaluate(() => performance.getEntriesByType("navigation").length) });

  (await lines.next()).value; // the test stopped the server
  let failed = 0;
  page.on("requestfailed", () => failed++);
  // switch account while the server is down: a request fails, the page keeps working
  await page.selectOption("#account-preset", "1");
  await page.waitForFunction(() => document.getElementById("account-id")?.value === "acct-2040");
  await page.waitForTimeout(0);
  const deadline = Date.now() + 10000;
  while (failed < 2 && Date.now() < deadline) await page.waitForTimeout(50);
  const after = await page.evaluate(() => ({
    banner: document.getElementById("maintenance-banner") !== null,
    rows: document.querySelectorAll("tr[data-flag]").length,
    errors: window.__flags.errors,
  }));
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-offline.png"), fullPage: true });
  say({ phase: "offline", failedRequests: failed, ...after, pageErrors });
} finally {
  await browser.close();
  process.stdin.destroy(); // the stdin reader would keep node running
}
