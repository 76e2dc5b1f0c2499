import { defineConfig } from "vite";

// The build goes into the Python package, which serves it; it is committed, so a fresh clone
// needs no Node.js (tests/web/test_bundle.py checks it matches these sources).
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/parley/web/static",
    emptyOutDir: true,
    assetsDir: "assets",
    // No inline data: scripts or styles: the CSP allows only files from the server itself.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
});
