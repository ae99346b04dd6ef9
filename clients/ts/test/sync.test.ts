// The change feed and presence on the sync socket, driven through scripted sockets and
// streams (presence is not on the server yet: these follow the message shapes of the spec).
import { afterEach, describe, expect, it } from "vitest";
import type { ChangeEvent } from "../src/entities.js";
import { ResyncRequiredError } from "../src/errors.js";
import { type PresenceEvent, SyncConnection, type TopicMessage, parseSyncFrame } from "../src/sync.js";
import { StreamBody, fakeFetch, fakeSockets, sse, until } from "./fakes.js";

const change = (seq: number, kind = "insert") =>
  JSON.stringify({ seq, entity: "Player", row_id: `r${seq}`, kind, data: { id: `r${seq}` }, timestamp: "2026-01-01T00:00:00Z" });

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe("parseSyncFrame", () => {
  it("tells changes, presence, topics, resync and errors apart", () => {
    expect(parseSyncFrame(change(1)).type).toBe("change");
    expect(parseSyncFrame('{"type":"presence","event":"update","from":"c2","data":{"x":1}}')).toEqual({
      type: "presence",
      presence: { event: "update", from: "c2", data: { x: 1 } },
    });
    expect(parseSyncFrame('{"type":"presence","event":"disconnect","clientId":"c2"}')).toEqual({
      type: "presence",
      presence: { event: "disconnect", clientId: "c2" },
    });
    expect(parseSyncFrame('{"type":"topic","topic":"chat","data":"hi","from":"c3"}')).toEqual({
      type: "topic",
      topic: { topic: "chat", data: "hi", from: "c3" },
    });
    expect(parseSyncFrame('{"error":{"code":"RESYNC_REQUIRED","oldest_seq":40}}')).toEqual({ type: "resync", oldestSeq: 40 });
    expect(parseSyncFrame('{"code":"RESYNC_REQUIRED","oldest_seq":41}')).toEqual({ type: "resync", oldestSeq: 41 });
    expect(parseSyncFrame('{"error":{"code":"X","message":"m"}}').type).toBe("error");
    expect(parseSyncFrame("garbage").type).toBe("unknown");
  });
});

