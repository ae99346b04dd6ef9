#!/usr/bin/env node
// Builds pylon's own pages into api/web/, the directory the server embeds at compile time
// (api/src/web.rs, include_bytes!). The output is committed, so building the server needs
// no Node; this script is the only way to change it.
//
//   node build.mjs            write api/web/
//   node build.mjs --check    build in memory and compare with api/web/ byte for byte
//                             (CI: exits 1 naming every stale, missing or extra file)
//
// - TypeScript (src/demo, src/dashboard) is bundled by esbuild, one ES module per page,
//   minified, with @pylon/client taken from its sources (clients/ts/src) and
//   @msgpack/msgpack and uPlot from this package's exact pinned versions.
// - CSS imported by a page's script becomes that page's stylesheet; src/base.css is
//   shared by every page.
// - The HTML pages (src/pages) name their scripts and styles as /static/<file>?v=<hash>,
//   the hash being FNV-1a 64 of the file's bytes (the server computes the same hash and
//   serves a request carrying it as immutable).
// - Third-party licenses go to THIRD-PARTY-NOTICES.txt, served beside the scripts.
import { readFileSync, readdirSync, rmSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const webDir = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(webDir, "../api/web");
const clientEntry = resolve(webDir, "../clients/ts/src/index.ts");
const check = process.argv.includes("--check");

/** FNV-1a 64 of `bytes`, 16 hex digits (api/src/web.rs computes the same). */
export function fnv1a64(bytes) {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

/** Bare imports resolved from this package, whoever imports them. */
const pinned = {
  name: "pinned-packages",
  setup(build) {
    build.onResolve({ filter: /^@pylon\/client$/ }, () => ({ path: clientEntry }));
    build.onResolve({ filter: /^(@msgpack\/msgpack|uplot)(\/.*)?$/ }, async (args) => {
      if (args.pluginData === "pinned") return undefined;
      const r = await build.resolve(args.path, { resolveDir: webDir, kind: args.kind, pluginData: "pinned" });
      return r.errors.length ? { errors: r.errors } : { path: r.path };
    });
  },
};

const banner =
  "/*! pylon web pages (Apache-2.0). Bundled third-party code and its licenses: /static/THIRD-PARTY-NOTICES.txt */";

async function bundle() {
  const result = await esbuild.build({
    absWorkingDir: webDir,
    entryPoints: {
      demo: "src/demo/main.ts",
      dashboard: "src/dashboard/main.ts",
      base: "src/base.css",
      index: "src/index.css",
    },
    outdir: "out",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome111", "firefox115", "safari16"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    banner: { js: banner, css: banner },
    write: false,
    logLevel: "silent",
    plugins: [pinned],
  });
  for (const w of result.warnings) console.warn(`build: warning: ${w.text}`);
  const files = new Map();
  for (const f of result.outputFiles) {
    const name = f.path.slice(resolve(webDir, "out").length + 1);
    files.set(name, Buffer.from(f.contents));
  }
  return files;
}

function notices() {
  const license = (pkg) => readFileSync(join(webDir, "node_modules", pkg, "LICENSE"), "utf8").trim();
  const version = (pkg) => JSON.parse(readFileSync(join(webDir, "node_modules", pkg, "package.json"), "utf8")).version;
  const parts = [
    "Third-party code bundled in pylon's web pages (demo.js, dashboard.js, dashboard.css).",
    "",
  ];
  for (const pkg of ["uplot", "@msgpack/msgpack"]) {
    parts.push("=".repeat(78), `${pkg} ${version(pkg)}`, "=".repeat(78), "", license(pkg), "");
  }
  return Buffer.from(parts.join("\n"), "utf8");
}

function pages(assets) {
  const out = new Map();
  const dir = join(webDir, "src/pages");
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".html")).sort()) {
    const text = readFileSync(join(dir, name), "utf8").replace(/\{\{static:([A-Za-z0-9._-]+)\}\}/g, (_, file) => {
      const bytes = assets.get(file);
      if (!bytes) throw new Error(`${name} names /static/${file}, which the build does not produce`);
      return `/static/${file}?v=${fnv1a64(bytes)}`;
    });
    out.set(name, Buffer.from(text, "utf8"));
  }
  return out;
}

async function build() {
  const assets = await bundle();
  assets.set("THIRD-PARTY-NOTICES.txt", notices());
  const all = new Map([...assets, ...pages(assets)]);
  return new Map([...all.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

const files = await build();
if (check) {
  const problems = [];
  const present = existsSync(outDir) ? readdirSync(outDir).sort() : [];
  for (const [name, bytes] of files) {
    const path = join(outDir, name);
    if (!existsSync(path)) problems.push(`missing: api/web/${name}`);
    else if (!readFileSync(path).equals(bytes)) problems.push(`stale: api/web/${name}`);
  }
  for (const name of present) if (!files.has(name)) problems.push(`extra: api/web/${name}`);
  if (problems.length) {
    console.error(problems.join("\n"));
    console.error("api/web/ is not the build of web/: run `npm ci && npm run build` in web/ and commit api/web/");
    process.exit(1);
  }
  console.log(`build check: api/web/ is current (${files.size} files)`);
} else {
  mkdirSync(outDir, { recursive: true });
  for (const name of readdirSync(outDir)) if (!files.has(name)) rmSync(join(outDir, name));
  for (const [name, bytes] of files) writeFileSync(join(outDir, name), bytes);
  for (const [name, bytes] of files) console.log(`api/web/${name.padEnd(26)} ${String(bytes.length).padStart(7)} bytes`);
}
