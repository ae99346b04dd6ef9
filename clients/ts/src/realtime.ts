/**
 * `PylonRealtime`: the full shard client. MessagePack frames (default) with delta
 * snapshots (patch format 2 by default), acks, client-side prediction with reconciliation, a snapshot interpolation
 * buffer, a latency/jitter readout, reconnects that resume the match, 4421 followed, and
 * typed close errors. Compat modes (`format: "binary" | "json"`) work too, reading the
 * ack from the snapshot's `ack` key.
 *
 * ```ts
 * const rt = new PylonRealtime<Arena, Move>(matchId, {
 *   baseUrl: "https://game.example.com", token, subscriberId: userId,
 *   predict: (s, m) => movePlayer(s, userId, m),
 *   interpolation: { delayMs: 100 },
 * });
 * rt.on("snapshot", (state, info) => render(info.predicted));
 * rt.connect();
 * rt.send({ dx: 1, dy: 0 });
 * requestAnimationFrame(() => draw(rt.interpolated()));
 * ```
 */

import type { WireFormat } from "./codec.js";
import { PylonError } from "./errors.js";
import { shardInfo } from "./http.js";
import { InterpolationBuffer, type InterpolationOptions } from "./interpolation.js";
import { LatencyTracker, type LatencyStats } from "./latency.js";
import { type PredictFn, Predictor } from "./prediction.js";
import { type CloseInfo, ShardCore, type ShardConnectionOptions, type ShardStats, type Transport } from "./shard-core.js";

export interface RealtimeOptions<S, I> extends ShardConnectionOptions {
  /** Wire format (default `"msgpack"`). */
  format?: WireFormat;
  /**
   * Delta snapshots (MessagePack only). Default `true`: patch format 2 (`delta=2`, the
   * denser one); `1`: patch format 1 (`delta=1`); `2`: format 2; `false`: full snapshots
   * only. A server older than format 2 answers `delta=2` with full snapshots.
   */
  delta?: boolean | 1 | 2;
  /** Compat modes: the snapshot key holding the ack (default `"ack"`; `null`: none). */
  ackKey?: string | null;
  /** The game's pure step, for client-side prediction. */
  predict?: PredictFn<S, I>;
  /** Unacknowledged inputs kept for prediction (default 256). */
  maxPendingInputs?: number;
  /** Keep an interpolation buffer (read it with `interpolated()`). */
  interpolation?: InterpolationOptions<S> & {
    /** Ticks per second of the match; fetched from `GET /api/shards/:id` when not given. */
    tickRateHz?: number;
  };
  /** Local clock in ms (default `performance.now()`). */
  now?: () => number;
}

/** Details delivered with each snapshot. */
export interface SnapshotInfo<S> {
  tick: number;
  /** Your last input the server processed, or `null`. */
  ack: number | null;
  /** The snapshot with your unacknowledged inputs replayed (the snapshot itself without `predict`). */
  predicted: S;
}

export interface RealtimeEvents<S, O> {
  snapshot: (state: S, info: SnapshotInfo<S>) => void;
  open: (transport: Transport) => void;
  close: (info: CloseInfo) => void;
  error: (err: Error) => void;
  /** MessagePack modes: the join answer. */
  joined: (info: { key: number; resumed: boolean }) => void;
  /** The match finished with this outcome. */
  end: (outcome: O, tick: number) => void;
  /** The match stopped or the join was refused (`code`: stopped, panicked, idle, shutdown, forbidden, full, finished). */
  stopped: (code: string) => void;
  /** A 4421 was followed to this region base URL. */
  redirect: (baseUrl: string) => void;
  /** Input `seq` was acknowledged after `rttMs`. */
  ack: (seq: number, rttMs: number | null) => void;
}

type Handlers<S, O> = { [K in keyof RealtimeEvents<S, O>]: Set<RealtimeEvents<S, O>[K]> };

const defaultNow = (): number =>
  typeof performance !== "undefined" && typeof performance.now === "function" ? performance.now() : Date.now();

export class PylonRealtime<S = unknown, I = unknown, O = unknown> {
  private readonly handlers: Handlers<S, O> = {
    snapshot: new Set(),
    open: new Set(),
    close: new Set(),
    error: new Set(),
    joined: new Set(),
    end: new Set(),
    stopped: new Set(),
    redirect: new Set(),
    ack: new Set(),
  };
  private readonly core: ShardCore;
  private readonly predictor: Predictor<S, I> | null;
  private readonly buffer: InterpolationBuffer<S> | null;
  private readonly latencyTracker = new LatencyTracker();
  private readonly now: () => number;
  private tickMs: number | null = null;
  private clientSeq = 0;
  private state_: S | null = null;
  private predicted_: S | null = null;
  private tick_ = 0;
  private ack_: number | null = null;
  private error_: Error | null = null;
  private outcome_: O | null = null;
  private started = false;

