// Patch format 2 (`delta=2`) as shard/src/codec/delta_v2.rs and docs/PROTOCOL.md define it:
// the documented example, each shape, the Rust tests' error cases, MessagePack bytes as the
// server writes them, and random round trips against a diff written here by the format's
// rules (through MessagePack, so the values are what a socket delivers).
import { decode, encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { decodeMsgpackFrame } from "../src/codec.js";
import { type PatchV2, applyPatchV2 } from "../src/delta.js";
import { DeltaError } from "../src/errors.js";

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

const p = (v: unknown) => v as PatchV2;

describe("applyPatchV2", () => {
  it("the example of docs/PROTOCOL.md", () => {
    const base = deepFreeze({
      players: [
        { id: "p1", x: 1.0 },
        { id: "p2", x: 5.0 },
      ],
      round: 3,
    });
    const patch = JSON.parse('{"players": [1, 2, 1, {"x": 5.5}], "round": [2]}') as PatchV2;
    expect(applyPatchV2(base, patch)).toEqual({
      players: [
        { id: "p1", x: 1.0 },
        { id: "p2", x: 5.5 },
      ],
    });
  });

  it("scalars replace, [0, v] replaces with anything, new keys take replacements", () => {
    expect(applyPatchV2({ a: 1 }, p({ a: 2 }))).toEqual({ a: 2 });
    expect(applyPatchV2({ a: 1 }, p({ a: null }))).toEqual({ a: null });
    expect(applyPatchV2({ a: [1] }, p({ a: "now a string" }))).toEqual({ a: "now a string" });
    expect(applyPatchV2({ a: { b: 1 } }, p({ a: [0, [1]] }))).toEqual({ a: [1] });
    expect(applyPatchV2({ a: 1 }, p({ z: [0, { new: [true, null] }] }))).toEqual({ a: 1, z: { new: [true, null] } });
    expect(applyPatchV2({ a: 1 }, p({ z: 0 }))).toEqual({ a: 1, z: 0 });
    expect(applyPatchV2([1, 2], p([0, { a: 1 }]))).toEqual({ a: 1 });
    expect(applyPatchV2({ a: 1 }, p([0, null]))).toBeNull(); // the whole snapshot replaced by null
    expect(applyPatchV2(7, p("s"))).toBe("s");
  });

  it("a nil body means unchanged", () => {
    const base = { a: 1 };
    expect(applyPatchV2(base, null)).toBe(base);
    expect(applyPatchV2(base, undefined)).toBe(base);
  });

  it("array patches truncate, patch and append; [2] removes keys", () => {
    expect(applyPatchV2([1, 2, 3], p([1, 1]))).toEqual([1]);
    expect(applyPatchV2([1, 2], p([1, 4, 2, 3, 3, [0, [4]]]))).toEqual([1, 2, 3, [4]]);
    expect(applyPatchV2([{ x: 1 }, { x: 2 }], p([1, 2, 1, { x: 3 }]))).toEqual([{ x: 1 }, { x: 3 }]);
    expect(applyPatchV2([], p([1, 2, 0, [0, []], 1, [0, {}]]))).toEqual([[], {}]);
    expect(applyPatchV2({ a: { x: 1 }, b: 2 }, p({ a: [2], c: [0, { x: 1 }] }))).toEqual({ b: 2, c: { x: 1 } });
    const nested = { k: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };
    expect(applyPatchV2<typeof nested>(nested, p({ k: [1, 10, 9, 11] })).k[9]).toBe(11);
  });

  it("never modifies the base and shares the unchanged parts", () => {
    const base = deepFreeze({ a: { deep: [1, 2] }, b: [{ id: "x", v: 1 }, { id: "y", v: 2 }], c: 3 });
    const out = applyPatchV2<typeof base>(base, p({ b: [1, 2, 1, { v: 5 }], c: 4 }));
    expect(out).toEqual({ a: { deep: [1, 2] }, b: [{ id: "x", v: 1 }, { id: "y", v: 5 }], c: 4 });
    expect(out.a).toBe(base.a);
    expect(out.b[0]).toBe(base.b[0]);
  });

  it("a __proto__ key is an ordinary key", () => {
    const patch = JSON.parse('{"__proto__": [0, {"polluted": true}]}') as PatchV2;
    const out = applyPatchV2<Record<string, unknown>>({}, patch);
    expect(Object.keys(out)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  // The mismatched_patches_are_errors cases of delta_v2/tests.rs.
  const object = { k: 1 };
  const cases: [unknown, unknown, DeltaError["kind"], string?][] = [
    [[1], object, "NotAnObject"],
    [3, [1, 0], "NotAnArray"],
    [{}, { k: object }, "NotAnObject"],
    [{}, { k: [2] }, "MissingKey", "removed key is absent"],
    [[0], [1, 6, 5, 1], "IndexOutOfRange", "array index 5 out of range for length 1"],
    [[0, 1, 2], [1, 2, 2, 1], "IndexOutOfRange", "array index 2 out of range for length 2"],
    [[0, 1], [1, 2, 1, 1, 1, 2], "IndexNotIncreasing"],
    [[0], [1, 3], "LengthMismatch", "array patch ends at length 1, expected 3"],
    [[0], [1, 1, 0, [1, 0]], "NotAnArray"],
    [[0], [1, 2, 1, object], "NotAnObject"],
    [{ a: 1, b: [1] }, { a: [2], b: object }, "NotAnObject"],
  ];
  it.each(cases)("refuses a patch that does not fit: %j with %j", (base, patch, kind, message) => {
    const frozen = deepFreeze(structuredClone(base));
    let caught: unknown;
    try {
      applyPatchV2(frozen, patch as PatchV2);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DeltaError);
    expect((caught as DeltaError).kind).toBe(kind);
    if (message) expect((caught as DeltaError).message).toBe(message);
    expect(frozen).toEqual(base);
  });

  // The malformed_patches_are_refused cases of delta_v2/tests.rs.
  const malformed: unknown[] = [
    [],
    [3],
    [0],
    [0, 1, 2],
    [2],
    [1, [2]],
    [1],
    [1, 2, 0],
    [1, -1],
    [1, 1.5],
    [1, 2, "0", 5],
    ["0", 1],
    { a: [1, 1, 0, [2]] },
    { b: { c: [7] } },
    new Uint8Array([1]),
  ];
  it.each(malformed)("refuses a malformed patch: %j", (patch) => {
    const base = deepFreeze({ a: [1], b: { c: 1 } });
    let caught: unknown;
    try {
      applyPatchV2(Array.isArray(patch) ? [1, 2] : base, patch as PatchV2);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DeltaError);
    expect((caught as DeltaError).kind).toBe("Malformed");
  });

  it("applies a delta frame as the server writes it (MessagePack, float32 values)", () => {
    // The moved_player example of delta_v2/tests.rs, 28 bytes:
    // {"players": [1, 8, 3, {"x": 312.25f32, "y": 7.75f32}]}
    const ascii = (s: string) => [...new TextEncoder().encode(s)];
    const str = (s: string) => [0xa0 | s.length, ...ascii(s)];
    const f32 = (v: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, v);
      return [0xca, ...b];
    };
    const patch = [0x81, str("players"), 0x94, 0x01, 0x08, 0x03, 0x82, str("x"), f32(312.25), str("y"), f32(7.75)].flat();
    expect(patch).toHaveLength(28);
    const frame = decodeMsgpackFrame(new Uint8Array([0x95, 0x02, 0x0b, 0x04, 0x0a, ...patch]));
    expect(frame.kind).toBe(2);
    const players = Array.from({ length: 8 }, (_, i) => ({ id: `p${i}`, x: 100 * i + 0.5, y: 2 * i, score: 10 * i }));
    const base = deepFreeze({ players, pickups: [[1, 2]] });
    const out = applyPatchV2<typeof base>(base, (frame as { body: PatchV2 }).body);
    expect(out.players[3]).toEqual({ id: "p3", x: 312.25, y: 7.75, score: 30 });
    expect(out.players.filter((q, i) => q !== base.players[i])).toHaveLength(1);
    expect(out.pickups).toBe(base.pickups);
    // The bytes of the msgpack_bytes test of delta_v2/tests.rs.
    expect(applyPatchV2({ a: 0, b: 1 }, decode(new Uint8Array([0x82, 0xa1, 0x61, 0xc0, 0xa1, 0x62, 0x91, 0x02])) as PatchV2)).toEqual({
      a: null,
    });
    expect(applyPatchV2([0, 0], decode(new Uint8Array([0x94, 0x01, 0x03, 0x02, 0xca, 0x3f, 0xc0, 0x00, 0x00])) as PatchV2)).toEqual([
      0, 0, 1.5,
    ]);
    expect(applyPatchV2({}, decode(new Uint8Array([0x92, 0x00, 0xc0])) as PatchV2)).toBeNull();
  });
});

// ---- random round trips -----------------------------------------------------------------

type V = null | boolean | number | string | V[] | { [k: string]: V };
const isObj = (v: V): v is { [k: string]: V } => typeof v === "object" && v !== null && !Array.isArray(v);

function equal(a: V, b: V): boolean {
  return JSON.stringify(a) === JSON.stringify(b) && typeof a === typeof b;
}

/** A replacement by `v`: bare for scalars, `[0, v]` for objects and arrays. */
const replace = (v: V): PatchV2 => (typeof v === "object" && v !== null ? [0, v] : v);

/** A diff by the rules of delta_v2.rs (without its size comparison: containers are always patched). */
function diff(base: V, cur: V): PatchV2 | undefined {
  if (isObj(base) && isObj(cur)) {
    const out: { [k: string]: PatchV2 } = {};
    for (const k of Object.keys(cur).sort()) {
      const q = k in base ? diff(base[k]!, cur[k]!) : replace(cur[k]!);
      if (q !== undefined) out[k] = q;
    }
    for (const k of Object.keys(base)) if (!(k in cur)) out[k] = [2];
    return Object.keys(out).length === 0 ? undefined : out;
  }
  if (Array.isArray(base) && Array.isArray(cur)) {
    const out: PatchV2[] = [1, cur.length];
    cur.forEach((c, i) => {
      const q = i < base.length ? diff(base[i]!, c) : replace(c);
      if (q !== undefined) out.push(i, q);
    });
    return out.length === 2 && base.length === cur.length ? undefined : out;
  }
  return equal(base, cur) ? undefined : replace(cur);
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

describe("random round trips (format 2)", () => {
  it("apply(base, diff(base, cur)) == cur for 2,000 pairs through MessagePack, without touching base", () => {
    const r = rng(0x85ebca6b);
    let patched = 0;
    for (let i = 0; i < 2000; i++) {
      const base = deepFreeze(randomValue(r, 4));
      const cur = i % 4 === 0 ? randomValue(r, 4) : mutate(r, base, 4);
      const patch = diff(base, cur);
      if (patch === undefined) {
        expect(equal(base, cur)).toBe(true);
        continue;
      }
      patched += 1;
      // A top-level null replacement goes out as [0, nil]: a nil body means unchanged.
      const wire = decode(encode(patch === null ? [0, null] : patch)) as PatchV2;
      expect(applyPatchV2(base, wire)).toEqual(cur);
    }
    expect(patched).toBeGreaterThan(1000);
  });
});
