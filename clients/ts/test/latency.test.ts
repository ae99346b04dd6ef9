import { describe, expect, it } from "vitest";
import { LatencyTracker } from "../src/latency.js";

describe("LatencyTracker", () => {
  it("measures input -> ack round trips with an EWMA and jitter", () => {
    const l = new LatencyTracker({ alpha: 0.5, jitterAlpha: 0.5 });
    l.sent(1, 0);
    expect(l.acked(1, 40)).toBe(40);
    l.sent(2, 100);
    expect(l.acked(2, 160)).toBe(60);
    expect(l.stats).toEqual({ lastMs: 60, avgMs: 50, jitterMs: 10, samples: 2 });
  });

  it("an ack covering several inputs measures the newest; repeated acks measure nothing", () => {
    const l = new LatencyTracker();
    l.sent(1, 0);
    l.sent(2, 10);
    l.sent(3, 20);
    expect(l.acked(2, 50)).toBe(40);
    expect(l.acked(2, 70)).toBeNull();
    expect(l.acked(3, 80)).toBe(60);
    expect(l.stats.samples).toBe(2);
  });

  it("an ack of nothing sent (another socket's) measures nothing", () => {
    const l = new LatencyTracker();
    expect(l.acked(9, 10)).toBeNull();
    expect(l.stats).toEqual({ lastMs: null, avgMs: null, jitterMs: 0, samples: 0 });
  });
});
