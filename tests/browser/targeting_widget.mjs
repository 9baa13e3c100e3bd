// Drives the admin's targeting widget (flags/static/flags/rules_widget.js) in Debian's chromium.
// Run by tests/integration/flags/test_admin_browser.py; reads its inputs from FLAGSITE_BROWSER
// (JSON) and prints one JSON line with what the page showed. The pytest side checks the database.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const input = JSON.parse(process.env.FLAGSITE_BROWSER || "{}");
const { baseUrl, username, password, stateId, scenario, screenshot } = input;
const TIMEOUT = 10000;

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function login(page) {
  const change = `/admin/flags/flagstate/${stateId}/change/`;
  await page.goto(`${baseUrl}/admin/login/?next=${encodeURIComponent(change)}`);
  await page.fill("#id_username", username);
  await page.fill("#id_password", password);
  await Promise.all([page.waitForURL(`**${change}`), page.click("input[type=submit]")]);
}

// The editor the widget drew over a field's (hidden) textarea.
function editorOf(page, field) {
  return page.locator(`.form-row.field-${field} .flags-editor`);
}

async function addRule(page, conditions, serveVariant) {
  const rules = editorOf(page, "rules");
  await rules.getByRole("button", { name: "add rule" }).click();
  const rule = rules.locator(".flags-rule").last();
  await rule.locator("input.flags-rule-id").fill("free-us-uk");
  for (const [i, cond] of conditions.entries()) {
    await rule.getByRole("button", { name: "add condition" }).click();
    const row = rule.locator(".flags-condition").nth(i);
    await row.locator("input.flags-attribute").fill(cond.attribute);
    await row.locator("select.flags-operator").selectOption(cond.operator);
    await row.locator("input.flags-values").fill(cond.values);
  }
  if (serveVariant) {
    await rule.locator(".flags-serve select.flags-variant").selectOption(serveVariant);
  }
}

async function setRollout(page, onPercent, bucketBy) {
  const serve = editorOf(page, "default_serve");
  await serve.locator("select.flags-mode").selectOption("rollout");
  await serve.locator("input.flags-bucket-by").fill(bucketBy);
  await serve.locator('input.flags-weight[data-variant="on"]').fill(String(onPercent));
  return serve.locator('input.flags-weight[data-variant="off"]').inputValue();
}

async function submit(page) {
  await Promise.all([page.waitForLoadState("load"), page.click("input[name=_save]")]);
  await page.waitForLoadState("load");
}

async function run(page) {
  await login(page);
  const out = { scenario };
  if (scenario === "rule") {
    await page.check("#id_enabled");
    await addRule(page, [
      { attribute: "plan", operator: "in", values: "free" },
      { attribute: "country", operator: "in", values: "US, UK" },
    ], "on");
    out.offPercentShown = await setRollout(page, 25, "accountId");
    out.rulesJson = JSON.parse(await page.inputValue("#id_rules"));
    out.serveJson = JSON.parse(await page.inputValue("#id_default_serve"));
    await page.fill("#id_reason", "browser: free plan in US and UK");
    await page.screenshot({ path: screenshot.replace(".png", "-filled.png"), fullPage: true });
    await submit(page);
    out.url = page.url();
    out.messages = await page.locator("ul.messagelist").allInnerTexts();
  } else if (scenario === "bad-regex") {
    await addRule(page, [{ attribute: "email", operator: "matches", values: "(a)\\1" }], null);
    await page.fill("#id_reason", "browser: a regex that backtracks");
    await submit(page);
    out.url = page.url();
    out.fieldErrors = await page.locator(".form-row.field-rules ul.errorlist").allInnerTexts();
    out.formErrors = await page.locator("p.errornote, ul.errorlist.nonfield").allInnerTexts();
    // The posted rule is drawn again so the user can fix it rather than start over.
    out.redrawnPattern = await editorOf(page, "rules").locator("input.flags-values").first().inputValue();
    out.glance = await page.locator(".form-row.field-targeting_summary").innerText();
    out.invalidRows = await editorOf(page, "rules").locator(".flags-invalid").count();
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  return out;
}

async function main() {
  mkdirSync(dirname(screenshot), { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "flagsite-chromium-"));
  // launchPersistentContext is how playwright takes a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 1000 },
    timeout: 30000,
  });
  context.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (err) => consoleErrors.push(String(err)));
    // Resource failures are reported below with their URL (the browser asks for /favicon.ico).
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
