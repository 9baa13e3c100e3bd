// Opens a flag's dashboard in Debian's chromium, waits for the charts to draw, and reports
// whether every chart canvas has pixels, what the page polled, and any console error.
// Run by tests/integration/dashboards/test_dashboard_browser.py; inputs in FLAGSITE_BROWSER.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const input = JSON.parse(process.env.FLAGSITE_BROWSER || "{}");
const { baseUrl, username, password, path, screenshot, updates } = input;
const TIMEOUT = 20000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function run(page) {
  await page.goto(`${baseUrl}/admin/login/?next=${encodeURIComponent(path)}`);
  await page.fill("#id_username", username);
  await page.fill("#id_password", password);
  await Promise.all([page.waitForURL(`**${path}`), page.click("#login-form [type=submit]")]);  // the theme renders a button
  // Polling: wait for the wanted number of updates (the first draws, later ones redraw).
  await page.waitForFunction(
    (n) => window.flagsiteDashboard && window.flagsiteDashboard.updates >= n, updates,
    { timeout: TIMEOUT },
  );
  const out = await page.evaluate(() => {
    const painted = {};
    for (const canvas of document.querySelectorAll(".flag-dashboard canvas")) {
      if (canvas.closest("[hidden]")) continue;
      const { width, height } = canvas;
      const pixels = width && height ? canvas.getContext("2d").getImageData(0, 0, width, height).data : [];
      let inked = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked += 1;
      painted[canvas.id] = { width, height, inked };
    }
    const d = window.flagsiteDashboard;
    return {
      painted,
      updates: d.updates,
      fetchErrors: d.errors,
      lastUpdate: document.getElementById("last-update").textContent,
      guardrail: document.getElementById("guardrail").innerText,
      srm: document.getElementById("srm").innerText,
      variantRows: Array.from(document.querySelectorAll("#variants tbody tr[data-variant]"))
        .map((tr) => Array.from(tr.cells).map((td) => td.innerText)),
      timelineRows: document.querySelectorAll("#timeline tbody tr").length,
      timeline: Array.from(document.querySelectorAll("#timeline tbody tr"))
        .map((tr) => ({ kind: tr.className, cells: Array.from(tr.cells).map((td) => td.innerText) })),
      status: document.getElementById("status").innerText,
      chartData: Object.fromEntries(Object.entries(d.charts).map(([id, chart]) => [
        id, chart.data.datasets.map((ds) => ds.data),
      ])),
    };
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  return out;
}

async function main() {
  mkdirSync(dirname(screenshot), { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "flagsite-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  context.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (err) => consoleErrors.push(String(err)));
    page.on("console", (msg) => {
      if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
        consoleErrors.push(msg.text());
      }
    });
    page.on("response", (res) => {
      if (res.status() >= 400 && !res.url().endsWith("/favicon.ico")) {
        consoleErrors.push(`${res.status()} ${res.url()}`);
      }
    });
    const out = await run(page);
    out.consoleErrors = consoleErrors;
    process.stdout.write(JSON.stringify(out) + "\n");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
