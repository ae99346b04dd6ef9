// Against a real server, no mocks: `pylon dev` started here on free loopback ports
// (PYLON_BIN, default ../../target/release/pylon; the test fails with a clear message when
// it is missing). Guest sessions, arena matches, every wire mode, the SSE fallback, a 4421
// between two servers, the matchmaker (findMatch), and the entity API with its change feeds.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { type StartedServer, freePortBlock, startServer } from "../scripts/server.mjs";
import { entities, pullChanges, transact } from "../src/entities.js";
import { PylonError, ShardCloseError } from "../src/errors.js";
import { createShard, guestSession, requestJson } from "../src/http.js";
import { findMatch } from "../src/matchmaker.js";
import { PylonRealtime } from "../src/realtime.js";
import { type ShardClient, connectShard } from "../src/shard.js";
import type { CloseInfo } from "../src/shard-core.js";
import { SyncConnection } from "../src/sync.js";
import type { WebSocketCtor } from "../src/transport.js";
import { until } from "./fakes.js";

const WS = WebSocket as unknown as WebSocketCtor;

interface Player {
  id: string;
  x: number;
  y: number;
  score: number;
}
interface Arena {
  ack?: number | null;
  time_left_secs: number;
  players: Player[];
  pickups: [number, number][];
}
interface Move {
  dx: number;
  dy: number;
}

let server: StartedServer;
const cleanups: (() => void | Promise<void>)[] = [];

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await server?.stop();
});

const http = () => ({ baseUrl: server.url });

/**
 * A guest session. The admin token rides along as the bearer: a server that limits guest
 * sessions per address and minute exempts the admin, so the test stays under any limit.
 */
const guest = (s: StartedServer = server) => guestSession({ baseUrl: s.url, token: s.adminToken });

async function newMatch(token: string): Promise<string> {
  const info = await createShard({ ...http(), token }, { game: "arena" });
  expect(info.game).toBe("arena");
  return info.id;
}

/** Sends a changing direction every 50 ms (20 inputs/s) until stopped. */
function steer(send: (m: Move) => unknown): () => void {
  let i = 0;
  const t = setInterval(() => {
    i += 1;
    const angle = i / 5;
    try {
      send({ dx: Math.cos(angle), dy: Math.sin(angle) });
    } catch {
      // not connected this instant
    }
  }, 50);
  return () => clearInterval(t);
}

/** Numbers as the server's f32 fields hold them (JSON prints them short; MessagePack widens them exactly). */
function f32(v: unknown): unknown {
  if (typeof v === "number") return Math.fround(v);
  if (Array.isArray(v)) return v.map(f32);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, f32(x)]));
  return v;
}

function withoutAck(s: Arena): Omit<Arena, "ack"> {
  const { ack: _ack, ...rest } = s;
  return rest;
}

