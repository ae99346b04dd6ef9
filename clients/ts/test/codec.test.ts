// Frame layouts written out byte by byte from shard/src/codec/server.rs and client.rs, so
// these tests fail if the decoders drift from what the server writes.
import { describe, expect, it } from "vitest";
import {
  decodeBinarySnapshot,
  decodeMsgpackFrame,
  decodeTextSnapshot,
  encodeBaseAck,
  encodeJsonInput,
  encodeMsgpackInput,
} from "../src/codec.js";

const ascii = (s: string) => [...new TextEncoder().encode(s)];
/** MessagePack fixstr. */
const str = (s: string) => [0xa0 | s.length, ...ascii(s)];
const bytes = (...parts: (number | number[])[]) => new Uint8Array(parts.flat());

describe("compat binary frames (u64 BE tick + snapshot JSON)", () => {
  it("reads the tick as a big-endian u64 across both 32-bit halves", () => {
    // tick = 2^32 + 2 = 4294967298, then the JSON the codec writes with the ack spliced first.
    const json = '{"ack":17,"time_left_secs":299.5,"players":[{"id":"p1","x":1.5,"y":2,"score":0}]}';
    const frame = bytes([0, 0, 0, 1, 0, 0, 0, 2], ascii(json));
    const { tick, snapshot } = decodeBinarySnapshot<{ ack: number; players: unknown[] }>(frame.buffer);
    expect(tick).toBe(4294967298);
    expect(snapshot.ack).toBe(17);
    expect(snapshot.players).toEqual([{ id: "p1", x: 1.5, y: 2, score: 0 }]);
  });

  it("accepts views into a larger buffer (Node Buffers, subarrays)", () => {
    const inner = bytes([0xff, 0xff], [0, 0, 0, 0, 0, 0, 0x01, 0x2c], ascii('{"ack":null}'));
    const { tick, snapshot } = decodeBinarySnapshot(inner.subarray(2));
    expect(tick).toBe(300);
    expect(snapshot).toEqual({ ack: null });
  });

  it("refuses a frame shorter than the tick", () => {
    expect(() => decodeBinarySnapshot(bytes([0, 0, 0, 1]))).toThrow(/too short/);
  });
});

describe("compat text frames", () => {
  it("decodes {tick, snapshot}", () => {
    const { tick, snapshot } = decodeTextSnapshot('{"tick":42,"snapshot":{"ack":null,"players":[]}}');
    expect(tick).toBe(42);
    expect(snapshot).toEqual({ ack: null, players: [] });
  });

  it("refuses other shapes", () => {
    expect(() => decodeTextSnapshot('{"snapshot":{}}')).toThrow();
    expect(() => decodeTextSnapshot("[1,2]")).toThrow();
    expect(() => decodeTextSnapshot("not json")).toThrow();
  });
});

