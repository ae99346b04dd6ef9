// Unit tests of the pages' pure parts (node:test): the Prometheus parser and readings the
// dashboard takes, the demo's query parsing and connection options (compat mode must pass
// exactly pylon's own connectShard options), and the arena prediction step. The
// TypeScript is bundled by esbuild into a temporary module first.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let dir;
let prom;
let options;
let arena;
let queue;

/** `@pylon/client` from its sources and `@msgpack/msgpack` from this package, as build.mjs does. */
const clientSources = {
  name: "client-sources",
  setup(build) {
    build.onResolve({ filter: /^@pylon\/client$/ }, () => ({ path: resolve(webDir, "../clients/ts/src/index.ts") }));
    build.onResolve({ filter: /^@msgpack\/msgpack$/ }, async (args) => {
      if (args.pluginData === "pinned") return undefined;
      const r = await build.resolve(args.path, { resolveDir: webDir, kind: args.kind, pluginData: "pinned" });
      return { path: r.path };
    });
  },
};

async function load(entry, name) {
  const outfile = join(dir, `${name}.mjs`);
  await esbuild.build({
    absWorkingDir: webDir,
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    mainFields: ["module", "main"],
    logLevel: "silent",
    plugins: [clientSources],
  });
  return import(pathToFileURL(outfile).href);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "pylon-web-test-"));
  prom = await load("src/dashboard/prom.ts", "prom");
  options = await load("src/demo/options.ts", "options");
  arena = await load("src/demo/arena.ts", "arena");
  queue = await load("src/demo/queue.ts", "queue");
});
after(() => rmSync(dir, { recursive: true, force: true }));

const EXPOSITION = `# HELP pylon_matches Running matches by game.
# TYPE pylon_matches gauge
pylon_matches{game="arena"} 3
pylon_matches{game="tictactoe"} 1
# HELP pylon_frames_out_total Frames sent.
# TYPE pylon_frames_out_total counter
pylon_frames_out_total 1200
# TYPE pylon_tick_lateness_seconds histogram
pylon_tick_lateness_seconds_bucket{le="0.00001"} 5
pylon_tick_lateness_seconds_bucket{le="0.001"} 90
pylon_tick_lateness_seconds_bucket{le="+Inf"} 100
pylon_tick_lateness_seconds_sum 0.25
pylon_tick_lateness_seconds_count 100
# TYPE pylon_http_requests_total counter
pylon_http_requests_total{route="/api/shards/{id}",status="200"} 7
pylon_http_requests_total{route="a \\"quoted\\" \\\\ route",status="404"} 2
not a sample line
pylon_weird{unterminated="x} 1
`;

describe("Prometheus text", () => {
  test("families, labels, escapes and bad lines", () => {
    const m = prom.parseMetrics(EXPOSITION);
    assert.equal(m.get("pylon_matches").type, "gauge");
    assert.deepEqual(prom.byLabel(m, "pylon_matches", "game"), { arena: 3, tictactoe: 1 });
    assert.equal(prom.total(m, "pylon_matches"), 4);
    assert.equal(prom.total(m, "pylon_matches", { game: "arena" }), 3);
    assert.equal(prom.total(m, "pylon_frames_out_total"), 1200);
    assert.equal(prom.total(m, "pylon_missing"), null);
    const routes = prom.byLabel(m, "pylon_http_requests_total", "route");
    assert.equal(routes['a "quoted" \\ route'], 2);
    assert.equal(routes["/api/shards/{id}"], 7);
    assert.equal(m.has("pylon_weird"), false, "a line with an unterminated label value is skipped");
  });

  test("histograms: cumulative buckets to counts, windows, quantiles", () => {
    const now = prom.histogram(prom.parseMetrics(EXPOSITION), "pylon_tick_lateness_seconds");
    assert.deepEqual(now.le, [0.00001, 0.001, Infinity]);
    assert.equal(now.count, 100);
    assert.deepEqual(prom.bucketCounts(now, null), [5, 85, 10]);
    const before = { le: now.le, cumulative: [5, 50, 55], count: 55, sum: 0.1 };
    assert.deepEqual(prom.bucketCounts(now, before), [0, 40, 5]);
    assert.equal(prom.quantile(now.le, [5, 85, 10], 0.5), 0.001);
    assert.equal(prom.quantile(now.le, [5, 85, 10], 0.99), Infinity);
    assert.equal(prom.quantile(now.le, [0, 0, 0], 0.5), null);
  });

  test("rates, and a counter that restarted counts from zero", () => {
    assert.equal(prom.rate(150, 100, 2), 25);
    assert.equal(prom.rate(30, 100, 2), 15);
    assert.equal(prom.rate(null, 100, 2), null);
    assert.equal(prom.rate(10, 5, 0), null);
  });
});

