#!/usr/bin/env node
// Browser end-to-end test of the pages the server serves (/, /demo, /dashboard), in Debian's
// Chromium driven by playwright-core, against a release `pylon dev` started here on free
// ports (clients/ts/scripts/server.mjs).
//
//   npm run e2e [-- --screenshots DIR] [-- --chromium /usr/bin/chromium]
//
// Scenarios, in order (later ones use the match of the first):
//   http        the pages' and assets' headers: types, caching, ETag/304, CSP, 404s
//   start       GET / (dev mode) links the demo and the dashboard
//   dashboard sign-in   the dashboard refuses a wrong token and takes the admin token
//               (opened this early so that its charts cover the whole run)
//   queue       two pages queue (the matchmaker when the server has it, probed first and
//               logged; six filler tickets once both pages are queued make arena's 8;
//               else join-or-create), land in one match; one moves, the other sees it
//               move; MessagePack + delta frames on /shard; docs/demo.png
//   sse         a page whose shard socket port is closed falls back to SSE + HTTP inputs
//               and still plays: another page sees it move
//   compat      the demo with ?mode=compat plays with pylon's own connectShard options:
//               the stock socket URL on the shard port, JSON inputs, binary JSON frames;
//               it sees others move and they see it move
//   dashboard   the running match is listed with its subscribers, a change feed opened
//               by a page is counted, the charts draw, the token is in sessionStorage
//               only; docs/dashboard.png
// Any console error or uncaught exception on any page fails the run, except the ones a
// scenario provokes on purpose (each allowed one is named and logged).
//
// Prints one line per scenario and a closing `e2e: N passed, N failed`; exits non-zero on
// any failure. PYLON_BIN names the server binary (default ../target/release/pylon).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { freePortBlock, startServer } from "../../clients/ts/scripts/server.mjs";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    screenshots: { type: "string", default: resolve(webDir, "../docs") },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const bin = resolve(webDir, process.env.PYLON_BIN ?? "../target/release/pylon");

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

/** Polls `probe` until `ok(value)` holds; throws with the last value after `ms`. */
async function until(what, probe, ok, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const consoleErrors = [];
const allowedErrors = [];

/**
 * A new page whose console errors and uncaught exceptions are recorded; `allow` lists the
 * errors this page is expected to log, as `{why, test(text, url)}`.
 */
async function openPage(context, label, allow = []) {
  const page = await context.newPage();
  // A direction for `move`: toward the middle of the field (so that players stay in view).
  await page.addInitScript(() => {
    window.towardMiddle = (s) => {
      const p = s?.predictedMe;
      if (!p) return [1, 0];
      const dx = 500 - p.x;
      const dy = 500 - p.y;
      const n = Math.hypot(dx, dy) || 1;
      return [dx / n, dy / n];
    };
  });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    const url = msg.location()?.url ?? "";
    const rule = allow.find((a) => a.test(text, url));
    if (rule) allowedErrors.push(`${label}: ${rule.why}: ${text}`);
    else consoleErrors.push(`${label}: console error: ${text}${url ? ` (${url})` : ""}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${label}: uncaught: ${e.message}`));
  return page;
}

const demoState = (page) => page.evaluate(() => window.__pylonDemo?.state() ?? null);
const playerIn = (state, id) => state?.players?.find((p) => p.id === id) ?? null;

/** Makes `mover` hold a direction until `watcher` sees it travel `distance` units; returns how far. */
async function moveAndWatch(mover, watcher, moverId, distance = 100) {
  const seen0 = await until("the watcher to see the mover", () => demoState(watcher), (s) => playerIn(s, moverId) !== null, 10_000);
  const start = playerIn(seen0, moverId);
  const dx = start.x < 500 ? 1 : -1;
  const dy = start.y < 500 ? 1 : -1;
  await mover.evaluate(([x, y]) => window.__pylonDemo.move(x, y), [dx, dy * 0.5]);
  try {
    const seen = await until(
      `the watcher to see ${moverId} move ${distance} units`,
      () => demoState(watcher),
      (s) => {
        const p = playerIn(s, moverId);
        return p !== null && Math.hypot(p.x - start.x, p.y - start.y) >= distance;
      },
      8_000,
    );
    const p = playerIn(seen, moverId);
    return Math.round(Math.hypot(p.x - start.x, p.y - start.y));
  } finally {
    await mover.evaluate(() => window.__pylonDemo.release());
  }
}

