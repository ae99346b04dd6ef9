#!/usr/bin/env node
// Load smoke of @pylon/client: N clients of this package (in Node, over the `ws` package)
// play arena against a release server for S seconds, each sending R inputs per second.
// Exits non-zero on any error, any disconnect, or a client that got no snapshot or ack.
//
//   npm run build && node scripts/load.mjs [--url http://127.0.0.1:4321] [--admin-token T]
//       [--clients 200] [--secs 20] [--rate 20] [--per-match 10] [--mode compat|json|msgpack|delta|delta1]
//       [--bin path/to/pylon]
//
// `delta` asks for patch format 2 (`delta=2`, the client's default), `delta1` for format 1.
// Without --url it starts `pylon dev` itself (PYLON_BIN, default ../../target/release/pylon)
// on free loopback ports. Guest sessions are made with the admin token (--admin-token or
// PYLON_ADMIN_TOKEN; known when the script starts the server) as `Authorization: Bearer`,
// which a server limiting guest sessions per address exempts.
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { PylonRealtime, connectShard, createShard, guestSession } from "../dist/index.js";
import { startServer } from "./server.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    "admin-token": { type: "string" },
    clients: { type: "string", default: "200" },
    secs: { type: "string", default: "20" },
    rate: { type: "string", default: "20" },
    "per-match": { type: "string", default: "10" },
    mode: { type: "string", default: "delta" },
    bin: { type: "string" },
  },
});

