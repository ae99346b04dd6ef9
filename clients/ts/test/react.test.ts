// useShard through React itself (react-test-renderer), over scripted sockets: the stock
// hook's return shape, re-renders on snapshots and connection changes, stable send and
// close, and the socket closed on unmount.
import { createElement } from "react";
import TestRenderer, { act } from "react-test-renderer";
import { describe, expect, it } from "vitest";
import { type UseShardReturn, useShard } from "../src/react.js";
import { fakeSockets } from "./fakes.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const frame = (tick: number, snapshot: unknown) => {
  const body = new TextEncoder().encode(JSON.stringify(snapshot));
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(tick));
  out.set(body, 8);
  return out;
};

describe("useShard", () => {
  it("renders snapshots, tracks the connection, sends, and closes on unmount", async () => {
    const ws = fakeSockets();
    const renders: UseShardReturn<{ ack: number | null; n: number }, { dx: number }>[] = [];
    function Game({ shardId }: { shardId: string }) {
      const shard = useShard<{ ack: number | null; n: number }, { dx: number }>(shardId, {
        subscriberId: "u1",
        token: "tok",
        baseUrl: "game.example.com",
        WebSocket: ws.ctor,
      });
      renders.push(shard);
      return null;
    }
    let root!: TestRenderer.ReactTestRenderer;
    await act(async () => {
      root = TestRenderer.create(createElement(Game, { shardId: "m1" }));
    });
    expect(ws.sockets).toHaveLength(1);
    expect(ws.last().url).toBe("ws://game.example.com:4324/?shard=m1&sid=u1");
    expect(renders.at(-1)).toMatchObject({ snapshot: null, tick: 0, connected: false, error: null });

    await act(async () => ws.last().open());
    expect(renders.at(-1)!.connected).toBe(true);
    await act(async () => ws.last().message(frame(12, { ack: null, n: 1 })));
    expect(renders.at(-1)).toMatchObject({ snapshot: { ack: null, n: 1 }, tick: 12, connected: true });

    const { send, close } = renders.at(-1)!;
    expect(send({ dx: 1 })).toBe(1);
    expect(ws.last().sent).toEqual(['{"input":{"dx":1},"client_seq":1}']);
    // A fresh options object on re-render does not reconnect; send and close stay the same.
    await act(async () => root.update(createElement(Game, { shardId: "m1" })));
    expect(ws.sockets).toHaveLength(1);
    expect(renders.at(-1)!.send).toBe(send);
    expect(renders.at(-1)!.close).toBe(close);

    // Another match: the old socket closes, a new one opens, state starts over.
    await act(async () => root.update(createElement(Game, { shardId: "m2" })));
    expect(ws.sockets).toHaveLength(2);
    expect(ws.sockets[0]!.closedByClient).not.toBeNull();
    expect(renders.at(-1)).toMatchObject({ snapshot: null, tick: 0 });

    await act(async () => root.unmount());
    expect(ws.sockets[1]!.closedByClient).not.toBeNull();
  });

  it("an empty shard id connects nothing", async () => {
    const ws = fakeSockets();
    function Idle() {
      useShard("", { subscriberId: "u1", WebSocket: ws.ctor });
      return null;
    }
    await act(async () => {
      TestRenderer.create(createElement(Idle));
    });
    expect(ws.sockets).toHaveLength(0);
  });
});
