// connectShard and PylonRealtime driven through scripted sockets and streams: wire
// modes, delta bases and their acks, fallback to SSE, 4421, typed closes, reconnects.
import { encode } from "@msgpack/msgpack";
import { afterEach, describe, expect, it } from "vitest";
import { CloseCode, PylonError, ShardCloseError } from "../src/errors.js";
import { PylonRealtime } from "../src/realtime.js";
import { connectShard } from "../src/shard.js";
import type { CloseInfo } from "../src/shard-core.js";
import { StreamBody, fakeFetch, fakeSockets, json, sse, until } from "./fakes.js";

const binaryFrame = (tick: number, snapshot: unknown) => {
  const body = new TextEncoder().encode(JSON.stringify(snapshot));
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(tick));
  out.set(body, 8);
  return out;
};
const mp = (...items: unknown[]) => encode(items);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe("connectShard (compat)", () => {
  it("connects like the stock client, decodes binary frames, sends {input, client_seq}", async () => {
    const ws = fakeSockets();
    const client = connectShard<{ ack: number | null; players: unknown[] }, { dx: number }>("m1", {
      subscriberId: "u1",
      token: "tok en",
      baseUrl: "game.example.com",
      WebSocket: ws.ctor,
    });
    cleanups.push(() => client.close());
    const s = ws.last();
    expect(s.url).toBe("ws://game.example.com:4324/?shard=m1&sid=u1");
    expect(s.protocols).toEqual(["bearer.tok%20en"]);
    expect(s.binaryType).toBe("arraybuffer");
    const seen: [unknown, number][] = [];
    let opened = 0;
    client.onOpen(() => opened++);
    client.onSnapshot((snap, tick) => seen.push([snap, tick]));
    s.open();
    expect(client.connected).toBe(true);
    expect(opened).toBe(1);
    expect(client.send({ dx: 1 })).toBe(1);
    expect(client.send({ dx: -1 })).toBe(2);
    expect(s.sent).toEqual(['{"input":{"dx":1},"client_seq":1}', '{"input":{"dx":-1},"client_seq":2}']);
    s.message(binaryFrame(2 ** 32 + 5, { ack: 2, players: [] }));
    expect(seen).toEqual([[{ ack: 2, players: [] }, 2 ** 32 + 5]]);
    expect([client.tick, client.ack, client.transport]).toEqual([2 ** 32 + 5, 2, "websocket"]);
    // Text frames (format=json) decode too.
    s.message('{"tick":7,"snapshot":{"ack":2,"players":[1]}}');
    expect(client.snapshot).toEqual({ ack: 2, players: [1] });
  });

  it("sending while not connected reports an error and still returns the seq", () => {
    const ws = fakeSockets();
    const client = connectShard("m1", { subscriberId: "u1", WebSocket: ws.ctor, sseFallback: false });
    cleanups.push(() => client.close());
    const errors: Error[] = [];
    client.onError((e) => errors.push(e));
    expect(client.send({})).toBe(1);
    expect((errors[0] as PylonError).code).toBe("NOT_CONNECTED");
  });

  it("a refusal is a typed error and is not retried (4404)", async () => {
    const ws = fakeSockets();
    const client = connectShard("nope", { subscriberId: "u1", WebSocket: ws.ctor });
    cleanups.push(() => client.close());
    const closes: CloseInfo[] = [];
    client.onClose((c) => closes.push(c));
    ws.last().open();
    ws.last().serverClose(4404, "unknown shard nope");
    expect(client.error).toBeInstanceOf(ShardCloseError);
    const e = client.error as ShardCloseError;
    expect([e.closeCode, e.closeName, e.reason]).toEqual([4404, "UnknownShard", "unknown shard nope"]);
    expect(closes[0]).toMatchObject({ code: 4404, willReconnect: false });
    await new Promise((r) => setTimeout(r, 20));
    expect(ws.sockets).toHaveLength(1);
  });

  it("retryable closes reconnect with backoff and the same sid; a finished match does not", async () => {
    const ws = fakeSockets();
    const client = connectShard("m1", {
      subscriberId: "u1",
      WebSocket: ws.ctor,
      reconnectBackoffMs: 5,
      random: () => 0,
    });
    cleanups.push(() => client.close());
    ws.last().open();
    ws.last().serverClose(CloseCode.RateLimited, "too many inputs per second");
    expect((client.error as ShardCloseError).retryable).toBe(true);
    await until(() => ws.sockets.length === 2, 500, "reconnect");
    expect(ws.last().url).toContain("sid=u1");
    ws.last().open();
    ws.last().serverClose(1000, "match finished");
    await new Promise((r) => setTimeout(r, 30));
    expect(ws.sockets).toHaveLength(2);
  });

  it("falls back to SSE + HTTP inputs when the WebSocket cannot open, resuming with Last-Event-ID", async () => {
    const ws = fakeSockets();
    const streams: StreamBody[] = [];
    const { fetch, requests } = fakeFetch({
      "GET /api/shards/m1/connect": (_req, signal) => {
        const body = new StreamBody();
        streams.push(body);
        return sse(body, signal);
      },
      "POST /api/shards/m1/input": (req) => json(200, { accepted: true, seq: (req.body as { client_seq: number }).client_seq }),
    });
    const client = connectShard<{ ack: number | null }>("m1", {
      subscriberId: "u1",
      token: "t/1",
      baseUrl: "http://127.0.0.1:9",
      wsPort: 12,
      WebSocket: ws.ctor,
      fetch,
      reconnectBackoffMs: 5,
      random: () => 0,
    });
    cleanups.push(() => client.close());
    const ticks: number[] = [];
    client.onSnapshot((_s, t) => ticks.push(t));
    ws.last().fail();
    await until(() => streams.length === 1, 500, "SSE request");
    const connect = requests[0]!;
    expect(connect.url.toString()).toBe("http://127.0.0.1:9/api/shards/m1/connect?sid=u1&token=t%2F1");
    // Nothing a cross-origin preflight would refuse (the server allows Authorization and
    // Last-Event-ID; a browser check caught a Cache-Control header here once).
    expect(Object.keys(connect.headers)).toEqual(["accept"]);
    streams[0]!.write('id: 3\ndata: {"ack":null}\n\n: heartbeat\n\nid: 4\ndata: {"ack":1}\n\n');
    await until(() => ticks.length === 2, 500, "snapshots");
    expect(client.transport).toBe("sse");
    expect(client.ack).toBe(1);
    expect(client.send({ dx: 1 })).toBe(1);
    await until(() => requests.some((r) => r.method === "POST"), 500, "input POST");
    const post = requests.find((r) => r.method === "POST")!;
    expect(post.url.pathname).toBe("/api/shards/m1/input");
    expect(post.headers.authorization).toBe("Bearer t/1");
    expect(post.body).toEqual({ input: { dx: 1 }, client_seq: 1, subscriber_id: "u1" });
    // The stream drops: reconnect on SSE, resuming after tick 4.
    streams[0]!.end();
    await until(() => streams.length === 2, 500, "SSE reconnect");
    expect(requests.filter((r) => r.url.pathname.endsWith("/connect")).at(-1)!.headers["last-event-id"]).toBe("4");
    // The match ends: no more reconnects.
    const closes: CloseInfo[] = [];
    client.onClose((c) => closes.push(c));
    streams[1]!.write('event: end\nid: 9\ndata: {"reason":"score_limit"}\n\n');
    await until(() => closes.length === 1, 500, "end");
    expect(closes[0]).toMatchObject({ code: 1000, willReconnect: false, error: null });
  });

  it("an SSE refusal is the server's PylonError", async () => {
    const ws = fakeSockets();
    const { fetch } = fakeFetch({
      "GET /api/shards/m1/connect": () => json(401, { error: { code: "AUTH_REQUIRED", message: "the token is unknown or expired" } }),
    });
    const client = connectShard("m1", { subscriberId: "u1", WebSocket: ws.ctor, fetch, baseUrl: "http://h:1" });
    cleanups.push(() => client.close());
    ws.last().fail();
    await until(() => client.error !== null, 500, "error");
    expect(client.error).toBeInstanceOf(PylonError);
    expect([(client.error as PylonError).status, (client.error as PylonError).code]).toEqual([401, "AUTH_REQUIRED"]);
  });
});

