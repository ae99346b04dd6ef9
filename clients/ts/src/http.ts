/**
 * JSON over HTTP with pylon's error shape: every non-2xx answer becomes a `PylonError`
 * carrying the server's `status`, `code`, `message` and `hint`.
 */

import { resolveOrigin } from "./endpoints.js";
import { PylonError } from "./errors.js";
import { type FetchLike, requireFetch } from "./transport.js";

/** What every HTTP helper takes. */
export interface HttpOptions {
  /** The server: a full URL (`https://game.example.com`) or a host name. */
  baseUrl?: string;
  /** A session token (`POST /api/auth/guest`) or the admin token, sent as `Authorization: Bearer`. */
  token?: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: FetchLike;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** `path` (starting with `/`) on the server of `opts`, with `query` appended. */
export function urlFor(opts: HttpOptions, path: string, query?: RequestOptions["query"]): string {
  const base = resolveOrigin(opts.baseUrl).http;
  const url = new URL(base + path);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
  }
  return url.toString();
}

/**
 * Sends one request and parses the JSON answer.
 *
 * @throws PylonError for a non-2xx answer (the server's error object) or a network failure.
 */
export async function requestJson<T>(
  opts: HttpOptions,
  method: string,
  path: string,
  req: RequestOptions = {},
): Promise<T> {
  const doFetch = requireFetch(opts.fetch);
  const headers: Record<string, string> = { accept: "application/json", ...req.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const init: RequestInit = { method, headers };
  if (req.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(req.body);
  }
  if (req.signal) init.signal = req.signal;
  const url = urlFor(opts, path, req.query);
  let res: Response;
  try {
    res = await doFetch(url, init);
  } catch (e) {
    if (isAbort(e)) throw e;
    throw PylonError.network(e, `${method} ${path}`);
  }
  const text = await res.text();
  if (!res.ok) throw PylonError.fromBody(res.status, text);
  if (text.trim() === "") return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new PylonError(res.status, "INVALID_RESPONSE", `${method} ${path}: the answer is not JSON`, undefined, {}, { cause: e });
  }
}

export function isAbort(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}

/** A guest session: `POST /api/auth/guest`. */
export interface GuestSession {
  token: string;
  user_id: string;
  expires_at: number;
}

/**
 * A new guest user and its session token. `opts.token`, when set (the admin token), is
 * sent as `Authorization: Bearer` (a server limiting guest sessions per address exempts
 * the admin).
 */
export function guestSession(opts: HttpOptions = {}): Promise<GuestSession> {
  return requestJson<GuestSession>(opts, "POST", "/api/auth/guest");
}

/** A match as `POST /api/shards` and `GET /api/shards/:id` describe it. */
export interface ShardInfo {
  id: string;
  running: boolean;
  tick: number;
  subscribers: number;
  input_queue: number;
  game: string;
  tick_rate_hz: number;
  state: string;
  [key: string]: unknown;
}

/** Creates a match of a registered game: `POST /api/shards` (any session). */
export function createShard(
  opts: HttpOptions,
  body: { game: string; params?: unknown; id?: string; seed?: number; record_replay?: boolean },
): Promise<ShardInfo> {
  return requestJson<ShardInfo>(opts, "POST", "/api/shards", { body });
}

/** One match's info: `GET /api/shards/:id`. */
export function shardInfo(opts: HttpOptions, shardId: string): Promise<ShardInfo> {
  return requestJson<ShardInfo>(opts, "GET", `/api/shards/${encodeURIComponent(shardId)}`);
}

/** One input over HTTP: `POST /api/shards/:id/input` -> `{"accepted":true,"seq":N}`. */
export function postInput(
  opts: HttpOptions,
  shardId: string,
  body: { input: unknown; client_seq?: number; subscriber_id?: string },
  signal?: AbortSignal,
): Promise<{ accepted: boolean; seq: number }> {
  const req: RequestOptions = { body };
  if (signal) req.signal = signal;
  return requestJson(opts, "POST", `/api/shards/${encodeURIComponent(shardId)}/input`, req);
}
