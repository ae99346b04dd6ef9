import { describe, expect, it } from "vitest";
import { Backoff } from "../src/backoff.js";

describe("Backoff", () => {
  it("doubles from 500 ms to a 10 s cap (nominal schedule)", () => {
    const b = new Backoff();
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((n) => b.nominal(n))).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it("draws each delay from [nominal / 2, nominal] with the default jitter", () => {
    const low = new Backoff({ random: () => 0.999999 });
    const high = new Backoff({ random: () => 0 });
    const lows = Array.from({ length: 7 }, () => low.next());
    const highs = Array.from({ length: 7 }, () => high.next());
    expect(highs).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(lows).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    let seed = 1;
    const lcg = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    const b = new Backoff({ random: lcg });
    for (let i = 0; i < 200; i++) {
      const nominal = b.nominal(b.attempts);
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(nominal / 2);
      expect(d).toBeLessThanOrEqual(nominal);
    }
  });

  it("honours the first delay, cap and jitter given, and resets", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 350, jitter: 0, random: () => 0.7 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 350, 350]);
    b.reset();
    expect(b.next()).toBe(100);
  });
});
