/**
 * Latency and jitter from the input -> ack round trip: the time from sending input N to
 * receiving the first snapshot whose ack is >= N (it includes up to one tick of waiting
 * for the server's next step, which is what a player feels). The average is an EWMA
 * (weight 1/8, as TCP's SRTT); jitter is the EWMA (weight 1/16, as RFC 3550) of the
 * difference between consecutive samples.
 */

export interface LatencyStats {
  /** The newest round trip in ms (`null` before the first ack). */
  lastMs: number | null;
  /** Smoothed round trip in ms. */
  avgMs: number | null;
  /** Smoothed variation between consecutive round trips, in ms. */
  jitterMs: number;
  /** Round trips measured. */
  samples: number;
}

export interface LatencyOptions {
  /** EWMA weight of a new sample (default 0.125). */
  alpha?: number;
  /** EWMA weight for jitter (default 0.0625). */
  jitterAlpha?: number;
  /** Send times kept at most (default 1024). */
  maxPending?: number;
}

export class LatencyTracker {
  private readonly alpha: number;
  private readonly jitterAlpha: number;
  private readonly maxPending: number;
  private readonly sentAt = new Map<number, number>();
  private last: number | null = null;
  private avg: number | null = null;
  private jitter = 0;
  private count = 0;
  private highestAck = -1;

  constructor(options: LatencyOptions = {}) {
    this.alpha = options.alpha ?? 0.125;
    this.jitterAlpha = options.jitterAlpha ?? 0.0625;
    this.maxPending = options.maxPending ?? 1024;
  }

  /** Input `seq` was sent at local time `at` (ms). */
  sent(seq: number, at: number): void {
    this.sentAt.set(seq, at);
    if (this.sentAt.size > this.maxPending) {
      const oldest = this.sentAt.keys().next().value;
      if (oldest !== undefined) this.sentAt.delete(oldest);
    }
  }

  /**
   * A snapshot acknowledging `ack` arrived at local time `at`: returns the round trip of
   * the newest input it acknowledges (or `null` when it acknowledges nothing new).
   */
  acked(ack: number, at: number): number | null {
    if (ack <= this.highestAck) return null;
    this.highestAck = ack;
    let newest: number | null = null;
    let sentTime = 0;
    for (const [seq, time] of this.sentAt) {
      if (seq > ack) continue;
      if (newest === null || seq > newest) {
        newest = seq;
        sentTime = time;
      }
      this.sentAt.delete(seq);
    }
    if (newest === null) return null;
    const rtt = Math.max(0, at - sentTime);
    this.record(rtt);
    return rtt;
  }

  private record(rtt: number): void {
    if (this.last !== null) {
      const d = Math.abs(rtt - this.last);
      this.jitter += (d - this.jitter) * this.jitterAlpha;
    }
    this.avg = this.avg === null ? rtt : this.avg + (rtt - this.avg) * this.alpha;
    this.last = rtt;
    this.count += 1;
  }

  /** Forgets the send times (a new subscription); the figures so far are kept. */
  resetPending(): void {
    this.sentAt.clear();
    this.highestAck = -1;
  }

  get stats(): LatencyStats {
    return { lastMs: this.last, avgMs: this.avg, jitterMs: this.jitter, samples: this.count };
  }
}
