/**
 * One interface over the two clients the demo plays with, so the page, the HUD and the
 * test hook do not care which is underneath:
 * - `compat`: `connectShard` with pylon's own options (binary JSON frames, JSON inputs),
 *   with the package's `Predictor`, `InterpolationBuffer` and `LatencyTracker` around it;
 * - `json`, `msgpack`, `delta`: `PylonRealtime`, which has all three built in.
 */

import {
  type CloseInfo,
  InterpolationBuffer,
  type LatencyStats,
  LatencyTracker,
  Predictor,
  PylonRealtime,
  type ShardStats,
  type Transport,
  connectShard,
} from "@pylon/client";
import type { ArenaOutcome, ArenaState, Move } from "./arena.js";
import type { RealtimeConnection } from "./options.js";
import type { UseShardOptions } from "@pylon/client";

/** Interpolation delay for the other players: two ticks at 20 Hz. */
export const INTERPOLATION_DELAY_MS = 100;

export interface LinkEvents {
  /** A snapshot arrived (authoritative state, its tick). */
  snapshot(state: ArenaState, tick: number): void;
  /** The match finished. */
  end(outcome: ArenaOutcome): void;
  /** The connection closed; `willReconnect` says whether the client tries again. */
  close(info: CloseInfo): void;
  /** An error the client reported (whether it gives up is in the `close` that follows). */
  error(err: Error): void;
}

export interface GameLink {
  readonly connected: boolean;
  readonly transport: Transport | null;
  readonly tick: number;
  readonly ack: number | null;
  readonly stats: Readonly<ShardStats>;
  readonly latency: LatencyStats;
  /** The newest authoritative snapshot. */
  readonly state: ArenaState | null;
  /** The authoritative snapshot with the unacknowledged inputs replayed. */
  readonly predicted: ArenaState | null;
  /** Inputs sent and not acknowledged yet. */
  readonly pending: number;
  /** The state to draw the other players from, `INTERPOLATION_DELAY_MS` in the past. */
  interpolated(now: number): ArenaState | null;
  /** Sends an input; `false` when nothing is connected. */
  send(move: Move): boolean;
  close(): void;
}

type Predict = (s: ArenaState, m: Move) => ArenaState;

/** `connectShard` with pylon's own options, plus prediction, interpolation and latency. */
export function compatLink(
  matchId: string,
  options: UseShardOptions,
  predict: Predict,
  tickRateHz: number,
  on: LinkEvents,
): GameLink {
  const client = connectShard<ArenaState, Move>(matchId, options);
  const predictor = new Predictor<ArenaState, Move>(predict);
  const buffer = new InterpolationBuffer<ArenaState>({ delayMs: INTERPOLATION_DELAY_MS });
  const latency = new LatencyTracker();
  const tickMs = 1000 / tickRateHz;
  let predicted: ArenaState | null = null;
  let ended = false;
  client.onSnapshot((snapshot, tick) => {
    const now = performance.now();
    // The ack travels inside compat snapshots; connectShard reads it into `client.ack`.
    const ack = client.ack;
    if (ack !== null) latency.acked(ack, now);
    predicted = predictor.reconcile(snapshot, ack);
    buffer.push(tick * tickMs, snapshot, now);
    on.snapshot(snapshot, tick);
  });
  client.onClose((info) => {
    if (info.willReconnect) {
      predictor.reset();
      latency.resetPending();
      buffer.clear();
    }
    // Compat frames carry no end frame: a finished match is close 1000 "match finished".
    if (info.code === 1000 && /finish/i.test(info.reason) && !ended) {
      ended = true;
      on.end({ reason: "finished", winner: null, scores: [] });
    }
    on.close(info);
  });
  client.onError((e) => on.error(e));
  return {
    get connected() {
      return client.connected;
    },
    get transport() {
      return client.transport;
    },
    get tick() {
      return client.tick;
    },
    get ack() {
      return client.ack;
    },
    get stats() {
      return client.stats;
    },
    get latency() {
      return latency.stats;
    },
    get state() {
      return client.snapshot;
    },
    get predicted() {
      return predicted ?? client.snapshot;
    },
    get pending() {
      return predictor.pending.length;
    },
    interpolated(now: number) {
      return buffer.sample(now);
    },
    send(move: Move) {
      if (!client.connected) return false;
      const seq = client.send(move);
      latency.sent(seq, performance.now());
      predicted = predictor.input(seq, move);
      return true;
    },
    close() {
      client.close();
    },
  };
}

/** `PylonRealtime` in a JSON or MessagePack mode. */
export function realtimeLink(
  matchId: string,
  options: RealtimeConnection,
  predict: Predict,
  tickRateHz: number,
  on: LinkEvents,
): GameLink {
  const rt = new PylonRealtime<ArenaState, Move, ArenaOutcome>(matchId, {
    ...options,
    predict,
    interpolation: { delayMs: INTERPOLATION_DELAY_MS, tickRateHz },
  });
  rt.on("snapshot", (state, info) => on.snapshot(state, info.tick));
  rt.on("end", (outcome) => on.end(outcome));
  rt.on("close", (info) => on.close(info));
  rt.on("error", (e) => on.error(e));
  rt.connect();
  return {
    get connected() {
      return rt.connected;
    },
    get transport() {
      return rt.transport;
    },
    get tick() {
      return rt.tick;
    },
    get ack() {
      return rt.ack;
    },
    get stats() {
      return rt.stats;
    },
    get latency() {
      return rt.latency;
    },
    get state() {
      return rt.state;
    },
    get predicted() {
      return rt.predicted;
    },
    get pending() {
      return rt.pendingInputs;
    },
    interpolated(now: number) {
      return rt.interpolated(now);
    },
    send(move: Move) {
      if (!rt.connected) return false;
      try {
        rt.send(move);
        return true;
      } catch {
        return false;
      }
    },
    close() {
      rt.close();
    },
  };
}

