import { describe, expect, it } from "vitest";
import { InterpolationBuffer, lerpSnapshot } from "../src/interpolation.js";

interface Snap {
  time_left_secs: number;
  players: { id: string; x: number; y: number; score: number }[];
  pickups: [number, number][];
}
const snap = (t: number, players: [string, number, number][], pickups: [number, number][] = [[1, 1]]): Snap => ({
  time_left_secs: t,
  players: players.map(([id, x, y]) => ({ id, x, y, score: 0 })),
  pickups,
});

describe("lerpSnapshot", () => {
  it("interpolates numbers of entities matched by id, not by index", () => {
    const a = snap(10, [["p1", 0, 0], ["p2", 100, 100]]);
    const b = snap(9, [["p2", 200, 100], ["p1", 10, 20]]); // order changed
    expect(lerpSnapshot(a, b, 0.5)).toEqual(snap(9.5, [["p2", 150, 100], ["p1", 5, 10]]));
  });

  it("takes entities that appear from the newer snapshot and drops those that vanish", () => {
    const a = snap(10, [["p1", 0, 0], ["gone", 5, 5]]);
    const b = snap(10, [["p1", 10, 0], ["new", 7, 7]]);
    expect(lerpSnapshot(a, b, 0.25).players).toEqual([
      { id: "p1", x: 2.5, y: 0, score: 0 },
      { id: "new", x: 7, y: 7, score: 0 },
    ]);
  });

  it("does not slide arrays of plain values (pickups respawn elsewhere)", () => {
    const a = snap(10, [], [[0, 0]]);
    const b = snap(10, [], [[500, 500]]);
    expect(lerpSnapshot(a, b, 0.5).pickups).toEqual([[500, 500]]);
  });

  it("uses another id key", () => {
    const a = { units: [{ uid: 1, hp: 10 }] };
    const b = { units: [{ uid: 1, hp: 20 }] };
    expect(lerpSnapshot(a, b, 0.5, "uid")).toEqual({ units: [{ uid: 1, hp: 15 }] });
  });
});

describe("InterpolationBuffer", () => {
  it("samples between the two snapshots around the render time, clamped at the ends", () => {
    const buf = new InterpolationBuffer<Snap>({ delayMs: 100 });
    buf.push(1000, snap(3, [["p", 0, 0]]), 0);
    buf.push(1050, snap(2, [["p", 10, 0]]), 50);
    buf.push(1100, snap(1, [["p", 30, 0]]), 100);
    expect(buf.sampleAt(900)!.players[0]!.x).toBe(0);
    expect(buf.sampleAt(1025)!.players[0]!.x).toBe(5);
    expect(buf.sampleAt(1075)!.players[0]!.x).toBe(20);
    expect(buf.sampleAt(1200)!.players[0]!.x).toBe(30);
  });

  it("render time = newest server time + local time since it arrived - delay, never backwards", () => {
    const buf = new InterpolationBuffer<Snap>({ delayMs: 100 });
    expect(buf.sample(0)).toBeNull();
    buf.push(1000, snap(3, [["p", 0, 0]]), 500);
    buf.push(1050, snap(2, [["p", 10, 0]]), 550);
    buf.push(1100, snap(1, [["p", 20, 0]]), 600);
    expect(buf.renderTime(600)).toBe(1000);
    expect(buf.renderTime(625)).toBe(1025);
    expect(buf.sample(625)!.players[0]!.x).toBe(5);
    // A late local clock reading never moves the render time back.
    expect(buf.renderTime(610)).toBe(1025);
    // It never runs past the newest snapshot.
    expect(buf.renderTime(10_000)).toBe(1100);
  });

  it("ignores reordered frames, keeps at most maxSnapshots, and takes a custom lerp", () => {
    const calls: number[] = [];
    const buf = new InterpolationBuffer<{ v: number }>({
      maxSnapshots: 2,
      lerp: (a, b, t) => {
        calls.push(t);
        return { v: a.v + (b.v - a.v) * t };
      },
    });
    buf.push(100, { v: 1 }, 0);
    buf.push(200, { v: 2 }, 0);
    buf.push(150, { v: 99 }, 0); // older than the newest: dropped
    buf.push(300, { v: 3 }, 0);
    expect(buf.size).toBe(2);
    expect(buf.sampleAt(100)).toEqual({ v: 2 }); // 100 was evicted: clamped to the oldest held
    expect(buf.sampleAt(250)).toEqual({ v: 2.5 });
    expect(calls).toEqual([0.5]);
  });
});
