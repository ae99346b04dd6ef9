/**
 * `connectShard`: the drop-in for pylon's own web client (`@pylonsync/react`), same
 * options and same client shape (`onSnapshot`, `onError`, `onOpen`, `onClose`, `send`,
 * `close`, `connected`), in the compat wire modes stock servers speak. On top of the stock
 * client it reads `snapshot`, `tick`, `error`, `ack` and `transport`, actually falls back
 * to SSE + HTTP inputs when the WebSocket cannot open, follows 4421, and reports closes as
 * typed `ShardCloseError`s / `PylonError`s.
 */

import { PylonError } from "./errors.js";
import { type CloseInfo, ShardCore, type ShardConnectionOptions, type ShardStats, type Transport } from "./shard-core.js";

/** The options of pylon's web client `useShard` / `connectShard`, plus a few of ours. */
export interface UseShardOptions extends ShardConnectionOptions {
  /** Subscriber ID (usually the logged-in user ID). */
  subscriberId: string;
  /** Compat wire format: binary frames (default, as stock clients) or text frames. */
  format?: "binary" | "json";
}

/** What `useShard` returns. */
export interface UseShardReturn<TSnapshot = unknown, TInput = unknown> {
  snapshot: TSnapshot | null;
  tick: number;
  connected: boolean;
  error: Error | null;
  /** Send an input to the shard. Returns its client sequence number. */
  send: (input: TInput) => number;
  /** Close the connection early. */
  close: () => void;
}

/** A shard connection without React. Each `on…` returns a function that removes the handler. */
export interface ShardClient<TSnapshot = unknown, TInput = unknown> {
  onSnapshot: (fn: (snapshot: TSnapshot, tick: number) => void) => () => void;
  onError: (fn: (err: Error) => void) => () => void;
  onOpen: (fn: () => void) => () => void;
  onClose: (fn: (info: CloseInfo) => void) => () => void;
  /** Sends an input; returns its `client_seq`. */
  send: (input: TInput) => number;
  close: () => void;
  readonly connected: boolean;
  /** The newest snapshot, or `null`. */
  readonly snapshot: TSnapshot | null;
  /** The newest snapshot's tick (0 before the first). */
  readonly tick: number;
  /** The newest error, or `null`. */
  readonly error: Error | null;
  /** Your last input the server processed (the snapshot's `ack` key), or `null`. */
  readonly ack: number | null;
  /** What carries the subscription now. */
  readonly transport: Transport | null;
  /** Traffic counters. */
  readonly stats: Readonly<ShardStats>;
}

function emit<A extends unknown[]>(handlers: Set<(...args: A) => void>, ...args: A): void {
  for (const h of [...handlers]) {
    try {
      h(...args);
    } catch (e) {
      // A throwing handler must not break the connection or the other handlers.
      queueMicrotask(() => {
        throw e;
      });
    }
  }
}

/** Connects to a shard; the client starts connecting at once. */
export function connectShard<TSnapshot = unknown, TInput = unknown>(
  shardId: string,
  options: UseShardOptions,
): ShardClient<TSnapshot, TInput> {
  const snapshotHandlers = new Set<(s: TSnapshot, t: number) => void>();
  const errorHandlers = new Set<(e: Error) => void>();
  const openHandlers = new Set<() => void>();
  const closeHandlers = new Set<(info: CloseInfo) => void>();
  let snapshot: TSnapshot | null = null;
  let tick = 0;
  let ack: number | null = null;
  let error: Error | null = null;
  let clientSeq = 0;

  const core = new ShardCore(
    shardId,
    { ...options, format: options.format ?? "binary", delta: false, ackKey: "ack" },
    {
      snapshot(s, t, a) {
        snapshot = s as TSnapshot;
        tick = t;
        if (a !== null) ack = a;
        emit(snapshotHandlers, snapshot, t);
      },
      open() {
        emit(openHandlers);
      },
      close(info) {
        emit(closeHandlers, info);
      },
      error(e) {
        error = e;
        emit(errorHandlers, e);
      },
    },
  );
  core.start();

  const add =
    <F>(set: Set<F>) =>
    (fn: F) => {
      set.add(fn);
      return () => {
        set.delete(fn);
      };
    };

  return {
    onSnapshot: add(snapshotHandlers),
    onError: add(errorHandlers),
    onOpen: add(openHandlers),
    onClose: add(closeHandlers),
    send(input: TInput): number {
      clientSeq += 1;
      if (!core.sendInput(input, clientSeq)) {
        const e = new PylonError(0, "NOT_CONNECTED", "Cannot send: shard connection is not open");
        error = e;
        emit(errorHandlers, e);
      }
      return clientSeq;
    },
    close() {
      core.close();
    },
    get connected() {
      return core.connected;
    },
    get snapshot() {
      return snapshot;
    },
    get tick() {
      return tick;
    },
    get error() {
      return error;
    },
    get ack() {
      return ack;
    },
    get transport() {
      return core.transport;
    },
    get stats() {
      return core.stats;
    },
  };
}