async function checkHttp(server) {
  const get = (path, init) => fetch(`${server.url}${path}`, init);
  const start = await get("/");
  assert(start.status === 200, `GET / answered ${start.status} in dev mode`);
  assert(start.headers.get("content-type") === "text/html; charset=utf-8", `GET / content-type ${start.headers.get("content-type")}`);
  const demo = await get("/demo");
  const html = await demo.text();
  assert(demo.status === 200 && html.includes('<canvas id="arena"'), "GET /demo is not the demo page");
  assert(demo.headers.get("cache-control") === "no-cache", `/demo cache-control ${demo.headers.get("cache-control")}`);
  assert((demo.headers.get("content-security-policy") ?? "").includes("script-src 'self'"), "/demo has no CSP");
  assert(demo.headers.get("x-content-type-options") === "nosniff", "/demo lacks nosniff");
  const etag = demo.headers.get("etag");
  const again = await get("/demo", { headers: { "if-none-match": etag } });
  assert(again.status === 304, `/demo with its ETag answered ${again.status}, not 304`);
  const script = /src="(\/static\/demo\.js\?v=[0-9a-f]{16})"/.exec(html)?.[1];
  assert(script, "the demo page names no versioned demo.js");
  const js = await get(script);
  assert(js.status === 200 && js.headers.get("content-type") === "text/javascript; charset=utf-8", `${script}: ${js.status} ${js.headers.get("content-type")}`);
  assert(js.headers.get("cache-control") === "public, max-age=31536000, immutable", `${script} cache-control ${js.headers.get("cache-control")}`);
  const unversioned = await get("/static/demo.js");
  assert(unversioned.headers.get("cache-control") === "no-cache", "an unversioned asset is cached as immutable");
  const dash = await get("/dashboard");
  assert(dash.status === 200 && (dash.headers.get("content-security-policy") ?? "").includes("connect-src 'self';"), "GET /dashboard lacks its CSP");
  const missing = await get("/static/nope.js");
  const body = await missing.json().catch(() => null);
  assert(missing.status === 404 && body?.error?.code === "NOT_FOUND", `/static/nope.js answered ${missing.status}`);
  const head = await get("/dashboard", { method: "HEAD" });
  assert(head.status === 200, `HEAD /dashboard answered ${head.status}`);
  return "pages, assets, ETag/304, CSP, 404";
}

/** Whether the server has the matchmaker's ticket route: a real ticket, cancelled at once. */
async function probeMatchmaker(server) {
  const guest = await (await fetch(`${server.url}/api/auth/guest`, { method: "POST", headers: { authorization: `Bearer ${server.adminToken}` } })).json();
  const res = await fetch(`${server.url}/api/matchmaker/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${guest.token}`, "content-type": "application/json" },
    body: JSON.stringify({ game: "arena" }),
  });
  const body = await res.json().catch(() => null);
  if (res.status === 404 && body?.error?.code === "NOT_FOUND") return { present: false };
  if (body?.ticket_id) {
    await fetch(`${server.url}/api/matchmaker/tickets/${encodeURIComponent(body.ticket_id)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${guest.token}` },
    }).catch(() => undefined);
  }
  return { present: true, status: res.status };
}

/** Extra tickets from headless guests, so that a match of the game's size can form. */
class Fillers {
  constructor(server) {
    this.server = server;
    this.tickets = [];
  }
  async add() {
    const guest = await (await fetch(`${this.server.url}/api/auth/guest`, { method: "POST", headers: { authorization: `Bearer ${this.server.adminToken}` } })).json();
    const res = await fetch(`${this.server.url}/api/matchmaker/tickets`, {
      method: "POST",
      headers: { authorization: `Bearer ${guest.token}`, "content-type": "application/json" },
      body: JSON.stringify({ game: "arena" }),
    });
    const body = await res.json().catch(() => null);
    if (body?.ticket_id) this.tickets.push({ id: body.ticket_id, token: guest.token });
  }
  async cancelAll() {
    for (const t of this.tickets) {
      await fetch(`${this.server.url}/api/matchmaker/tickets/${encodeURIComponent(t.id)}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${t.token}` },
      }).catch(() => undefined);
    }
  }
}

