// Delta patches as shard/src/codec/delta.rs defines them: its documented examples, its
// error cases, MessagePack bytes written by hand, and random round trips against a diff
// written here by the rules of the Rust `diff`.
import { describe, expect, it } from "vitest";
import { decodeMsgpackFrame } from "../src/codec.js";
import { type Patch, applyPatch } from "../src/delta.js";
import { DeltaError } from "../src/errors.js";

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

describe("applyPatch", () => {
  it("the module-doc example of delta.rs", () => {
    const base = deepFreeze({
      players: [
        { id: "p1", x: 1.0, y: 2.0 },
        { id: "p2", x: 5.0, y: 2.0 },
      ],
      round: 3,
    });
    const patch = JSON.parse('{"o":{"players":{"a":[[1,{"o":{"x":{"r":5.5}}}]],"n":2}},"d":["round"]}') as Patch;
    expect(applyPatch(base, patch)).toEqual({
      players: [
        { id: "p1", x: 1.0, y: 2.0 },
        { id: "p2", x: 5.5, y: 2.0 },
      ],
    });
  });

  it("the diff_shapes example: removal, element patch, append", () => {
    const base = {
      keep: 1,
      old: 2,
      list: [
        { id: "a-long-id", v: 1 },
        { id: "b-long-id", v: 2 },
      ],
    };
    const patch = JSON.parse(
      '{"o":{"list":{"a":[[1,{"o":{"v":{"r":3}}}],[2,{"r":{"id":"c"}}]],"n":3}},"d":["old"]}',
    ) as Patch;
    expect(applyPatch(base, patch)).toEqual({
      keep: 1,
      list: [
        { id: "a-long-id", v: 1 },
        { id: "b-long-id", v: 3 },
        { id: "c" },
      ],
    });
  });

  it("{r: null} is a replacement, not an absent key; a nil patch means unchanged", () => {
    expect(applyPatch({ a: 1 }, { r: null })).toBeNull();
    expect(applyPatch({ a: { b: 1 } }, { o: { a: { r: null } } })).toEqual({ a: null });
    const base = { a: 1 };
    expect(applyPatch(base, null)).toBe(base);
  });

  it("shrinks and grows arrays, replaces across types, adds keys", () => {
    expect(applyPatch([1, 2, 3], { a: [], n: 1 })).toEqual([1]);
    expect(applyPatch([1, 2], { a: [[2, { r: 3 }], [3, { r: [4] }]], n: 4 })).toEqual([1, 2, 3, [4]]);
    expect(applyPatch({ a: [1] }, { o: { a: { r: "now a string" } } })).toEqual({ a: "now a string" });
    expect(applyPatch({ a: 1 }, { o: { z: { r: { new: [true, null] } } } })).toEqual({ a: 1, z: { new: [true, null] } });
    expect(applyPatch({ a: { x: 1 }, b: 2 }, { o: { c: { r: { x: 1 } } }, d: ["a"] })).toEqual({ b: 2, c: { x: 1 } });
    // A removed key re-added in the same patch starts out absent.
    expect(applyPatch({ k: { old: 1 } }, { o: { k: { r: { fresh: 2 } } }, d: ["k"] })).toEqual({ k: { fresh: 2 } });
  });

  it("never modifies the base and shares the unchanged parts", () => {
    const base = deepFreeze({ a: { deep: [1, 2] }, b: [{ id: "x", v: 1 }], c: 3 });
    const out = applyPatch<typeof base>(base, { o: { c: { r: 4 } } });
    expect(out).toEqual({ a: { deep: [1, 2] }, b: [{ id: "x", v: 1 }], c: 4 });
    expect(out.a).toBe(base.a);
    expect(out.b).toBe(base.b);
  });

  // The mismatched_patches_are_errors cases of delta.rs.
  const object: Patch = { o: { k: { r: 1 } } };
  const array = (a: [number, Patch][], n: number): Patch => ({ a, n });
  const cases: [unknown, Patch, DeltaError["kind"], string?][] = [
    [[1], object, "NotAnObject"],
    [3, array([], 0), "NotAnArray"],
    [{}, { o: { k: object } }, "NotAnObject"],
    [{ k: {} }, { o: { k: object }, d: ["k"] }, "NotAnObject"],
    [[0], array([[5, { r: 1 }]], 6), "IndexOutOfRange", "array index 5 out of range for length 1"],
    [[0, 1, 2], array([[2, { r: 1 }]], 2), "IndexOutOfRange", "array index 2 out of range for length 2"],
    [[0, 1], array([[1, { r: 1 }], [1, { r: 2 }]], 2), "IndexNotIncreasing"],
    [[0], array([], 3), "LengthMismatch", "array patch ends at length 1, expected 3"],
    [[0], array([[0, array([], 0)]], 1), "NotAnArray"],
    [[0], array([[1, object]], 2), "NotAnObject"],
  ];
  it.each(cases)("refuses a patch that does not fit: %j with %j", (base, patch, kind, message) => {
    const frozen = deepFreeze(structuredClone(base));
    let caught: unknown;
    try {
      applyPatch(frozen, patch);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DeltaError);
    expect((caught as DeltaError).kind).toBe(kind);
    if (message) expect((caught as DeltaError).message).toBe(message);
    expect(frozen).toEqual(base);
  });

  it("refuses malformed patches", () => {
    expect(() => applyPatch({}, {} as Patch)).toThrow(DeltaError);
    expect(() => applyPatch([], { a: [[-1, { r: 1 }]], n: 0 } as Patch)).toThrow(DeltaError);
    expect(() => applyPatch({}, { o: [] } as unknown as Patch)).toThrow(DeltaError);
  });

  it("applies a delta frame as the server writes it (MessagePack, float32 values)", () => {
    // Base: the moved_player example. Frame: [2, 11, 4, 10, {"o":{"players":{"a":[[1,{"o":{"x":{"r":312.25f32},"y":{"r":7.75f32}}}]],"n":2}}}]
    const ascii = (s: string) => [...new TextEncoder().encode(s)];
    const str = (s: string) => [0xa0 | s.length, ...ascii(s)];
    const f32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, v);
      return [0xca, ...b];
    };
    const patch = [
      0x81, str("o"), 0x81, str("players"),
      0x82, str("a"), 0x91, 0x92, 0x01,
      0x81, str("o"), 0x82, str("x"), 0x81, str("r"), f32(312.25), str("y"), 0x81, str("r"), f32(7.75),
      str("n"), 0x02,
    ].flat();
    const frame = decodeMsgpackFrame(new Uint8Array([0x95, 0x02, 0x0b, 0x04, 0x0a, ...patch]));
    expect(frame.kind).toBe(2);
    const base = deepFreeze({
      players: [
        { id: "p0", x: 0.5, y: 0, score: 0 },
        { id: "p1", x: 100.5, y: 2, score: 10 },
      ],
    });
    expect(applyPatch(base, (frame as { body: Patch }).body)).toEqual({
      players: [
        { id: "p0", x: 0.5, y: 0, score: 0 },
        { id: "p1", x: 312.25, y: 7.75, score: 10 },
      ],
    });
  });
});