describe("demo options", () => {
  const page = { protocol: "http:", hostname: "127.0.0.1", port: "4321", origin: "http://127.0.0.1:4321" };
  const seat = { matchId: "local-abc", sid: "guest_1", token: "t0ken", wsUrl: null };

  test("query parsing keeps good values and warns about the rest", () => {
    assert.deepEqual(options.parseConfig(""), { mode: "delta", wsPort: null, match: null, warning: null });
    const c = options.parseConfig("?mode=compat&wsPort=5000&match=local-xyz");
    assert.equal(c.mode, "compat");
    assert.equal(c.wsPort, 5000);
    assert.equal(c.match, "local-xyz");
    const bad = options.parseConfig("?mode=carrier-pigeon&wsPort=99999&match=../x");
    assert.equal(bad.mode, "delta");
    assert.equal(bad.wsPort, null);
    assert.equal(bad.match, null);
    assert.match(bad.warning, /unknown mode/);
  });

  test("compat mode passes pylon's own connectShard options and nothing else", () => {
    const stock = new Set(["subscriberId", "token", "baseUrl", "wsPort", "wsUrl", "sseFallback", "autoReconnect", "reconnectBackoffMs"]);
    const o = options.compatOptions(page, options.parseConfig("?mode=compat"), seat);
    assert.deepEqual(o, { subscriberId: "guest_1", token: "t0ken", baseUrl: "127.0.0.1", wsPort: 4324 });
    for (const k of Object.keys(o)) assert.ok(stock.has(k), `${k} is not a stock option`);
    assert.equal(options.compatOptions(page, options.parseConfig("?mode=compat&wsPort=9"), seat).wsPort, 9);
    const proxied = { protocol: "https:", hostname: "game.example.com", port: "", origin: "https://game.example.com" };
    assert.equal(options.compatOptions(proxied, options.parseConfig("?mode=compat"), seat).wsUrl, "wss://game.example.com/shard");
    const assigned = { ...seat, wsUrl: "ws://eu.example.com/shard" };
    assert.equal(options.compatOptions(page, options.parseConfig("?mode=compat"), assigned).wsUrl, "ws://eu.example.com/shard");
  });

  test("the other modes choose their wire format", () => {
    const delta = options.realtimeOptions(page, options.parseConfig(""), seat);
    assert.deepEqual(delta, { baseUrl: page.origin, token: "t0ken", subscriberId: "guest_1", format: "msgpack", delta: true });
    assert.equal(options.realtimeOptions(page, options.parseConfig("?mode=msgpack"), seat).delta, false);
    assert.equal(options.realtimeOptions(page, options.parseConfig("?mode=json"), seat).format, "json");
    assert.equal(options.realtimeOptions(page, options.parseConfig("?wsPort=7"), seat).wsPort, 7);
    assert.equal(options.modeHref("?match=m1&mode=json", "compat"), "?match=m1&mode=compat");
  });
});

