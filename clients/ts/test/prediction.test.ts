import { describe, expect, it } from "vitest";
import { Predictor } from "../src/prediction.js";

interface State {
  x: number;
}
interface Move {
  dx: number;
}
// A pure step: each input moves x by dx.
const step = (s: State, m: Move): State => ({ x: s.x + m.dx });

describe("Predictor", () => {
  it("applies inputs locally before any snapshot and after one", () => {
    const p = new Predictor(step);
    expect(p.input(1, { dx: 1 })).toBeNull(); // nothing to predict from yet
    expect(p.reconcile({ x: 0 }, null)).toEqual({ x: 1 }); // input 1 not acknowledged: replayed
    expect(p.input(2, { dx: 10 })).toEqual({ x: 11 });
    expect(p.predicted).toEqual({ x: 11 });
  });

  it("drops acknowledged inputs and replays the rest over the authoritative state", () => {
    const p = new Predictor(step);
    p.reconcile({ x: 0 }, null);
    p.input(1, { dx: 1 });
    p.input(2, { dx: 2 });
    p.input(3, { dx: 4 });
    expect(p.predicted).toEqual({ x: 7 });
    // The server processed 1 and 2 (and moved us to 3, its truth); 3 is still in flight.
    expect(p.reconcile({ x: 3 }, 2)).toEqual({ x: 7 });
    expect(p.pending.map((i) => i.seq)).toEqual([3]);
    // A correction: the server says x = 100 after input 3.
    expect(p.reconcile({ x: 100 }, 3)).toEqual({ x: 100 });
    expect(p.pending).toHaveLength(0);
  });

  it("an old ack drops nothing new; a null ack drops nothing", () => {
    const p = new Predictor(step);
    p.reconcile({ x: 0 }, null);
    p.input(5, { dx: 1 });
    p.input(6, { dx: 1 });
    expect(p.reconcile({ x: 0 }, 4)).toEqual({ x: 2 });
    expect(p.reconcile({ x: 0 }, null)).toEqual({ x: 2 });
  });

  it("does not modify the authoritative state", () => {
    const p = new Predictor(step);
    const auth = Object.freeze({ x: 1 });
    p.input(1, { dx: 1 });
    expect(p.reconcile(auth, null)).toEqual({ x: 2 });
    expect(p.authoritative).toBe(auth);
  });

  it("keeps at most maxPending inputs and resets", () => {
    const p = new Predictor(step, 3);
    for (let i = 1; i <= 5; i++) p.input(i, { dx: 1 });
    expect(p.pending.map((i) => i.seq)).toEqual([3, 4, 5]);
    p.reconcile({ x: 0 }, null);
    p.reset();
    expect(p.pending).toHaveLength(0);
    expect(p.predicted).toEqual({ x: 0 });
  });
});