// ---- random round trips -----------------------------------------------------------------

type V = null | boolean | number | string | V[] | { [k: string]: V };
const isObj = (v: V): v is { [k: string]: V } => typeof v === "object" && v !== null && !Array.isArray(v);

function equal(a: V, b: V): boolean {
  return JSON.stringify(a) === JSON.stringify(b) && typeof a === typeof b;
}

/** A diff by the rules of delta.rs (without its size estimate: arrays are always patched). */
function diff(base: V, cur: V): Patch | null {
  if (isObj(base) && isObj(cur)) {
    const o: Record<string, Patch> = {};
    for (const k of Object.keys(cur).sort()) {
      const p = k in base ? diff(base[k]!, cur[k]!) : { r: cur[k] };
      if (p) o[k] = p;
    }
    const d = Object.keys(base).filter((k) => !(k in cur));
    if (Object.keys(o).length === 0 && d.length === 0) return null;
    return d.length ? { o, d } : { o };
  }
  if (Array.isArray(base) && Array.isArray(cur)) {
    const a: [number, Patch][] = [];
    cur.forEach((c, i) => {
      const p = i < base.length ? diff(base[i]!, c) : { r: c };
      if (p) a.push([i, p]);
    });
    if (a.length === 0 && base.length === cur.length) return null;
    return { a, n: cur.length };
  }
  return equal(base, cur) ? null : { r: cur };
}

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function randomValue(r: (n: number) => number, depth: number): V {
  if (depth === 0 || r(3) === 0) {
    return [null, true, false, r(300), -r(70000) - 1, (r(2000) - 1000) / 8, "a", "player-1", ""][r(9)]!;
  }
  const len = r(5);
  if (r(2) === 0) return Array.from({ length: len }, () => randomValue(r, depth - 1));
  const out: { [k: string]: V } = {};
  for (let i = 0; i < len; i++) out["abcdef"[r(6)]!] = randomValue(r, depth - 1);
  return out;
}

function mutate(r: (n: number) => number, v: V, depth: number): V {
  if (r(6) === 0) return randomValue(r, depth);
  if (Array.isArray(v)) {
    const items = v.map((x) => (r(3) === 0 ? mutate(r, x, Math.max(0, depth - 1)) : x));
    const k = r(4);
    if (k === 0) items.length = r(items.length + 1);
    if (k === 1) items.push(randomValue(r, Math.max(0, depth - 1)));
    return items;
  }
  if (isObj(v)) {
    const out = { ...v };
    for (const k of Object.keys(out)) if (r(3) === 0) out[k] = mutate(r, out[k]!, Math.max(0, depth - 1));
    const key = "abcdefg"[r(7)]!;
    const k = r(3);
    if (k === 0) delete out[key];
    if (k === 1) out[key] = randomValue(r, Math.max(0, depth - 1));
    return out;
  }
  return r(2) === 0 ? v : randomValue(r, 0);
}

describe("random round trips", () => {
  it("apply(base, diff(base, cur)) == cur for 2,000 pairs, without touching base", () => {
    const r = rng(0x9e3779b9);
    let patched = 0;
    for (let i = 0; i < 2000; i++) {
      const base = deepFreeze(randomValue(r, 4));
      const cur = i % 4 === 0 ? randomValue(r, 4) : mutate(r, base, 4);
      const patch = diff(base, cur);
      if (patch === null) {
        expect(equal(base, cur)).toBe(true);
        continue;
      }
      patched += 1;
      expect(applyPatch(base, patch)).toEqual(cur);
    }
    expect(patched).toBeGreaterThan(1000);
  });
});