describe("arena prediction", () => {
  const state = {
    time_left_secs: 10,
    players: [
      { id: "me", x: 500, y: 995, score: 0 },
      { id: "other", x: 1, y: 1, score: 2 },
    ],
    pickups: [],
  };

  test("one tick of movement for the local player, clamped to the field", () => {
    const step = arena.predictArena("me", 250, 20);
    const next = step(state, { dx: 1, dy: 1 });
    assert.equal(next.players[0].x, 512.5);
    assert.equal(next.players[0].y, 1000);
    assert.equal(next.players[1], state.players[1], "other players are shared, not copied");
    assert.equal(state.players[0].x, 500, "the input state is not modified");
    assert.equal(step(state, { dx: 7, dy: Number.NaN }).players[0].x, 512.5, "axes are clamped like the server's");
  });

  test("diagonals have length 1", () => {
    const d = arena.direction(false, true, true, false);
    assert.ok(Math.abs(Math.hypot(d.dx, d.dy) - 1) < 1e-9);
    assert.deepEqual(arena.direction(true, true, false, false), { dx: 0, dy: 0 });
  });
});

describe("demo seating", () => {
  const session = { token: "t0ken", user_id: "guest_1", expires_at: 0 };
  const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  /** A fake server: `routes` maps "METHOD /path" to a response maker; every call is recorded. */
  function fakeFetch(routes) {
    const calls = [];
    const f = async (url, init = {}) => {
      const key = `${init.method ?? "GET"} ${new URL(url).pathname}`;
      calls.push({ key, auth: init.headers?.authorization, body: init.body });
      const route = routes[key];
      return route ? route() : json(404, { error: { code: "NOT_FOUND", message: "no such route" } });
    };
    return { f, calls };
  }

  test("the matchmaker: a ticket, the pushed assignment, its sid and socket URL", async () => {
    const { f, calls } = fakeFetch({
      "GET /api/regions": () => json(200, [{ region: "local", url: "http://h:1", ws_url: "ws://h:1/shard" }]),
      "GET /health": () => json(200, { status: "ok" }),
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "tk1", status: "queued" }),
      "GET /api/matchmaker/tickets/tk1/events": () =>
        new Response('event: matched\ndata: {"status":"matched","shard_id":"local-m1","region":"local","ws_url":"ws://h:1/shard","sid":"guest_1"}\n\n', {
          headers: { "content-type": "text/event-stream" },
        }),
    });
    const queued = [];
    const seated = await queue.findSeat("http://h:1", session, new AbortController().signal, (t) => queued.push(t), f);
    assert.equal(seated.path, "matchmaker");
    assert.deepEqual(seated.seat, { matchId: "local-m1", sid: "guest_1", token: "t0ken", wsUrl: "ws://h:1/shard" });
    assert.deepEqual(queued, ["tk1"]);
    assert.equal(seated.region, "local");
    const ticket = calls.find((c) => c.key === "POST /api/matchmaker/tickets");
    const body = JSON.parse(ticket.body);
    assert.equal(body.game, "arena");
    assert.deepEqual(Object.keys(body.latencies), ["local"], "the measured latencies go with the ticket");
    assert.equal(ticket.auth, "Bearer t0ken");
    assert.ok(!calls.some((c) => c.key.includes("join-or-create")), "no fallback when the matchmaker answers");
  });

  test("no matchmaker route (404): join-or-create", async () => {
    const { f, calls } = fakeFetch({
      "POST /api/shards/join-or-create": () => json(201, { id: "local-j1", created: true }),
    });
    const seated = await queue.findSeat("http://h:1", session, new AbortController().signal, () => {}, f);
    assert.equal(seated.path, "join-or-create");
    assert.deepEqual(seated.seat, { matchId: "local-j1", sid: "guest_1", token: "t0ken", wsUrl: null });
    // No regions route either here: the ticket goes without latencies.
    assert.deepEqual(calls.map((c) => c.key), ["GET /api/regions", "POST /api/matchmaker/tickets", "POST /api/shards/join-or-create"]);
    assert.equal(JSON.parse(calls[1].body).latencies, undefined);
    assert.equal(seated.region, null);
  });

  test("any other refusal of the matchmaker is the answer, not a reason to fall back", async () => {
    const { f, calls } = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(409, { error: { code: "CONFLICT", message: "a ticket is open" } }),
    });
    await assert.rejects(queue.findSeat("http://h:1", session, new AbortController().signal, () => {}, f), { code: "CONFLICT" });
    assert.ok(!calls.some((c) => c.key.includes("join-or-create")));
  });
});
