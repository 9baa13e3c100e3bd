import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // test the sources, never a stale dist/
    alias: {
      "@flagsite/common": src("common/src/index.ts"),
      "@flagsite/node": src("node/src/index.ts"),
      "@flagsite/web": src("web/src/index.ts"),
      "@flagsite/react": src("react/src/index.tsx"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "packages/*/test/**/*.test.tsx", "demo/test/**/*.test.ts"],
    environment: "node",
  },
});
