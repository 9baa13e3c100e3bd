/** The committed /demo/ bundle (flagsite/static/demo/demo.js) is what its sources build to. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

it("flagsite/static/demo/demo.js matches a fresh build, byte for byte", () => {
  const out = mkdtempSync(join(tmpdir(), "flagsite-demo-"));
  execFileSync("node", [new URL("../build.mjs", import.meta.url).pathname, out]);
  const fresh = readFileSync(join(out, "demo.js"));
  const committed = readFileSync(new URL("../../../../flagsite/static/demo/demo.js", import.meta.url));
  expect(fresh.length).toBeGreaterThan(1000);
  expect(committed.equals(fresh), "rebuild with: node sdk/js/demo/build.mjs, and commit the result").toBe(true);
}, 60_000);