async function main() {
  const server = await startServer({ bin });
  log(`pylon dev at ${server.url} (shard sockets on ${server.port + 3})`);
  const profile = mkdtempSync(join(tmpdir(), "pylon-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    chromiumSandbox: false,
    viewport: { width: 1280, height: 800 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const results = [];
  const ctx = {};
  async function scenario(name, fn) {
    const t0 = Date.now();
    try {
      const detail = await fn();
      results.push({ name, ok: true });
      log(`ok    ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)${detail ? `: ${detail}` : ""}`);
    } catch (e) {
      results.push({ name, ok: false });
      log(`FAIL  ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const needs = (...keys) => {
    for (const k of keys) if (ctx[k] === undefined) throw new Error(`skipped: an earlier scenario did not provide ${k}`);
  };
  const fillers = new Fillers(server);

  try {
    await scenario("http", () => checkHttp(server));

    await scenario("start", async () => {
      const page = await openPage(context, "start");
      await page.goto(`${server.url}/`);
      const links = await page.$$eval("a", (as) => as.map((a) => a.getAttribute("href")));
      assert(links.includes("/demo") && links.includes("/dashboard"), `the start page links ${JSON.stringify(links)}`);
      const docs = await page.textContent(".docs");
      assert(docs?.includes("docs/PROTOCOL.md"), "the start page does not list the docs");
      await page.close();
      return `${links.length} links`;
    });

    // The dashboard is opened now, so that its charts hold the whole run when it is checked.
    await scenario("dashboard sign-in", async () => {
      const e = await openPage(context, "dashboard", [
        {
          why: "allowed: the 401 answering the deliberately wrong token",
          test: (text, url) => text.includes("401") && /\/api\/auth\/me$/.test(url),
        },
      ]);
      await e.goto(`${server.url}/dashboard`);
      await e.fill("#token", "not-the-admin-token");
      await e.click("#token-form button[type=submit]");
      await until("the wrong token to be refused", () => e.textContent("#auth-status"), (t) => /refused|not the admin/.test(t ?? ""), 5_000);
      await e.fill("#token", server.adminToken);
      await e.click("#token-form button[type=submit]");
      const s = await until("the admin sign-in", () => e.evaluate(() => window.__pylonDashboard?.state() ?? null), (x) => x?.admin === true, 5_000);
      ctx.dashboard = e;
      return `a wrong token refused, the admin token accepted (${s.polls} polls so far)`;
    });

    const mm = await probeMatchmaker(server);
    log(
      mm.present
        ? `matchmaker route present (probe answered ${mm.status}): the pages queue through POST /api/matchmaker/tickets`
        : "matchmaker route absent (probe answered 404): the pages fall back to POST /api/shards/join-or-create",
    );
    const expectedPath = mm.present ? "matchmaker" : "join-or-create";
    const mmAllow = mm.present
      ? []
      : [
          {
            why: "allowed: the matchmaker probe's 404 before the join-or-create fallback",
            test: (text, url) => text.includes("404") && /\/api\/matchmaker\/tickets$/.test(url),
          },
        ];

    await scenario("queue", async () => {
      const a = await openPage(context, "page A", mmAllow);
      const b = await openPage(context, "page B", mmAllow);
      const sockets = [];
      a.on("websocket", (ws) => sockets.push(ws.url()));
      await a.goto(`${server.url}/demo`);
      await until("page A to queue or play", () => demoState(a), (s) => s && (s.phase === "playing" || s.ticket !== null), 15_000);
      await b.goto(`${server.url}/demo`);
      // Fillers only once both pages hold a ticket: the oldest eight tickets form the match,
      // so both pages and six fillers make one (a filler filed earlier could complete a
      // match of page A alone before page B queued).
      const bothPlaying = async () => {
        const [sa, sb] = await Promise.all([demoState(a), demoState(b)]);
        const bothQueued = [sa, sb].every((s) => s?.phase === "queueing" && s.ticket);
        if (mm.present && bothQueued && fillers.tickets.length < 6) await fillers.add();
        return { a: sa, b: sb };
      };
      const { a: sa, b: sb } = await until(
        "both pages to play",
        bothPlaying,
        (s) => s.a?.phase === "playing" && s.b?.phase === "playing",
        mm.present ? 40_000 : 15_000,
      );
      if (fillers.tickets.length) log(`queue: ${fillers.tickets.length} filler tickets filed so that a match could form`);
      assert(sa.matchId === sb.matchId, `the pages landed in different matches: ${sa.matchId} and ${sb.matchId}`);
      assert(sa.path === expectedPath && sb.path === expectedPath, `seated by ${sa.path} and ${sb.path}, expected ${expectedPath}`);
      assert(sa.transport === "websocket" && sb.transport === "websocket", `transports ${sa.transport}, ${sb.transport}`);
      // pickRegion measured this server's region through GET /api/regions and its /health.
      assert(sa.region === "local" && typeof sa.latencies.local === "number", `page A's region ${sa.region}, latencies ${JSON.stringify(sa.latencies)}`);
      ctx.match = sa.matchId;
      ctx.a = a;
      ctx.b = b;
      ctx.aId = sa.me;
      const moved = await moveAndWatch(a, b, sa.me);
      const after = await until("page A's acks and latency", () => demoState(a), (s) => s.ack > 0 && s.latency?.samples > 0, 5_000);
      const url = sockets.find((u) => u.includes(`shard=${encodeURIComponent(ctx.match)}`)) ?? sockets[0] ?? "";
      // /shard on the page's origin, or the socket URL the matchmaker named.
      // The demo's delta mode is @pylon/client's default: patch format 2.
      assert(url.includes("format=msgpack") && url.includes("delta=2"), `page A's socket URL is ${url}`);
      if (sa.path !== "matchmaker") assert(url.startsWith(`ws://127.0.0.1:${server.port}/shard?`), `page A's socket URL is ${url}`);
      assert(after.stats.deltas > 0, `page A applied no delta frames: ${JSON.stringify(after.stats)}`);
      // Both head for the middle for the picture; the HUD must show live figures.
      for (const p of [a, b]) await p.evaluate(() => window.__pylonDemo.move(...towardMiddle(window.__pylonDemo.state())));
      await a.waitForTimeout(700);
      const hudTick = Number(await a.textContent("#hud-tick"));
      assert(hudTick > 0, "the HUD shows no tick");
      assert((await a.textContent("#hud-mode"))?.includes("delta"), "the HUD does not name the wire mode");
      mkdirSync(args.screenshots, { recursive: true });
      await a.screenshot({ path: join(args.screenshots, "demo.png") });
      await a.evaluate(() => window.__pylonDemo.release());
      await b.evaluate(() => window.__pylonDemo.release());
      return `match ${ctx.match} via ${sa.path} in region ${sa.region}; B saw A move ${moved} units; input->ack ${after.latency.avgMs?.toFixed(1)} ms, ${after.stats.deltas} deltas`;
    });

    await scenario("sse", async () => {
      needs("match", "a");
      const closed = await freePortBlock(1);
      const c = await openPage(context, "page C", [
        {
          why: "allowed: the socket to the closed port fails (the fallback under test)",
          test: (text) => text.includes(`ws://127.0.0.1:${closed}/`),
        },
      ]);
      let inputPosts = 0;
      c.on("request", (r) => {
        if (r.method() === "POST" && /\/api\/shards\/[^/]+\/input$/.test(r.url())) inputPosts += 1;
      });
      await c.goto(`${server.url}/demo?wsPort=${closed}&match=${encodeURIComponent(ctx.match)}`);
      const sc = await until("page C to play over SSE", () => demoState(c), (s) => s?.phase === "playing" && s.transport === "sse", 15_000);
      const moved = await moveAndWatch(c, ctx.a, sc.me);
      const after = await until("page C's inputs to be acknowledged", () => demoState(c), (s) => s.ack > 0, 5_000);
      assert(inputPosts > 0, "page C sent no input over HTTP");
      ctx.c = c;
      return `transport ${after.transport}, ${inputPosts} HTTP inputs, ack ${after.ack}; A saw C move ${moved} units`;
    });

    await scenario("compat", async () => {
      needs("match", "a", "aId");
      const d = await openPage(context, "page D");
      const sent = [];
      const received = [];
      let url = "";
      d.on("websocket", (ws) => {
        url = ws.url();
        ws.on("framesent", (f) => sent.push(f.payload));
        ws.on("framereceived", (f) => received.push(f.payload));
      });
      await d.goto(`${server.url}/demo?mode=compat&match=${encodeURIComponent(ctx.match)}`);
      const sd = await until("page D to play in compat mode", () => demoState(d), (s) => s?.phase === "playing", 15_000);
      const moved = await moveAndWatch(d, ctx.a, sd.me);
      const back = await moveAndWatch(ctx.a, d, ctx.aId);
      const after = await until("page D's acks", () => demoState(d), (s) => s.ack > 0 && s.latency?.samples > 0, 5_000);
      const expected = `ws://127.0.0.1:${server.port + 3}/?shard=${encodeURIComponent(ctx.match)}&sid=${encodeURIComponent(sd.me)}`;
      assert(url === expected, `page D's socket URL is ${url}, expected the stock ${expected}`);
      assert(sent.length > 0 && sent.every((p) => typeof p === "string"), "page D sent a non-text frame");
      for (const p of sent) {
        const v = JSON.parse(p);
        assert(typeof v.client_seq === "number" && typeof v.input?.dx === "number", `page D sent ${p}`);
      }
      assert(received.length > 0 && received.every((p) => typeof p !== "string"), "page D received a text frame");
      const frame = Buffer.from(received.at(-1));
      const tick = Number(frame.readBigUInt64BE(0));
      const snapshot = JSON.parse(frame.subarray(8).toString("utf8"));
      assert(tick > 0 && Array.isArray(snapshot.players) && "ack" in snapshot, "page D's frames are not tick + snapshot JSON");
      ctx.d = d;
      return `stock URL, ${sent.length} JSON inputs, ${received.length} binary JSON frames; A saw D move ${moved}, D saw A move ${back}; ack ${after.ack}`;
    });

    await scenario("dashboard", async () => {
      needs("match", "dashboard");
      const e = ctx.dashboard;
      // Players keep moving while the dashboard is read, so its input and frame rates show it.
      for (const p of [ctx.a, ctx.b, ctx.c, ctx.d].filter(Boolean)) {
        await p.evaluate(() => window.__pylonDemo.move(...towardMiddle(window.__pylonDemo.state())));
      }
      // A change feed, opened by page A as its guest: the dashboard must count it.
      await ctx.a.evaluate(() => {
        const guest = JSON.parse(sessionStorage.getItem("pylon.demo.guest"));
        const token = encodeURIComponent(guest.token);
        window.__feed = new WebSocket(`ws://${location.host}/ws`, [`bearer.${token}`]);
      });
      const minSubscribers = 2 + (ctx.c ? 1 : 0) + (ctx.d ? 1 : 0);
      const s = await until(
        `the dashboard to list match ${ctx.match} with ${minSubscribers} subscribers and draw its charts`,
        () => e.evaluate(() => window.__pylonDashboard?.state() ?? null),
        (x) =>
          x?.admin &&
          x.matches.some((m) => m.id === ctx.match && m.subscribers >= minSubscribers) &&
          x.chartsDrawn >= 6 &&
          x.polls >= 3 &&
          (x.games.arena ?? 0) >= 1 &&
          x.syncSockets >= 1 &&
          x.latenessTicks > 0,
        20_000,
      );
      const row = await e.textContent(`tr[data-match-id="${ctx.match}"]`);
      assert(row?.includes("arena"), `the match row reads ${row}`);
      const stored = await e.evaluate(() => sessionStorage.getItem("pylon.dashboard.adminToken"));
      assert(stored === server.adminToken, "the admin token is not kept in sessionStorage");
      const stale = await e.evaluate(() => localStorage.length);
      assert(stale === 0, "the dashboard wrote to localStorage");
      await e.waitForTimeout(1500);
      await e.screenshot({ path: join(args.screenshots, "dashboard.png"), fullPage: true });
      for (const p of [ctx.a, ctx.b, ctx.c, ctx.d].filter(Boolean)) await p.evaluate(() => window.__pylonDemo.release());
      const m = s.matches.find((x) => x.id === ctx.match);
      await ctx.a.evaluate(() => window.__feed.close());
      return `match listed with ${m.subscribers} subscribers, ${s.syncSockets} change-feed socket, ${s.chartsDrawn} charts, ${s.polls} polls, matchmaker panel ${s.matchmakerPanel ? "shown" : "hidden"}`;
    });

    await scenario("console", async () => {
      for (const a of allowedErrors) log(`allowed console error: ${a}`);
      assert(consoleErrors.length === 0, `${consoleErrors.length} console errors:\n  ${consoleErrors.join("\n  ")}`);
      return `no unexpected console errors (${allowedErrors.length} expected ones)`;
    });
  } finally {
    await fillers.cancelAll();
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
    await server.stop();
  }
  const failed = results.filter((r) => !r.ok).length;
  if (failed) {
    console.log("server log tail:");
    console.log(server.logs().slice(-4000));
  }
  console.log(`e2e: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