  constructor(
    readonly shardId: string,
    private readonly options: RealtimeOptions<S, I> = {},
  ) {
    const format = options.format ?? "msgpack";
    this.now = options.now ?? defaultNow;
    this.predictor = options.predict ? new Predictor(options.predict, options.maxPendingInputs ?? 256) : null;
    this.buffer = options.interpolation ? new InterpolationBuffer<S>(options.interpolation) : null;
    if (options.interpolation?.tickRateHz) this.tickMs = 1000 / options.interpolation.tickRateHz;
    this.core = new ShardCore(
      shardId,
      {
        ...options,
        format,
        delta: format !== "msgpack" || options.delta === false ? false : options.delta === 1 ? 1 : 2,
        ackKey: options.ackKey === undefined ? "ack" : options.ackKey,
      },
      {
        snapshot: (s, tick, ack) => this.onSnapshot(s as S, tick, ack),
        open: (t) => this.emit("open", t),
        close: (info) => this.onClose(info),
        error: (e) => {
          this.error_ = e;
          this.emit("error", e);
        },
        joined: (key, resumed) => this.emit("joined", { key, resumed }),
        end: (outcome, tick) => {
          this.outcome_ = outcome as O;
          this.emit("end", outcome as O, tick);
        },
        stopped: (code) => this.emit("stopped", code),
        redirect: (url) => this.emit("redirect", url),
      },
    );
  }

  /** Starts connecting (once); returns `this`. */
  connect(): this {
    if (this.started) return this;
    this.started = true;
    this.core.start();
    if (this.buffer && this.tickMs === null) void this.fetchTickRate();
    return this;
  }

  /** Adds a handler; returns a function that removes it. */
  on<K extends keyof RealtimeEvents<S, O>>(event: K, handler: RealtimeEvents<S, O>[K]): () => void {
    const set = this.handlers[event] as Set<RealtimeEvents<S, O>[K]>;
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /**
   * Sends an input with the next `client_seq` and applies it to the predicted state.
   * Returns the seq, or throws `PylonError` (`NOT_CONNECTED`) when nothing is connected.
   */
  send(input: I): number {
    const seq = this.clientSeq + 1;
    if (!this.core.sendInput(input, seq)) {
      throw new PylonError(0, "NOT_CONNECTED", "Cannot send: shard connection is not open");
    }
    this.clientSeq = seq;
    this.latencyTracker.sent(seq, this.now());
    if (this.predictor) this.predicted_ = this.predictor.input(seq, input);
    return seq;
  }

  /** Closes for good. */
  close(): void {
    this.core.close();
  }

  /** The newest authoritative snapshot. */
  get state(): S | null {
    return this.state_;
  }
  /** The newest snapshot with unacknowledged inputs replayed (= `state` without `predict`). */
  get predicted(): S | null {
    return this.predictor ? this.predicted_ : this.state_;
  }
  get tick(): number {
    return this.tick_;
  }
  /** Your last input the server processed. */
  get ack(): number | null {
    return this.ack_;
  }
  /** The last `client_seq` sent. */
  get lastSeq(): number {
    return this.clientSeq;
  }
  /** Inputs sent and not acknowledged yet (with `predict`). */
  get pendingInputs(): number {
    return this.predictor?.pending.length ?? 0;
  }
  get connected(): boolean {
    return this.core.connected;
  }
  get transport(): Transport | null {
    return this.core.transport;
  }
  get error(): Error | null {
    return this.error_;
  }
  /** The match outcome, once it ended. */
  get outcome(): O | null {
    return this.outcome_;
  }
  /** Traffic counters: frames, bytes, full snapshots, deltas, inputs, opens. */
  get stats(): Readonly<ShardStats> {
    return this.core.stats;
  }
  /** Input -> ack round trip: newest, EWMA, jitter. */
  get latency(): LatencyStats {
    return this.latencyTracker.stats;
  }

  /** The interpolated state for rendering now (needs the `interpolation` option). */
  interpolated(now: number = this.now()): S | null {
    return this.buffer ? this.buffer.sample(now) : this.state_;
  }

  private emit<K extends keyof RealtimeEvents<S, O>>(event: K, ...args: Parameters<RealtimeEvents<S, O>[K]>): void {
    for (const h of [...this.handlers[event]]) {
      try {
        (h as (...a: unknown[]) => void)(...args);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private onSnapshot(state: S, tick: number, ack: number | null): void {
    const at = this.now();
    this.state_ = state;
    this.tick_ = tick;
    let rtt: number | null = null;
    const newAck = ack !== null && (this.ack_ === null || ack > this.ack_);
    if (ack !== null) {
      rtt = this.latencyTracker.acked(ack, at);
      this.ack_ = ack;
    }
    const predicted = this.predictor ? this.predictor.reconcile(state, ack) : state;
    this.predicted_ = predicted;
    if (this.buffer) this.buffer.push(tick * (this.tickMs ?? 50), state, at);
    if (newAck) this.emit("ack", ack as number, rtt);
    this.emit("snapshot", state, { tick, ack, predicted });
  }

  private onClose(info: CloseInfo): void {
    if (info.willReconnect) {
      // A new subscription: inputs of the old socket may never be acknowledged.
      this.predictor?.reset();
      this.latencyTracker.resetPending();
      this.buffer?.clear();
    }
    this.emit("close", info);
  }

  private async fetchTickRate(): Promise<void> {
    try {
      const opts: { baseUrl?: string; fetch?: typeof fetch } = {};
      if (this.options.baseUrl) opts.baseUrl = this.options.baseUrl;
      if (this.options.fetch) opts.fetch = this.options.fetch;
      const info = await shardInfo(opts, this.shardId);
      if (info.tick_rate_hz > 0 && this.tickMs === null) {
        this.tickMs = 1000 / info.tick_rate_hz;
        this.buffer?.clear();
      }
    } catch {
      // Keep the 20 Hz assumption.
    }
  }
}