const clients = Number(args.clients);
const secs = Number(args.secs);
const rate = Number(args.rate);
const perMatch = Number(args["per-match"]);
const mode = args.mode;
if (!["compat", "json", "msgpack", "delta", "delta1"].includes(mode)) {
  console.error(`--mode must be compat, json, msgpack, delta or delta1 (got ${mode})`);
  process.exit(2);
}
for (const [name, v] of Object.entries({ clients, secs, rate, perMatch })) {
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`--${name} must be a positive number`);
    process.exit(2);
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  let server = null;
  let baseUrl = args.url;
  let adminToken = args["admin-token"] ?? process.env.PYLON_ADMIN_TOKEN;
  if (!baseUrl) {
    server = await startServer(args.bin ? { bin: args.bin } : {});
    baseUrl = server.url;
    adminToken = server.adminToken;
  }
  const problems = [];
  try {
    const started = performance.now();
    // Sessions: one guest per client (the admin token as bearer, when known).
    const sessions = await pool(Array.from({ length: clients }), 16, () =>
      guestSession(adminToken ? { baseUrl, token: adminToken } : { baseUrl }),
    );
    // Matches: perMatch seats each, long enough and with a score limit out of reach, so
    // that none ends during the run.
    const matchCount = Math.ceil(clients / perMatch);
    const creator = adminToken ?? sessions[0].token;
    const matches = await pool(Array.from({ length: matchCount }), 8, () =>
      createShard(
        { baseUrl, token: creator },
        { game: "arena", params: { max_players: perMatch, time_limit_secs: secs + 120, score_limit: 1_000_000 } },
      ),
    );

    const stats = Array.from({ length: clients }, () => ({
      frames: 0,
      lastAck: 0,
      sent: 0,
      errors: [],
      disconnects: [],
      rtts: [],
      sentAt: new Map(),
    }));
    let running = true;
    const conns = sessions.map((s, i) => {
      const st = stats[i];
      const shardId = matches[i % matchCount].id;
      const common = { baseUrl, token: s.token, subscriberId: s.user_id, WebSocket, autoReconnect: false };
      const onError = (e) => st.errors.push(e.message);
      const onClose = (info) => {
        if (running) st.disconnects.push(`${info.code} ${info.reason}`);
      };
      if (mode === "compat") {
        const c = connectShard(shardId, common);
        c.onSnapshot((snap) => {
          st.frames += 1;
          const ack = snap && typeof snap.ack === "number" ? snap.ack : null;
          if (ack !== null && ack > st.lastAck) {
            const at = st.sentAt.get(ack);
            if (at !== undefined) st.rtts.push(performance.now() - at);
            for (const seq of st.sentAt.keys()) if (seq <= ack) st.sentAt.delete(seq);
            st.lastAck = ack;
          }
        });
        c.onError(onError);
        c.onClose(onClose);
        return {
          connected: () => c.connected,
          send: (m) => {
            const seq = c.send(m);
            st.sentAt.set(seq, performance.now());
            return seq;
          },
          close: () => c.close(),
        };
      }
      const rt = new PylonRealtime(shardId, {
        ...common,
        format: mode === "json" ? "json" : "msgpack",
        delta: mode === "delta" ? 2 : mode === "delta1" ? 1 : false,
      });
      rt.on("snapshot", () => {
        st.frames += 1;
      });
      rt.on("ack", (seq, rtt) => {
        st.lastAck = seq;
        if (rtt !== null) st.rtts.push(rtt);
      });
      rt.on("error", onError);
      rt.on("close", onClose);
      rt.connect();
      return { connected: () => rt.connected, send: (m) => rt.send(m), close: () => rt.close() };
    });

    // Wait (bounded) until every client is connected.
    const deadline = Date.now() + 20_000;
    while (!conns.every((c) => c.connected())) {
      if (Date.now() > deadline || stats.some((s) => s.errors.length || s.disconnects.length)) break;
      await sleep(20);
    }
    const connected = conns.filter((c) => c.connected()).length;
    if (connected < clients) problems.push(`${clients - connected} clients never connected`);

    // Play: each client steers at `rate` inputs per second from a random phase. One ticker
    // sends whatever is due, so a late timer (a busy event loop) does not lower the rate.
    const period = 1000 / rate;
    const phases = conns.map(() => Math.random() * period);
    const framesBefore = stats.reduce((n, s) => n + s.frames, 0);
    const playStart = performance.now();
    const ticker = setInterval(() => {
      const elapsed = performance.now() - playStart;
      if (elapsed >= secs * 1000) return;
      conns.forEach((c, i) => {
        const st = stats[i];
        const due = Math.max(0, Math.floor((elapsed - phases[i]) / period) + 1);
        for (let n = 0; st.sent < due && n < 3; n++) {
          st.sent += 1;
          try {
            c.send({ dx: Math.cos(st.sent / 7), dy: Math.sin(st.sent / 5) });
          } catch (e) {
            st.errors.push(e.message);
          }
        }
      });
    }, 5);
    await sleep(secs * 1000);
    clearInterval(ticker);
    const playSecs = (performance.now() - playStart) / 1000;
    const framesDuring = stats.reduce((n, s) => n + s.frames, 0) - framesBefore;
    await sleep(300); // the last acks
    running = false;
    for (const c of conns) c.close();

    const frames = stats.reduce((n, s) => n + s.frames, 0);
    const sent = stats.reduce((n, s) => n + s.sent, 0);
    const acked = stats.reduce((n, s) => n + s.lastAck, 0);
    const errors = stats.reduce((n, s) => n + s.errors.length, 0);
    const disconnects = stats.reduce((n, s) => n + s.disconnects.length, 0);
    const silent = stats.filter((s) => s.frames === 0 || s.lastAck === 0).length;
    const rtts = stats.flatMap((s) => s.rtts).sort((a, b) => a - b);
    const avg = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0;
    const firstProblem = stats.flatMap((s) => [...s.errors, ...s.disconnects])[0];
    if (errors) problems.push(`${errors} errors (first: ${firstProblem})`);
    if (disconnects) problems.push(`${disconnects} disconnects`);
    if (silent) problems.push(`${silent} clients without snapshots or acks`);

    console.log(
      `load: mode=${mode} clients=${clients} matches=${matchCount} secs=${secs} rate=${rate}/s` +
        ` frames=${frames} frames_per_client_s=${(framesDuring / clients / playSecs).toFixed(1)}` +
        ` inputs=${sent} acks=${acked} errors=${errors} disconnects=${disconnects}` +
        ` rtt_ms_avg=${avg.toFixed(1)} rtt_ms_p99=${percentile(rtts, 99).toFixed(1)}` +
        ` total_s=${((performance.now() - started) / 1000).toFixed(1)}`,
    );
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
  } finally {
    if (server) await server.stop();
  }
  if (problems.length) {
    console.error(`load: FAILED: ${problems.join("; ")}`);
    process.exit(1);
  }
  process.exit(0);
}

await main();
