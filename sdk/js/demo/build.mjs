// Bundles the /demo/ page into flagsite/static/demo/demo.js (or the folder given as the first
// argument, which the byte-for-byte check uses). Deterministic: same sources, same bytes.
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] ?? join(here, "..", "..", "..", "flagsite", "static", "demo"));
mkdirSync(outdir, { recursive: true });
const pkg = (name) => join(here, "..", "packages", name, "src", "index.ts");
await build({
  entryPoints: [join(here, "src", "main.tsx")],
  outfile: join(outdir, "demo.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022"],
  platform: "browser",
  jsx: "automatic",
  legalComments: "none",
  charset: "utf8",
  define: { "process.env.NODE_ENV": '"production"' },
  // the sources, not dist/: the bundle never depends on a stale build
  alias: { "@flagsite/web": pkg("web"), "@flagsite/common": pkg("common"), "@flagsite/react": join(here, "..", "packages", "react", "src", "index.tsx") },
  logLevel: "warning",
});
