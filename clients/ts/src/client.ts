/**
 * `createClient`: one object for a server and a token, bundling the HTTP helpers, the
 * entity API, the change feed and the shard clients with the same `baseUrl`, `token`,
 * `fetch` and `WebSocket`.
 */

import { type ChangeEvent, type EntityApi, type PullPage, type TransactOp, entities, pullChanges, transact } from "./entities.js";
import {
  type GuestSession,
  type HttpOptions,
  type ShardInfo,
  createShard,
  guestSession,
  postInput,
  requestJson,
  shardInfo,
} from "./http.js";
import { type FindMatchOptions, type MatchAssignment, type PickRegionOptions, type RegionChoice, findMatch, pickRegion } from "./matchmaker.js";
import { PylonRealtime, type RealtimeOptions } from "./realtime.js";
import { type ShardClient, type UseShardOptions, connectShard } from "./shard.js";
import { type SyncOptions, SyncConnection } from "./sync.js";
import type { WebSocketCtor } from "./transport.js";

export interface ClientOptions extends HttpOptions {
  /** WebSocket constructor for sockets (default: the global one). */
  WebSocket?: WebSocketCtor;
  /** Shard socket port when `baseUrl` is a bare host name (default 4324). */
  wsPort?: number;
}

export interface PylonClient {
  readonly options: ClientOptions;
  /** A new guest user; returns a client carrying its token. */
  guest(): Promise<{ session: GuestSession; client: PylonClient }>;
  /** `GET /api/auth/me`. */
  me(): Promise<{ user_id: string; is_admin: boolean }>;
  createShard(game: string, params?: unknown, extra?: { id?: string; seed?: number; record_replay?: boolean }): Promise<ShardInfo>;
  shardInfo(shardId: string): Promise<ShardInfo>;
  postInput(shardId: string, input: unknown, clientSeq?: number, subscriberId?: string): Promise<{ accepted: boolean; seq: number }>;
  connectShard<S = unknown, I = unknown>(shardId: string, options: Partial<UseShardOptions> & { subscriberId: string }): ShardClient<S, I>;
  realtime<S = unknown, I = unknown, O = unknown>(shardId: string, options?: RealtimeOptions<S, I>): PylonRealtime<S, I, O>;
  entities<T extends object = Record<string, unknown>>(name: string): EntityApi<T>;
  transact(ops: TransactOp[]): Promise<string[]>;
  pull(since?: number, limit?: number): Promise<PullPage>;
  /** The change feed (and presence); call `.connect()` on the result. */
  sync(options?: Omit<SyncOptions, keyof HttpOptions>): SyncConnection;
  subscribeChanges(onChange: (c: ChangeEvent) => void, options?: Omit<SyncOptions, keyof HttpOptions>): SyncConnection;
  findMatch(request: Omit<FindMatchOptions, keyof HttpOptions>): Promise<MatchAssignment>;
  pickRegion(options?: Omit<PickRegionOptions, keyof HttpOptions>): Promise<RegionChoice>;
}

export function createClient(options: ClientOptions = {}): PylonClient {
  const http: HttpOptions = {};
  if (options.baseUrl !== undefined) http.baseUrl = options.baseUrl;
  if (options.token !== undefined) http.token = options.token;
  if (options.fetch !== undefined) http.fetch = options.fetch;
  const sockets: { WebSocket?: WebSocketCtor; wsPort?: number } = {};
  if (options.WebSocket) sockets.WebSocket = options.WebSocket;
  if (options.wsPort !== undefined) sockets.wsPort = options.wsPort;

  const client: PylonClient = {
    options,
    async guest() {
      const session = await guestSession(http);
      return { session, client: createClient({ ...options, token: session.token }) };
    },
    me: () => requestJson(http, "GET", "/api/auth/me"),
    createShard: (game, params, extra) =>
      createShard(http, { game, ...(params !== undefined ? { params } : {}), ...extra }),
    shardInfo: (id) => shardInfo(http, id),
    postInput: (id, input, clientSeq, subscriberId) => {
      const body: { input: unknown; client_seq?: number; subscriber_id?: string } = { input };
      if (clientSeq !== undefined) body.client_seq = clientSeq;
      if (subscriberId !== undefined) body.subscriber_id = subscriberId;
      return postInput(http, id, body);
    },
    connectShard: (id, o) => connectShard(id, { ...http, ...sockets, ...o }),
    realtime: (id, o) => new PylonRealtime(id, { ...http, ...sockets, ...o }),
    entities: (name) => entities(name, http),
    transact: (ops) => transact(http, ops),
    pull: (since, limit) => pullChanges(http, since, limit),
    sync: (o) => new SyncConnection({ ...http, ...sockets, ...o }),
    subscribeChanges: (onChange, o) => {
      const conn = new SyncConnection({ ...http, ...sockets, ...o });
      conn.onChange(onChange);
      return conn.connect();
    },
    findMatch: (request) => findMatch({ ...http, ...request }),
    pickRegion: (o) => pickRegion({ ...http, ...o }),
  };
  return client;
}
