// Drives the admin as an editor would, in Debian's chromium: targeting read as sentences, a
// rollout percentage edited with the widget, the evaluation debugger, and the API docs with
// every request to another host blocked (offline). Run by
// tests/integration/flags/test_admin_product_browser.py; inputs come from FLAGSITE_BROWSER
// (JSON) and one JSON line with what the page showed is printed. pytest checks the database.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { chromium } from "playwright-core";

const input = JSON.parse(process.env.FLAGSITE_BROWSER || "{}");
const { baseUrl, username, password, scenario, screenshot, flagId, stateId, debugFlagId } = input;
const TIMEOUT = 15000;
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function login(page, next) {
  await page.goto(`${baseUrl}/admin/login/?next=${encodeURIComponent(next)}`);
  await page.fill("#id_username", username);
  await page.fill("#id_password", password);
  await Promise.all([page.waitForURL(`**${next}`), page.click("#login-form [type=submit]")]);
}

async function run(page, blocked) {
  const out = { scenario };
  if (scenario === "sentences") {
    await login(page, "/admin/flags/flag/");
    out.list = await page.locator(".flag-targeting").allInnerTexts();
    await page.goto(`${baseUrl}/admin/flags/flag/${flagId}/change/`);
    out.page = await page.locator("#targeting-sentences .targeting-sentences").allInnerTexts();
    out.header = await page.locator("header, #header, nav").first().innerText();
    await page.locator("#targeting-sentences").scrollIntoViewIfNeeded();
  } else if (scenario === "rollout") {
    const change = `/admin/flags/flagstate/${stateId}/change/`;
    await login(page, change);
    const serve = page.locator(".field-line.field-default_serve .flags-editor");
    await serve.locator('input.flags-weight[data-variant="on"]').fill("25");
    out.offShown = await serve.locator('input.flags-weight[data-variant="off"]').inputValue();
    out.fallbackShown = await serve.locator("select.flags-fallback").inputValue();
    // More than everyone: the other variant drops to 0 and the total warns next to the field.
    await serve.locator('input.flags-weight[data-variant="on"]').fill("120");
    out.totalWarning = await serve.locator(".flags-total").innerText();
    await serve.locator('input.flags-weight[data-variant="on"]').fill("25");
    out.totalAfterFix = await serve.locator(".flags-total").innerText();
    out.serveJson = JSON.parse(await page.inputValue("#id_default_serve"));
    await page.fill("#id_reason", "browser: widen to 25%");
    await page.screenshot({ path: screenshot.replace(".png", "-filled.png"), fullPage: true });
    await Promise.all([page.waitForLoadState("load"), page.click("[name=_save]")]);
    await page.waitForLoadState("load");
    out.url = page.url();
  } else if (scenario === "debugger") {
    await login(page, "/admin/flags/flag/debugger/");
    await page.selectOption("#id_flag", String(debugFlagId));
    await page.fill("#id_account_id", "acct-1001");
    await Promise.all([page.waitForLoadState("load"), page.click("#debug-submit")]);
    await page.waitForSelector(".debug-environment");
    out.environments = await page.locator(".debug-environment").evaluateAll((nodes) =>
      nodes.map((n) => ({
        environment: n.dataset.environment,
        variant: n.querySelector(".debug-variant").textContent.trim(),
        reason: n.querySelector(".debug-reason").textContent.trim(),
        rule: (n.querySelector(".debug-rule") || { textContent: "" }).textContent.trim(),
        matched: Array.from(n.querySelectorAll(".debug-matched")).map((r) => r.innerText),
      })));
    await page.locator(".debug-environment").first().scrollIntoViewIfNeeded();
  } else if (scenario === "docs") {
    // Offline: any request to a host other than the test server is refused (and recorded).
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") {
        blocked.push(url.href);
        return route.abort();
      }
      return route.continue();
    });
    await login(page, "/admin/");
    await page.goto(`${baseUrl}/api/docs/`);
    await page.waitForSelector(".swagger-ui .info .title", { timeout: TIMEOUT });
    out.title = await page.locator(".swagger-ui .info .title").innerText();
    out.operations = await page.locator(".opblock").count();
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  return out;
}

async function main() {
  mkdirSync(dirname(screenshot), { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "flagsite-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: ARGS,
    viewport: { width: 1400, height: 1000 }, timeout: 30000,
  });
  context.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  const blocked = [];
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
    const out = await run(page, blocked);
    out.consoleErrors = consoleErrors;
    out.blocked = blocked;
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
