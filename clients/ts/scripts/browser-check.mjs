#!/usr/bin/env node
// Optional check in a real browser: headless Chromium loads the built package (dist/, with
// an import map for @msgpack/msgpack) from a page on another origin than the server, and
// plays against `pylon dev`: compat binary frames on the shard port, MessagePack + delta
// on /shard, the SSE fallback with HTTP inputs (CORS), entity reads and the change feed.
//
//   npm run build && node scripts/browser-check.mjs [--chromium /usr/bin/chromium]
//
// Prints the page's results and exits non-zero when a check failed. Not part of `npm test`
// (it needs Chromium); PYLON_BIN as for the live test.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePortBlock, startServer } from "./server.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({ options: { chromium: { type: "string", default: "chromium" } } });

const page = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">{"imports":{"@msgpack/msgpack":"/node_modules/@msgpack/msgpack/dist.esm/index.mjs"}}</script>
<script type="module">
import { connectShard, PylonRealtime, entities, subscribeChanges, guestSession, createShard } from "/dist/index.js";
const q = new URLSearchParams(location.search);
const baseUrl = q.get("api"), wsPort = Number(q.get("wsPort")), admin = q.get("admin"), closed = q.get("closed");
const results = {};
const until = async (cond, ms) => { const end = Date.now() + ms; while (!cond()) { if (Date.now() > end) return false; await new Promise(r => setTimeout(r, 20)); } return true; };
const steer = (send) => { let i = 0; const t = setInterval(() => { i++; try { send({ dx: Math.cos(i / 5), dy: Math.sin(i / 5) }); } catch {} }, 50); return () => clearInterval(t); };
async function check(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = { ok: false, error: String(e && e.stack || e) }; }
}
const me = await guestSession({ baseUrl, token: admin });
const match = (await createShard({ baseUrl, token: me.token }, { game: "arena" })).id;
await check("compat_binary_shard_port", async () => {
  const c = connectShard(match, { baseUrl: "127.0.0.1", wsPort, token: me.token, subscriberId: me.user_id });
  await until(() => c.connected, 5000);
  const stop = steer((m) => c.send(m));
  const ok = await until(() => (c.ack ?? 0) >= 5, 10000);
  stop(); c.close();
  return { ok, transport: c.transport, tick: c.tick, ack: c.ack, error: c.error && String(c.error) };
});
await check("msgpack_delta_main_port", async () => {
  const rt = new PylonRealtime(match, { baseUrl, token: me.token, subscriberId: me.user_id, interpolation: { delayMs: 100 } }).connect();
  await until(() => rt.connected, 5000);
  const stop = steer((m) => rt.send(m));
  const ok = await until(() => (rt.ack ?? 0) >= 5 && rt.stats.deltas > 5, 10000);
  stop();
  const sampled = rt.interpolated();
  rt.close();
  return { ok: ok && sampled !== null, deltas: rt.stats.deltas, ack: rt.ack, latency: rt.latency, error: rt.error && String(rt.error) };
});
await check("sse_fallback_http_inputs", async () => {
  const c = connectShard(match, { baseUrl, wsUrl: "ws://127.0.0.1:" + closed + "/", token: me.token, subscriberId: me.user_id });
  await until(() => c.transport === "sse", 8000);
  const stop = steer((m) => c.send(m));
  const ok = await until(() => (c.ack ?? 0) >= 5, 10000);
  stop(); c.close();
  return { ok: ok && c.transport === "sse", transport: c.transport, ack: c.ack, error: c.error && String(c.error) };
});
await check("entities_and_feed", async () => {
  const http = { baseUrl, token: admin };
  const seen = [];
  const feed = subscribeChanges({ ...http, since: 0 }, (ch) => seen.push(ch));
  const id = await entities("Player", http).create({ displayName: "browser-" + Date.now(), createdAt: new Date().toISOString(), level: 1, xp: 0 });
  const ok = await until(() => seen.some((c) => c.row_id === id), 8000);
  const transport = feed.transport;
  feed.close();
  return { ok, transport, changes: seen.length };
});
await fetch("/result", { method: "POST", body: JSON.stringify(results) });
</script>`;

const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".html": "text/html" };

async function main() {
  const server = await startServer();
  const closed = await freePortBlock(1);
  let resolveResult;
  const result = new Promise((r) => (resolveResult = r));
  const web = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "POST" && url.pathname === "/result") {
      let body = "";
      for await (const chunk of req) body += chunk;
      res.end("ok");
      resolveResult(JSON.parse(body));
      return;
    }
    if (url.pathname === "/") {
      res.setHeader("content-type", "text/html");
      res.end(page);
      return;
    }
    const path = normalize(join(root, url.pathname));
    if (!path.startsWith(join(root, "dist")) && !path.startsWith(join(root, "node_modules", "@msgpack"))) {
      res.statusCode = 404;
      res.end();
      return;
    }
    try {
      const data = await readFile(path);
      res.setHeader("content-type", types[extname(path)] ?? "application/octet-stream");
      res.end(data);
    } catch {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise((r) => web.listen(0, "127.0.0.1", r));
  const pagePort = web.address().port;
  const query = new URLSearchParams({ api: server.url, wsPort: String(server.port + 3), admin: server.adminToken, closed: String(closed) });
  const browser = spawn(
    args.chromium,
    ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", `http://127.0.0.1:${pagePort}/?${query}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let browserLog = "";
  browser.stderr.on("data", (c) => (browserLog = (browserLog + c).slice(-5000)));
  const timeout = new Promise((r) => setTimeout(() => r(null), 90_000));
  const results = await Promise.race([result, timeout]);
  browser.kill("SIGTERM");
  web.close();
  await server.stop();
  if (!results) {
    console.error(`browser-check: no result from the page within 90 s\n${browserLog}`);
    process.exit(1);
  }
  console.log(JSON.stringify(results, null, 2));
  const failed = Object.entries(results).filter(([, r]) => !r.ok);
  console.log(`browser-check: ${Object.keys(results).length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

await main();