describe("live: shard sockets", () => {
  it("connectShard (compat binary on the shard port, text on /shard) gets snapshots and acks", async () => {
    const me = await guest();
    const match = await newMatch(me.token);
    const opts = { token: me.token, subscriberId: me.user_id, WebSocket: WS };
    const binary = connectShard<Arena, Move>(match, { ...opts, baseUrl: server.url, wsPort: server.port + 3 });
    cleanups.push(() => binary.close());
    const errors: Error[] = [];
    binary.onError((e) => errors.push(e));
    await until(() => binary.connected, 10_000, "binary client open");
    const stop = steer((m) => binary.send(m));
    await until(() => (binary.snapshot?.ack ?? 0) >= 5, 10_000, "acks on the compat binary client");
    stop();
    expect(binary.transport).toBe("websocket");
    expect(binary.tick).toBeGreaterThan(0);
    const snap = binary.snapshot!;
    expect(Object.keys(snap)[0]).toBe("ack"); // spliced first
    const mine = snap.players.find((p) => p.id === me.user_id)!;
    expect(mine).toBeDefined();
    expect(Object.keys(mine).sort()).toEqual(["id", "score", "x", "y"]);
    expect(typeof snap.time_left_secs).toBe("number");
    expect(errors).toEqual([]);
    binary.close();

    const text = connectShard<Arena, Move>(match, { ...opts, baseUrl: server.url, format: "json" });
    cleanups.push(() => text.close());
    await until(() => text.connected, 10_000, "text client open");
    const stopText = steer((m) => text.send(m));
    await until(() => (text.snapshot?.ack ?? 0) >= 3, 10_000, "acks on the compat text client");
    stopText();
    expect(text.snapshot!.players.some((p) => p.id === me.user_id)).toBe(true);
    text.close();
  });

  it("PylonRealtime in MessagePack and MessagePack+delta (both patch formats): the same snapshots as compat, acks, latency", async () => {
    const [a, b, c, d] = await Promise.all([guest(), guest(), guest(), guest()]);
    const match = await newMatch(a.token);
    const seen = {
      compat: new Map<number, unknown>(),
      msgpack: new Map<number, unknown>(),
      delta: new Map<number, unknown>(),
      delta1: new Map<number, unknown>(),
    };

    const compat = connectShard<Arena, Move>(match, {
      baseUrl: server.url,
      wsPort: server.port + 3,
      token: a.token,
      subscriberId: a.user_id,
      WebSocket: WS,
    });
    compat.onSnapshot((s, tick) => seen.compat.set(tick, f32(withoutAck(s))));
    const msgpack = new PylonRealtime<Arena, Move>(match, {
      baseUrl: server.url,
      token: b.token,
      subscriberId: b.user_id,
      delta: false,
      WebSocket: WS,
    });
    msgpack.on("snapshot", (s, info) => seen.msgpack.set(info.tick, f32(s)));
    const delta = new PylonRealtime<Arena, Move>(match, {
      baseUrl: server.url,
      wsPort: server.port + 3,
      token: c.token,
      subscriberId: c.user_id,
      WebSocket: WS,
      predict: (s, m) => ({
        ...s,
        players: s.players.map((p) => (p.id === c.user_id ? { ...p, x: p.x + m.dx * 12.5, y: p.y + m.dy * 12.5 } : p)),
      }),
    });
    delta.on("snapshot", (s, info) => seen.delta.set(info.tick, f32(s)));
    // Patch format 1 (`delta=1`), as clients before format 2 ask for it.
    const delta1 = new PylonRealtime<Arena, Move>(match, {
      baseUrl: server.url,
      token: d.token,
      subscriberId: d.user_id,
      delta: 1,
      WebSocket: WS,
    });
    delta1.on("snapshot", (s, info) => seen.delta1.set(info.tick, f32(s)));
    const errors: Error[] = [];
    for (const rt of [msgpack, delta, delta1]) {
      rt.on("error", (e) => errors.push(e));
      rt.connect();
    }
    compat.onError((e) => errors.push(e));
    cleanups.push(() => compat.close(), () => msgpack.close(), () => delta.close(), () => delta1.close());

    await until(() => compat.connected && msgpack.connected && delta.connected && delta1.connected, 10_000, "all four open");
    const clients = [compat, msgpack, delta, delta1];
    const stops = clients.map((rt) => steer((m) => rt.send(m)));
    await until(() => clients.every((rt) => (rt.ack ?? 0) >= 20), 15_000, "20 acks on every client");
    for (const s of stops) s();

    const common = [...seen.delta.keys()].filter((t) => seen.compat.has(t) && seen.msgpack.has(t) && seen.delta1.has(t));
    expect(common.length).toBeGreaterThanOrEqual(10);
    for (const tick of common) {
      expect(seen.msgpack.get(tick), `msgpack tick ${tick}`).toEqual(seen.compat.get(tick));
      expect(seen.delta.get(tick), `delta tick ${tick}`).toEqual(seen.compat.get(tick));
      expect(seen.delta1.get(tick), `delta=1 tick ${tick}`).toEqual(seen.compat.get(tick));
    }
    const last = seen.delta.get(common.at(-1)!) as Arena;
    expect(last.players.map((p) => p.id).sort()).toEqual([a.user_id, b.user_id, c.user_id, d.user_id].sort());
    expect(delta.stats.deltas).toBeGreaterThan(10); // deltas were really applied
    expect(delta1.stats.deltas).toBeGreaterThan(10);
    expect(msgpack.stats.deltas).toBe(0);
    expect(msgpack.latency.samples).toBeGreaterThan(5);
    expect(delta.latency.avgMs).toBeGreaterThan(0);
    expect(delta.predicted).not.toBeNull();
    expect(errors).toEqual([]);
  });

  it("falls back to SSE + HTTP inputs when the WebSocket URL points to a closed port", async () => {
    const me = await guest();
    const match = await newMatch(me.token);
    const closedPort = await freePortBlock(1);
    const client: ShardClient<Arena, Move> = connectShard<Arena, Move>(match, {
      baseUrl: server.url,
      wsUrl: `ws://127.0.0.1:${closedPort}/`,
      token: me.token,
      subscriberId: me.user_id,
      WebSocket: WS,
    });
    cleanups.push(() => client.close());
    const closes: CloseInfo[] = [];
    client.onClose((c) => closes.push(c));
    await until(() => client.transport === "sse" && client.snapshot !== null, 10_000, "snapshots over SSE");
    expect(closes[0]).toMatchObject({ willReconnect: true });
    const stop = steer((m) => client.send(m));
    await until(() => (client.snapshot?.ack ?? 0) >= 5, 10_000, "acks of HTTP inputs");
    stop();
    expect(client.snapshot!.players.some((p) => p.id === me.user_id)).toBe(true);
    expect(client.stats.inputs).toBeGreaterThanOrEqual(5);
  });

  it("typed refusals: unknown shard (4404), bad token (1008), unknown game (400)", async () => {
    const me = await guest();
    const unknown = connectShard("local-doesnotexist", {
      baseUrl: server.url,
      token: me.token,
      subscriberId: me.user_id,
      WebSocket: WS,
    });
    cleanups.push(() => unknown.close());
    await until(() => unknown.error !== null, 10_000, "4404");
    expect((unknown.error as ShardCloseError).closeCode).toBe(4404);
    expect((unknown.error as ShardCloseError).closeName).toBe("UnknownShard");

    const match = await newMatch(me.token);
    const badToken = new PylonRealtime(match, { baseUrl: server.url, token: "not-a-token", WebSocket: WS }).connect();
    cleanups.push(() => badToken.close());
    await until(() => badToken.error !== null, 10_000, "1008");
    expect((badToken.error as ShardCloseError).closeCode).toBe(1008);

    const err = await createShard({ ...http(), token: me.token }, { game: "chess" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PylonError);
    expect([(err as PylonError).status, (err as PylonError).code]).toEqual([400, "UNKNOWN_GAME"]);
    expect((err as PylonError).hint).toContain("arena");
  });

  it("reconnects after a server restart and resumes the match with the same sid", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pylon-restart-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const first = await startServer({ dir });
    let current = first;
    cleanups.push(() => current.stop());
    const me = await guest(first);
    const info = await createShard({ baseUrl: first.url, token: me.token }, { game: "arena" });
    const rt = new PylonRealtime<Arena, Move>(info.id, {
      baseUrl: first.url,
      token: me.token,
      subscriberId: me.user_id,
      WebSocket: WS,
      reconnectBackoffMs: 100,
    });
    const closes: CloseInfo[] = [];
    rt.on("close", (c) => closes.push(c));
    rt.connect();
    cleanups.push(() => rt.close());
    let stop = steer((m) => rt.send(m));
    await until(() => (rt.ack ?? 0) >= 3, 10_000, "acks before the restart");
    stop();
    await first.stop(); // SIGTERM: the server saves the match and closes sockets with 1001
    await until(() => closes.length > 0, 10_000, "the close");
    expect(closes[0]).toMatchObject({ code: 1001, willReconnect: true });
    expect((closes[0]!.error as ShardCloseError).closeName).toBe("GoingAway");
    const before = rt.tick;
    const lastSeq = rt.lastSeq;
    current = await startServer({ dir, port: first.port, adminToken: first.adminToken });
    await until(() => rt.connected && rt.tick > before, 20_000, "snapshots after the restart");
    expect(rt.stats.opens).toBeGreaterThanOrEqual(2);
    expect(rt.state!.players.map((p) => p.id)).toContain(me.user_id);
    stop = steer((m) => rt.send(m));
    await until(() => (rt.ack ?? 0) > lastSeq + 2, 10_000, "acks after the restart");
    stop();
    rt.close();
  });

  it("follows a 4421 to the region that owns the match (two servers)", async () => {
    const eu = await startServer({ env: { PYLON_REGION: "eu" } });
    cleanups.push(() => eu.stop());
    const home = await startServer({ env: { PYLON_REGIONS: `eu=${eu.url}` } });
    cleanups.push(() => home.stop());
    const me = await guest(eu);
    const info = await createShard({ baseUrl: eu.url, token: me.token }, { game: "arena" });
    expect(info.id.startsWith("eu-")).toBe(true);
    const rt = new PylonRealtime<Arena>(info.id, { baseUrl: home.url, token: me.token, subscriberId: me.user_id, WebSocket: WS });
    const redirects: string[] = [];
    rt.on("redirect", (u) => redirects.push(u));
    rt.connect();
    cleanups.push(() => rt.close());
    await until(() => rt.state !== null, 10_000, "snapshots from the owning region");
    expect(redirects).toEqual([eu.url]);
    expect(rt.error).toBeNull();
    rt.close();
  });
});

