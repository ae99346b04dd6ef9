/**
 * `@pylon/client/react`: `useShard`, the hook of pylon's web client, with the same options
 * and return shape (`snapshot`, `tick`, `connected`, `error`, `send`, `close`). Switching
 * from `@pylonsync/react` is a change of import. React is an optional peer dependency used
 * only by this entry point.
 */

import { useCallback, useEffect, useRef, useState } from "react";
import { type ShardClient, type UseShardOptions, type UseShardReturn, connectShard } from "./shard.js";

export { connectShard } from "./shard.js";
export type { ShardClient, UseShardOptions, UseShardReturn } from "./shard.js";

/**
 * Subscribes to a shard's snapshots while mounted. Re-renders on each snapshot and on
 * connection changes; `send` and `close` are stable. An empty `shardId` connects nothing
 * (handy while a match is being found).
 */
export function useShard<TSnapshot = unknown, TInput = unknown>(
  shardId: string,
  options: UseShardOptions,
): UseShardReturn<TSnapshot, TInput> {
  const [snapshot, setSnapshot] = useState<TSnapshot | null>(null);
  const [tick, setTick] = useState(0);
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const clientRef = useRef<ShardClient<TSnapshot, TInput> | null>(null);
  // The latest options, read when (re)connecting; the effect re-runs only on the values
  // that change who or where we connect, not on every fresh options object.
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const { token, subscriberId, baseUrl, wsUrl, wsPort, format, sseFallback, autoReconnect } = options;

  useEffect(() => {
    setSnapshot(null);
    setTick(0);
    setConnected(false);
    setError(null);
    if (!shardId) return undefined;
    const client = connectShard<TSnapshot, TInput>(shardId, optionsRef.current);
    clientRef.current = client;
    const offs = [
      client.onSnapshot((s, t) => {
        setSnapshot(s);
        setTick(t);
      }),
      client.onOpen(() => setConnected(true)),
      client.onClose(() => setConnected(false)),
      client.onError((e) => setError(e)),
    ];
    return () => {
      for (const off of offs) off();
      client.close();
      if (clientRef.current === client) clientRef.current = null;
    };
  }, [shardId, token, subscriberId, baseUrl, wsUrl, wsPort, format, sseFallback, autoReconnect]);

  const send = useCallback((input: TInput): number => clientRef.current?.send(input) ?? 0, []);
  const close = useCallback(() => clientRef.current?.close(), []);

  return { snapshot, tick, connected, error, send, close };
}
