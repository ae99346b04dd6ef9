/**
 * Reconnect backoff: 500 ms doubling to 10 s (by default), each delay drawn with jitter
 * from [nominal * (1 - jitter), nominal] so that many clients dropped at once do not come
 * back in lockstep. The random source is injectable for tests.
 */

export interface BackoffOptions {
  /** First delay in ms (default 500). */
  initialMs?: number;
  /** Largest nominal delay in ms (default 10 000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of the nominal delay that is randomized, 0 to 1 (default 0.5). */
  jitter?: number;
  /** Uniform random in [0, 1) (default `Math.random`). */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = Math.max(0, options.initialMs ?? 500);
    this.maxMs = Math.max(this.initialMs, options.maxMs ?? 10_000);
    this.factor = Math.max(1, options.factor ?? 2);
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
    this.random = options.random ?? Math.random;
  }

  /** How many delays have been handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The nominal (jitter-free) delay of attempt `n` (0-based). */
  nominal(n: number): number {
    return Math.min(this.maxMs, this.initialMs * this.factor ** n);
  }

  /** The next delay in ms, in [nominal * (1 - jitter), nominal]. */
  next(): number {
    const nominal = this.nominal(this.attempt);
    this.attempt += 1;
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.round(nominal * (1 - this.jitter * r));
  }

  /** Start over at the initial delay (after a connection proved healthy). */
  reset(): void {
    this.attempt = 0;
  }
}