describe("SyncConnection (WebSocket)", () => {
  it("delivers each change once in seq order, resumes after the last seen, filters entities", async () => {
    const ws = fakeSockets();
    const got: number[] = [];
    const conn = new SyncConnection({
      baseUrl: "http://127.0.0.1:9",
      token: "tok",
      since: 0,
      WebSocket: ws.ctor,
      reconnectBackoffMs: 2,
      random: () => 0,
    });
    cleanups.push(() => conn.close());
    conn.onChange((c: ChangeEvent) => got.push(c.seq));
    conn.connect();
    expect(ws.last().url).toBe("ws://127.0.0.1:9/ws?since=0");
    expect(ws.last().protocols).toEqual(["bearer.tok"]);
    ws.last().open();
    for (const seq of [1, 2, 2, 1, 3]) ws.last().message(change(seq));
    expect(got).toEqual([1, 2, 3]);
    expect(conn.lastSeq).toBe(3);
    ws.last().serverClose(1001, "server shutting down");
    await until(() => ws.sockets.length === 2, 500, "reconnect");
    expect(ws.last().url).toBe("ws://127.0.0.1:9/ws?since=3");
  });

  it("without since, starts live (no since) and resumes from what it saw", async () => {
    const ws = fakeSockets();
    const conn = new SyncConnection({ syncUrl: "ws://127.0.0.1:4322/", WebSocket: ws.ctor, reconnectBackoffMs: 2, random: () => 0 });
    cleanups.push(() => conn.close());
    conn.connect();
    expect(ws.last().url).toBe("ws://127.0.0.1:4322/");
    ws.last().open();
    ws.last().message(change(17));
    ws.last().fail();
    await until(() => ws.sockets.length === 2, 500, "reconnect");
    expect(ws.last().url).toBe("ws://127.0.0.1:4322/?since=17");
  });

  it("surfaces a resync (error frame, then 4410) and stops", async () => {
    const ws = fakeSockets();
    const conn = new SyncConnection({ since: 5, WebSocket: ws.ctor, reconnectBackoffMs: 1 });
    cleanups.push(() => conn.close());
    const resyncs: ResyncRequiredError[] = [];
    conn.onResync((e) => resyncs.push(e));
    conn.connect();
    ws.last().open();
    ws.last().message('{"error":{"code":"RESYNC_REQUIRED","oldest_seq":40}}');
    ws.last().serverClose(4410, "resync required");
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]!.oldestSeq).toBe(40);
    await new Promise((r) => setTimeout(r, 20));
    expect(ws.sockets).toHaveLength(1);
  });

  it("presence: sent on open and on every reconnect, peers tracked, topics relayed", async () => {
    const ws = fakeSockets();
    const conn = new SyncConnection({ WebSocket: ws.ctor, reconnectBackoffMs: 2, random: () => 0 });
    cleanups.push(() => conn.close());
    const presence: PresenceEvent[] = [];
    const chat: TopicMessage[] = [];
    conn.onPresence((p) => presence.push(p));
    conn.onTopic("chat", (m) => chat.push(m));
    expect(conn.setPresence({ cursor: [1, 2] })).toBe(false); // not open yet: kept for later
    conn.connect();
    ws.last().open();
    expect(ws.last().sent).toEqual(['{"type":"presence","event":"update","data":{"cursor":[1,2]}}']);
    expect(conn.publish("chat", { text: "gg" })).toBe(true);
    expect(ws.last().sent.at(-1)).toBe('{"type":"topic","topic":"chat","data":{"text":"gg"}}');
    ws.last().message('{"type":"presence","event":"update","from":"c2","data":{"cursor":[5,5]}}');
    ws.last().message('{"type":"topic","topic":"chat","data":{"text":"hi"},"from":"c2"}');
    ws.last().message('{"type":"topic","topic":"other","data":1,"from":"c2"}');
    expect(conn.peers.get("c2")).toEqual({ cursor: [5, 5] });
    expect(chat).toEqual([{ topic: "chat", data: { text: "hi" }, from: "c2" }]);
    ws.last().message('{"type":"presence","event":"disconnect","clientId":"c2"}');
    expect(conn.peers.has("c2")).toBe(false);
    expect(presence.map((p) => p.event)).toEqual(["update", "disconnect"]);
    ws.last().serverClose(1006, "");
    await until(() => ws.sockets.length === 2, 500, "reconnect");
    ws.last().open();
    expect(ws.last().sent).toEqual(['{"type":"presence","event":"update","data":{"cursor":[1,2]}}']);
  });
});

describe("SyncConnection (SSE fallback)", () => {
  it("uses /events with the token and Last-Event-ID when the WebSocket cannot open", async () => {
    const ws = fakeSockets();
    const streams: StreamBody[] = [];
    const { fetch, requests } = fakeFetch({
      "GET /events": (_r, signal) => {
        const s = new StreamBody();
        streams.push(s);
        return sse(s, signal);
      },
    });
    const got: number[] = [];
    const conn = new SyncConnection({
      baseUrl: "http://127.0.0.1:9",
      token: "tok",
      since: 3,
      WebSocket: ws.ctor,
      fetch,
      reconnectBackoffMs: 2,
      random: () => 0,
    });
    cleanups.push(() => conn.close());
    conn.onChange((c) => got.push(c.seq));
    conn.connect();
    ws.last().fail();
    await until(() => streams.length === 1, 500, "SSE");
    expect(requests[0]!.url.toString()).toBe("http://127.0.0.1:9/events?since=3&token=tok");
    streams[0]!.write(`id: 4\ndata: ${change(4)}\n\nid: 3\ndata: ${change(3)}\n\nid: 5\ndata: ${change(5)}\n\n`);
    await until(() => got.length === 2, 500, "changes");
    expect(got).toEqual([4, 5]);
    expect(conn.transport).toBe("sse");
    streams[0]!.end();
    await until(() => streams.length === 2, 500, "SSE reconnect");
    expect(requests[1]!.headers["last-event-id"]).toBe("5");
    const resyncs: ResyncRequiredError[] = [];
    conn.onResync((e) => resyncs.push(e));
    streams[1]!.write('event: resync\ndata: {"code":"RESYNC_REQUIRED","oldest_seq":90}\n\n');
    await until(() => resyncs.length === 1, 500, "resync");
    expect(resyncs[0]!.oldestSeq).toBe(90);
  });
});