describe("PylonRealtime", () => {
  it("MessagePack + delta (format 1): applies deltas to the acknowledged base and acknowledges bases", async () => {
    const ws = fakeSockets();
    const rt = new PylonRealtime<{ players: { id: string; x: number }[] }, { dx: number }, { winner: string }>("m1", {
      baseUrl: "http://127.0.0.1:5521",
      subscriberId: "u1",
      token: "tok",
      delta: 1,
      WebSocket: ws.ctor,
    }).connect();
    cleanups.push(() => rt.close());
    const s = ws.last();
    expect(s.url).toBe("ws://127.0.0.1:5521/shard?shard=m1&sid=u1&format=msgpack&delta=1");
    const joined: unknown[] = [];
    rt.on("joined", (j) => joined.push(j));
    s.open();
    s.message(mp(5, 0, null, null, { key: 3, resumed: false }));
    expect(joined).toEqual([{ key: 3, resumed: false }]);
    const bytesSent = () => s.sent.map((f) => [...(f as Uint8Array)]);
    s.message(mp(1, 10, null, null, { players: [{ id: "u1", x: 1 }] }));
    await until(() => s.sent.length === 1, 500, "base ack");
    expect(bytesSent()).toEqual([[0x93, 0xc0, 0x0a, 0xc0]]); // [nil, 10, nil]
    expect(rt.send({ dx: 1 })).toBe(1);
    expect(bytesSent()[1]).toEqual([...encode([1, 10, { dx: 1 }])]);
    s.message(mp(2, 11, 1, 10, { o: { players: { a: [[0, { o: { x: { r: 2 } } }]], n: 1 } } }));
    expect(rt.state).toEqual({ players: [{ id: "u1", x: 2 }] });
    expect([rt.tick, rt.ack]).toEqual([11, 1]);
    expect(rt.latency.samples).toBe(1);
    await until(() => s.sent.length === 3, 500, "base ack 11");
    expect(bytesSent()[2]).toEqual([0x93, 0xc0, 0x0b, 0xc0]);
    // Unchanged since base 11 (nil body). An input sent by a snapshot handler carries the
    // new base, so no separate acknowledgement follows.
    const off = rt.on("snapshot", () => rt.send({ dx: 0 }));
    s.message(mp(2, 12, 1, 11, null));
    off();
    expect(rt.state).toEqual({ players: [{ id: "u1", x: 2 }] });
    await new Promise((r) => setTimeout(r, 5));
    expect(bytesSent().slice(3)).toEqual([[...encode([2, 12, { dx: 0 }])]]);
    // A delta still against 11 (the server had not seen base 12 yet).
    s.message(mp(2, 13, 2, 11, { o: { players: { a: [[1, { r: { id: "u2", x: 9 } }]], n: 2 } } }));
    expect(rt.state).toEqual({ players: [{ id: "u1", x: 2 }, { id: "u2", x: 9 }] });
    await until(() => s.sent.length === 5, 500, "base ack 13");
    expect(bytesSent()[4]).toEqual([0x93, 0xc0, 0x0d, 0xc0]);
    expect(rt.stats).toMatchObject({ snapshots: 1, deltas: 3, inputs: 2, opens: 1 });
    // Match end, then the close: no error, no reconnect.
    const ends: unknown[] = [];
    rt.on("end", (o) => ends.push(o));
    s.message(mp(3, 14, null, null, { winner: "u1" }));
    s.serverClose(1000, "match finished");
    expect(ends).toEqual([{ winner: "u1" }]);
    expect(rt.outcome).toEqual({ winner: "u1" });
    expect(rt.error).toBeNull();
    await new Promise((r) => setTimeout(r, 20));
    expect(ws.sockets).toHaveLength(1);
  });

  it("MessagePack + delta by default asks for patch format 2 and applies its patches", async () => {
    type S = { t: number; players: { id: string; x: number }[]; gone?: number };
    const ws = fakeSockets();
    const rt = new PylonRealtime<S>("m1", { baseUrl: "http://127.0.0.1:5521", subscriberId: "u1", WebSocket: ws.ctor }).connect();
    cleanups.push(() => rt.close());
    const s = ws.last();
    expect(s.url).toBe("ws://127.0.0.1:5521/shard?shard=m1&sid=u1&format=msgpack&delta=2");
    s.open();
    s.message(mp(1, 10, null, null, { t: 5, players: [{ id: "u1", x: 1 }], gone: 1 }));
    // A bare number under its key, an array patch with an append, a removed key.
    s.message(mp(2, 11, null, 10, { t: 4.5, players: [1, 2, 0, { x: 2 }, 1, [0, { id: "u2", x: 9 }]], gone: [2] }));
    expect(rt.state).toEqual({ t: 4.5, players: [{ id: "u1", x: 2 }, { id: "u2", x: 9 }] });
    // Unchanged since base 11 (nil body).
    s.message(mp(2, 12, null, 11, null));
    expect(rt.state).toEqual({ t: 4.5, players: [{ id: "u1", x: 2 }, { id: "u2", x: 9 }] });
    // Against base 12: the second player leaves (truncation, no pairs).
    s.message(mp(2, 13, null, 12, { players: [1, 1] }));
    expect(rt.state).toEqual({ t: 4.5, players: [{ id: "u1", x: 2 }] });
    expect(rt.stats).toMatchObject({ snapshots: 1, deltas: 3, opens: 1 });
    // A patch that does not fit (a removed key the base lacks): an error, and a fresh socket.
    const errors: Error[] = [];
    rt.on("error", (e) => errors.push(e));
    s.message(mp(2, 14, null, 13, { nope: [2] }));
    expect((errors[0] as PylonError).code).toBe("DECODE_ERROR");
    expect(ws.sockets).toHaveLength(2);
  });

  it("a delta against a base it does not hold is an error, and it subscribes afresh", async () => {
    const ws = fakeSockets();
    const rt = new PylonRealtime("m1", { WebSocket: ws.ctor }).connect();
    cleanups.push(() => rt.close());
    ws.last().open();
    const errors: Error[] = [];
    rt.on("error", (e) => errors.push(e));
    ws.last().message(mp(2, 11, null, 10, { r: {} }));
    expect((errors[0] as PylonError).code).toBe("DECODE_ERROR");
    expect(ws.sockets).toHaveLength(2);
  });

  it("predicts inputs and reconciles on acks (compat JSON mode reads the ack key)", () => {
    const ws = fakeSockets();
    type S = { ack?: number | null; x: number };
    const rt = new PylonRealtime<S, { dx: number }>("m1", {
      format: "json",
      WebSocket: ws.ctor,
      predict: (s, i) => ({ ...s, x: s.x + i.dx }),
    }).connect();
    cleanups.push(() => rt.close());
    const s = ws.last();
    expect(s.url).toContain("format=json");
    s.open();
    s.message('{"tick":1,"snapshot":{"ack":null,"x":0}}');
    rt.send({ dx: 1 });
    rt.send({ dx: 1 });
    rt.send({ dx: 1 });
    expect(s.sent).toEqual(['{"input":{"dx":1},"client_seq":1}', '{"input":{"dx":1},"client_seq":2}', '{"input":{"dx":1},"client_seq":3}']);
    expect(rt.predicted?.x).toBe(3);
    const infos: unknown[] = [];
    rt.on("snapshot", (_state, info) => infos.push(info));
    s.message('{"tick":2,"snapshot":{"ack":1,"x":1}}');
    expect(rt.predicted?.x).toBe(3);
    expect(rt.pendingInputs).toBe(2);
    s.message('{"tick":3,"snapshot":{"ack":3,"x":2.5}}'); // the server disagrees: it wins
    expect(rt.predicted?.x).toBe(2.5);
    expect(rt.pendingInputs).toBe(0);
    expect(infos).toHaveLength(2);
  });

  it("on the SSE fallback, a MessagePack client gets the same snapshot shape (ack beside it)", async () => {
    const ws = fakeSockets();
    const stream = new StreamBody();
    const { fetch } = fakeFetch({ "GET /api/shards/m1/connect": (_r, signal) => sse(stream, signal) });
    const rt = new PylonRealtime<{ x: number }>("m1", { baseUrl: "http://h:1", WebSocket: ws.ctor, fetch }).connect();
    cleanups.push(() => rt.close());
    ws.last().fail();
    await until(() => rt.transport === "sse", 500, "SSE");
    stream.write('id: 8\ndata: {"ack":4,"x":1}\n\n');
    await until(() => rt.state !== null, 500, "snapshot");
    expect(rt.state).toEqual({ x: 1 });
    expect([rt.tick, rt.ack]).toEqual([8, 4]);
  });

  it("follows 4421 to the region in the reason", async () => {
    const ws = fakeSockets();
    const rt = new PylonRealtime("m1", { baseUrl: "https://us.example.com", subscriberId: "u1", WebSocket: ws.ctor }).connect();
    cleanups.push(() => rt.close());
    const redirects: string[] = [];
    rt.on("redirect", (u) => redirects.push(u));
    ws.last().open();
    ws.last().serverClose(CloseCode.WrongRegion, "https://eu.example.com");
    expect(redirects).toEqual(["https://eu.example.com"]);
    expect(ws.sockets).toHaveLength(2);
    expect(ws.last().url).toBe("wss://eu.example.com/shard?shard=m1&sid=u1&format=msgpack&delta=2");
    expect(rt.error).toBeNull();
  });

  it("interpolates between snapshots at the render time", () => {
    const ws = fakeSockets();
    let now = 0;
    type S = { players: { id: string; x: number }[] };
    const rt = new PylonRealtime<S>("m1", {
      WebSocket: ws.ctor,
      delta: false,
      now: () => now,
      interpolation: { tickRateHz: 20, delayMs: 50 },
    }).connect();
    cleanups.push(() => rt.close());
    ws.last().open();
    ws.last().message(mp(1, 100, null, null, { players: [{ id: "a", x: 0 }] }));
    now = 50;
    ws.last().message(mp(1, 101, null, null, { players: [{ id: "a", x: 10 }] }));
    expect(rt.interpolated(50)!.players[0]!.x).toBe(0); // render time = tick 100
    expect(rt.interpolated(75)!.players[0]!.x).toBe(5); // half-way to tick 101
  });
});
