/**
 * Snapshot interpolation: snapshots are kept with their server time (tick x tick length)
 * and the local time they arrived; the render time is the newest server time, advanced by
 * the local time elapsed since it arrived, minus a delay (default 100 ms, two ticks at
 * 20 Hz), and never moves backwards. The state drawn is the interpolation between the two
 * snapshots around the render time.
 *
 * The default `lerpSnapshot` interpolates numbers inside objects, matches the elements of
 * arrays of objects by their `id` (entities), and takes everything else (strings, arrays
 * of plain values, entities that appear or vanish) from the newer snapshot. An app can
 * supply its own `lerp`.
 */

export type Lerp<S> = (from: S, to: S, t: number) => S;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The default interpolation between two snapshots, `t` in [0, 1]: numbers are
 * interpolated, objects key by key, arrays of objects with an `idKey` entity by entity;
 * anything else is taken from `to`.
 */
export function lerpSnapshot<S>(from: S, to: S, t: number, idKey = "id"): S {
  return lerpValue(from, to, t, idKey) as S;
}

function lerpValue(a: unknown, b: unknown, t: number, idKey: string): unknown {
  if (typeof a === "number" && typeof b === "number") {
    return Number.isFinite(a) && Number.isFinite(b) ? a + (b - a) * t : b;
  }
  if (Array.isArray(a) && Array.isArray(b)) return lerpArray(a, b, t, idKey);
  if (isObject(a) && isObject(b)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(b)) {
      out[key] = Object.prototype.hasOwnProperty.call(a, key) ? lerpValue(a[key], b[key], t, idKey) : b[key];
    }
    return out;
  }
  return b;
}

function lerpArray(a: unknown[], b: unknown[], t: number, idKey: string): unknown[] {
  const keyed = (xs: unknown[]) => xs.length > 0 && xs.every((x) => isObject(x) && idKey in x);
  if (!keyed(b) || !keyed(a)) return b;
  const before = new Map<unknown, unknown>();
  for (const x of a) before.set((x as Record<string, unknown>)[idKey], x);
  return b.map((x) => {
    const prev = before.get((x as Record<string, unknown>)[idKey]);
    return prev === undefined ? x : lerpValue(prev, x, t, idKey);
  });
}

export interface InterpolationOptions<S> {
  /** How far behind the newest server time to render, in ms (default 100). */
  delayMs?: number;
  /** Snapshots kept (default 32). */
  maxSnapshots?: number;
  /** Custom interpolation (default `lerpSnapshot` with `idKey`). */
  lerp?: Lerp<S>;
  /** The entity id field for the default lerp (default `"id"`). */
  idKey?: string;
}

interface Entry<S> {
  serverTime: number;
  arrival: number;
  snapshot: S;
}

export class InterpolationBuffer<S> {
  readonly delayMs: number;
  private readonly maxSnapshots: number;
  private readonly lerp: Lerp<S>;
  private entries: Entry<S>[] = [];
  private lastRender = -Infinity;

  constructor(options: InterpolationOptions<S> = {}) {
    this.delayMs = options.delayMs ?? 100;
    this.maxSnapshots = Math.max(2, options.maxSnapshots ?? 32);
    const idKey = options.idKey ?? "id";
    this.lerp = options.lerp ?? ((a, b, t) => lerpSnapshot(a, b, t, idKey));
  }

  /** Number of snapshots held. */
  get size(): number {
    return this.entries.length;
  }

  /** The newest server time held, or `null`. */
  get newestServerTime(): number | null {
    return this.entries.at(-1)?.serverTime ?? null;
  }

  /** Adds a snapshot of server time `serverTime` (ms) that arrived at local time `arrival` (ms). */
  push(serverTime: number, snapshot: S, arrival: number): void {
    const last = this.entries.at(-1);
    if (last && serverTime <= last.serverTime) {
      if (serverTime === last.serverTime) last.snapshot = snapshot;
      return; // older than what we hold: a reordered or duplicate frame
    }
    this.entries.push({ serverTime, arrival, snapshot });
    if (this.entries.length > this.maxSnapshots) this.entries.shift();
  }

  /** Forgets everything (a new subscription). */
  clear(): void {
    this.entries = [];
    this.lastRender = -Infinity;
  }

  /**
   * The render time at local time `now`: the newest server time plus the local time since
   * it arrived, minus the delay; never earlier than the previous render time, never later
   * than the newest snapshot.
   */
  renderTime(now: number): number | null {
    const last = this.entries.at(-1);
    if (!last) return null;
    const elapsed = Math.max(0, now - last.arrival);
    const target = Math.min(last.serverTime + elapsed - this.delayMs, last.serverTime);
    this.lastRender = Math.max(this.lastRender, target);
    return this.lastRender;
  }

  /** The interpolated state at local time `now`. */
  sample(now: number): S | null {
    const at = this.renderTime(now);
    return at === null ? null : this.sampleAt(at);
  }

  /** The state at server time `renderTime`: between the two snapshots around it, clamped to the ends. */
  sampleAt(renderTime: number): S | null {
    const es = this.entries;
    if (es.length === 0) return null;
    const first = es[0]!;
    if (renderTime <= first.serverTime) return first.snapshot;
    const last = es[es.length - 1]!;
    if (renderTime >= last.serverTime) return last.snapshot;
    // Entries are sorted by server time; find the first one after renderTime.
    let lo = 0;
    let hi = es.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (es[mid]!.serverTime <= renderTime) lo = mid;
      else hi = mid;
    }
    const a = es[lo]!;
    const b = es[hi]!;
    const t = (renderTime - a.serverTime) / (b.serverTime - a.serverTime);
    return this.lerp(a.snapshot, b.snapshot, t);
  }
}