describe("live: matchmaker", () => {
  it("findMatch: eight players queue for arena, each is pushed the same match, and one plays it", async () => {
    const players = await Promise.all(Array.from({ length: 8 }, () => guest()));
    const queued: string[] = [];
    const found = await Promise.all(
      players.map((p) =>
        findMatch({ ...http(), token: p.token, game: "arena", timeoutMs: 20_000, onQueued: (t) => queued.push(t) }),
      ),
    );
    expect(new Set(found.map((m) => m.shardId)).size).toBe(1);
    expect(new Set(queued).size).toBe(8);
    found.forEach((m, i) => {
      expect(m.sid).toBe(players[i]!.user_id);
      expect(m.region).toBe("local");
      expect(m.wsUrl).toBe(`ws://127.0.0.1:${server.port}/shard`);
      expect(typeof m.expiresAt).toBe("number");
      expect(m.raw.ticket_id).toBe(m.ticketId);
    });
    const me = players[0]!;
    const m = found[0]!;
    const shard = connectShard<Arena, Move>(m.shardId, { wsUrl: m.wsUrl, token: me.token, subscriberId: m.sid, WebSocket: WS });
    cleanups.push(() => shard.close());
    await until(() => shard.connected, 10_000, "the matched shard open");
    const stop = steer((m) => shard.send(m));
    await until(() => (shard.snapshot?.ack ?? 0) >= 3, 10_000, "acks in the matched shard");
    stop();
    expect(shard.snapshot!.players.some((p) => p.id === me.user_id)).toBe(true);
    shard.close();
  });

  it("typed refusals: unknown game 400, a second open ticket 409 naming the first; aborting cancels on the server", async () => {
    const me = await guest();
    const unknown = (await findMatch({ ...http(), token: me.token, game: "chess" }).catch((e: unknown) => e)) as PylonError;
    expect([unknown.status, unknown.code]).toEqual([400, "UNKNOWN_GAME"]);
    const ctrl = new AbortController();
    let ticket = "";
    const pending = findMatch({ ...http(), token: me.token, game: "arena", signal: ctrl.signal, onQueued: (t) => (ticket = t) });
    await until(() => ticket !== "", 10_000, "the ticket queued");
    const second = (await findMatch({ ...http(), token: me.token, game: "tictactoe" }).catch((e: unknown) => e)) as PylonError;
    expect([second.status, second.code, second.details.ticket_id]).toEqual([409, "ALREADY_QUEUED", ticket]);
    ctrl.abort();
    const err = (await pending.catch((e: unknown) => e)) as PylonError;
    expect(err.code).toBe("TICKET_CANCELLED");
    const status = await requestJson<{ status: string }>({ ...http(), token: me.token }, "GET", `/api/matchmaker/tickets/${ticket}`);
    expect(status.status).toBe("cancelled");
  });
});

