// Records which sources the committed build was made from: tests/web/test_bundle.py computes the
// same digest from web/ and fails when the sources changed without `npm run build`.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const TOP = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

const files = [...TOP.map((name) => join(root, name)), ...walk(join(root, "src")), ...walk(join(root, "scripts"))]
  .map((path) => relative(root, path).split("\\").join("/"))
  .sort();
const listing = files
  .map((path) => `${path}\0${createHash("sha256").update(readFileSync(join(root, path))).digest("hex")}\n`)
  .join("");
const digest = createHash("sha256").update(listing).digest("hex");
writeFileSync(join(root, "../src/parley/web/static/sources.sha256"), `${digest}\n`);