describe("MessagePack server frames [kind, tick, ack, base, body]", () => {
  // {"players":[{"id":"p1","x":1.5f32,"y":2.25f64,"score":3}]} as rmp_serde::to_vec_named writes it
  // (f32 fields are float32, 0xca).
  const body = [
    0x81, str("players"), 0x91, 0x84,
    str("id"), str("p1"),
    str("x"), 0xca, 0x3f, 0xc0, 0x00, 0x00,
    str("y"), 0xcb, 0x40, 0x02, 0, 0, 0, 0, 0, 0,
    str("score"), 0x03,
  ].flat();

  it("kind 1: a full snapshot with tick and ack", () => {
    // tick 256 is a uint16 (0xcd), ack 17 a positive fixint, base nil.
    const frame = decodeMsgpackFrame(bytes([0x95, 0x01, 0xcd, 0x01, 0x00, 0x11, 0xc0], body));
    expect(frame).toEqual({
      kind: 1,
      tick: 256,
      ack: 17,
      body: { players: [{ id: "p1", x: 1.5, y: 2.25, score: 3 }] },
    });
  });

  it("kind 1 before the first input: ack nil", () => {
    const frame = decodeMsgpackFrame(bytes([0x95, 0x01, 0x05, 0xc0, 0xc0, 0x80]));
    expect(frame).toEqual({ kind: 1, tick: 5, ack: null, body: {} });
  });

  it("ticks beyond 32 bits (uint64, 0xcf)", () => {
    const frame = decodeMsgpackFrame(bytes([0x95, 0x01, 0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0x07, 0xc0, 0xc0, 0xc0]));
    expect(frame.kind).toBe(1);
    expect((frame as { tick: number }).tick).toBe(2 ** 32 + 7);
  });

  it("kind 2: a delta against base, and a nil body (unchanged)", () => {
    // [2, 7, 3, 5, {"o":{"x":{"r":1.5f32}}}]
    const patch = [0x81, str("o"), 0x81, str("x"), 0x81, str("r"), 0xca, 0x3f, 0xc0, 0, 0].flat();
    expect(decodeMsgpackFrame(bytes([0x95, 0x02, 0x07, 0x03, 0x05], patch))).toEqual({
      kind: 2,
      tick: 7,
      ack: 3,
      base: 5,
      body: { o: { x: { r: 1.5 } } },
    });
    expect(decodeMsgpackFrame(bytes([0x95, 0x02, 0x08, 0xc0, 0x05, 0xc0]))).toEqual({
      kind: 2,
      tick: 8,
      ack: null,
      base: 5,
      body: null,
    });
  });

  it("kind 2 without a base is malformed", () => {
    expect(() => decodeMsgpackFrame(bytes([0x95, 0x02, 0x08, 0xc0, 0xc0, 0xc0]))).toThrow(/base/);
  });

  it("kind 3: match end with the outcome", () => {
    // [3, 600, nil, nil, {"reason":"score_limit","winner":"p1","scores":[["p1",25]]}]
    const outcome = [0x83, str("reason"), str("score_limit"), str("winner"), str("p1"), str("scores"), 0x91, 0x92, str("p1"), 25].flat();
    expect(decodeMsgpackFrame(bytes([0x95, 0x03, 0xcd, 0x02, 0x58, 0xc0, 0xc0], outcome))).toEqual({
      kind: 3,
      tick: 600,
      body: { reason: "score_limit", winner: "p1", scores: [["p1", 25]] },
    });
  });

  it("kind 4: stopped or refused, with its code", () => {
    const frame = decodeMsgpackFrame(bytes([0x95, 0x04, 0x00, 0xc0, 0xc0, 0x81], str("code"), str("full")));
    expect(frame).toMatchObject({ kind: 4, code: "full" });
  });

  it("kind 5: joined {key, resumed}", () => {
    const frame = decodeMsgpackFrame(bytes([0x95, 0x05, 0x00, 0xc0, 0xc0, 0x82], str("key"), 0x07, str("resumed"), 0xc3));
    expect(frame).toMatchObject({ kind: 5, key: 7, resumed: true });
  });

  it("refuses frames that are not five-element arrays or have an unknown kind", () => {
    expect(() => decodeMsgpackFrame(bytes([0x94, 0x01, 0x00, 0xc0, 0xc0]))).toThrow();
    expect(() => decodeMsgpackFrame(bytes([0x95, 0x09, 0x00, 0xc0, 0xc0, 0xc0]))).toThrow(/kind/);
    expect(() => decodeMsgpackFrame(bytes([0x95, 0x01, 0xff, 0xc0, 0xc0, 0xc0]))).toThrow(/tick/);
  });
});

describe("client frames", () => {
  it("compat: {input, client_seq} JSON", () => {
    expect(encodeJsonInput({ dx: 1, dy: -0.5 }, 7)).toBe('{"input":{"dx":1,"dy":-0.5},"client_seq":7}');
    expect(encodeJsonInput(undefined)).toBe('{"input":null}');
  });

  it("MessagePack: [client_seq, base, input]", () => {
    // [9, nil, {"dx": 0.5}] with 0.5 as float64 (the server's f32 field accepts it).
    expect([...encodeMsgpackInput(9, null, { dx: 0.5 })]).toEqual(
      [0x93, 0x09, 0xc0, 0x81, str("dx"), 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0].flat(),
    );
    expect([...encodeMsgpackInput(1, 300, { dx: 1 })]).toEqual([0x93, 0x01, 0xcd, 0x01, 0x2c, 0x81, str("dx"), 0x01].flat());
  });

  it("a pure base acknowledgement is [nil, tick, nil]", () => {
    expect([...encodeBaseAck(300)]).toEqual([0x93, 0xc0, 0xcd, 0x01, 0x2c, 0xc0]);
    expect([...encodeBaseAck(5)]).toEqual([0x93, 0xc0, 0x05, 0xc0]);
  });
});