describe("live: entities and change feeds", () => {
  interface PlayerRow {
    displayName: string;
    region?: string | null;
    createdAt: string;
    level: number;
    xp: number;
  }

  it("CRUD, cursor pages, transactions, typed errors; the feeds see an HTTP insert", async () => {
    const admin = { ...http(), token: server.adminToken };
    const players = entities<PlayerRow>("Player", admin);
    const feeds = {
      ws: new SyncConnection({ ...admin, since: 0, WebSocket: WS }),
      port1: new SyncConnection({ ...admin, since: 0, WebSocket: WS, syncUrl: `ws://127.0.0.1:${server.port + 1}/` }),
      sse: new SyncConnection({ ...admin, since: 0, transport: "sse" }),
      ssePort2: new SyncConnection({ ...admin, since: 0, transport: "sse", eventsUrl: `http://127.0.0.1:${server.port + 2}/` }),
    };
    const got: Record<string, { seq: number; row_id: string; kind: string }[]> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      got[name] = [];
      feed.onChange((c) => got[name]!.push(c));
      feed.connect();
      cleanups.push(() => feed.close());
    }

    const stamp = Date.now().toString(36);
    const row: PlayerRow = { displayName: `p-${stamp}`, createdAt: new Date().toISOString(), level: 1, xp: 0 };
    const id = await players.create(row);
    expect(await players.get(id)).toMatchObject({ ...row, id });
    await players.update(id, { xp: 50 });
    expect((await players.get(id)).xp).toBe(50);
    const page = await players.list({ where: { displayName: row.displayName } });
    expect(page.count).toBe(1);
    expect(page.data[0]!.id).toBe(id);

    const ids = await transact(admin, [
      players.op.insert({ displayName: `q-${stamp}`, createdAt: row.createdAt, level: 3, xp: 1 }),
      players.op.update(id, { level: 2 }),
    ]);
    expect(ids).toHaveLength(2);
    expect((await players.get(id)).level).toBe(2);
    const first = await players.page({ limit: 1 });
    expect(first.data).toHaveLength(1);
    expect(first.hasMore).toBe(true);
    const all: string[] = [];
    for await (const r of players.all({ limit: 1 })) all.push(r.id);
    expect(all).toEqual(expect.arrayContaining([id, ids[0]]));

    const dup = await players.create(row).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(PylonError);
    expect((dup as PylonError).status).toBe(409);
    const missing = await entities("NoSuchEntity", admin).list().catch((e: unknown) => e);
    expect([(missing as PylonError).status, (missing as PylonError).code]).toEqual([404, "ENTITY_NOT_FOUND"]);

    for (const name of Object.keys(feeds)) {
      await until(
        () => got[name]!.some((c) => c.row_id === id && c.kind === "insert") && got[name]!.some((c) => c.row_id === id && c.kind === "update"),
        10_000,
        `the insert and update on the ${name} feed`,
      );
      const seqs = got[name]!.map((c) => c.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y)); // in order, no repeats
      expect(new Set(seqs).size).toBe(seqs.length);
    }
    expect(feeds.ws.transport).toBe("websocket");
    expect(feeds.sse.transport).toBe("sse");

    await players.delete(id);
    const gone = await players.get(id).catch((e: unknown) => e);
    expect((gone as PylonError).status).toBe(404);
    await until(() => got.ws!.some((c) => c.row_id === id && c.kind === "delete"), 10_000, "the delete on the feed");
    const pulled = await pullChanges(admin, 0, 1000);
    expect(pulled.changes.some((c) => c.row_id === id && c.kind === "delete")).toBe(true);
  });
});
