/**
 * Matchmaking and region choice.
 *
 * `findMatch` files a ticket (`POST /api/matchmaker/tickets` -> 201
 * `{ticket_id, status:"queued"}`), waits for the assignment pushed on
 * `GET /api/matchmaker/tickets/:id/events` (an event whose data is
 * `{"status":"matched","shard_id","region","ws_url","sid","expires_at"}`), falls back to
 * polling `GET /api/matchmaker/tickets/:id` every second when the stream fails, and
 * cancels the ticket (`DELETE`) when its signal aborts.
 *
 * `pickRegion` reads `GET /api/regions` (`[{region, url, ws_url}]`), times a request to
 * each region's `/health`, and returns the fastest with every measured latency.
 */

import { PylonError } from "./errors.js";
import { type HttpOptions, isAbort, requestJson, urlFor } from "./http.js";
import { readEventStream } from "./sse.js";
import { requireFetch } from "./transport.js";

export interface FindMatchRequest {
  /** The game to play (`"arena"`). */
  game: string;
  /** A game mode, when the game has several. */
  mode?: string;
  /** User ids to seat together. */
  party?: string[];
  /** A skill rating for matching. */
  skill?: number;
  /** A preferred region. */
  region?: string;
  /** Measured round trips per region in ms (`pickRegion().latencies`). */
  latencies?: Record<string, number>;
}

export interface FindMatchOptions extends FindMatchRequest, HttpOptions {
  /** Aborting cancels the ticket (`DELETE`) and rejects with a `PylonError` `TICKET_CANCELLED`. */
  signal?: AbortSignal;
  /** Poll interval when the event stream is not available (default 1000 ms). */
  pollIntervalMs?: number;
  /** Give up (and cancel the ticket) after this long, in ms (default: never). */
  timeoutMs?: number;
  /** Called with the ticket id once the server queued it. */
  onQueued?: (ticketId: string) => void;
}

/** Where to play: pass `shardId`, `sid` (as `subscriberId`) and `wsUrl` to `connectShard`. */
export interface MatchAssignment {
  ticketId: string;
  shardId: string;
  region: string;
  wsUrl: string;
  sid: string;
  /** When the assignment lapses (the server's `expires_at`). */
  expiresAt: number | string | null;
  /** The server's whole answer. */
  raw: Record<string, unknown>;
}

/** A ticket's state as the server reports it. */
export interface TicketStatus {
  status: string;
  [key: string]: unknown;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/** What a ticket status means for the caller. `null`: still waiting. */
export function interpretTicket(ticketId: string, t: TicketStatus): MatchAssignment | PylonError | null {
  const status = String(t.status ?? "").toLowerCase();
  switch (status) {
    case "matched":
    case "assigned": {
      const shardId = t.shard_id;
      if (typeof shardId !== "string" || shardId === "") {
        return new PylonError(0, "INVALID_RESPONSE", "a matched ticket without shard_id");
      }
      return {
        ticketId,
        shardId,
        region: typeof t.region === "string" ? t.region : "",
        wsUrl: typeof t.ws_url === "string" ? t.ws_url : "",
        sid: typeof t.sid === "string" ? t.sid : "",
        expiresAt: typeof t.expires_at === "number" || typeof t.expires_at === "string" ? t.expires_at : null,
        raw: t,
      };
    }
    case "queued":
    case "searching":
    case "pending":
    case "":
      return null;
    case "cancelled":
    case "canceled":
      return new PylonError(0, "TICKET_CANCELLED", `ticket ${ticketId} was cancelled`);
    case "expired":
    case "timeout":
    case "timed_out":
      return new PylonError(0, "TICKET_EXPIRED", `ticket ${ticketId} expired before a match was found`);
    default: {
      const err = t.error as { code?: unknown; message?: unknown } | undefined;
      const code = typeof err?.code === "string" ? err.code : "TICKET_FAILED";
      const message = typeof err?.message === "string" ? err.message : `ticket ${ticketId} ended with status ${status}`;
      return new PylonError(0, code, message, undefined, { status });
    }
  }
}

/** Files a matchmaking ticket and waits for its assignment. */
export async function findMatch(options: FindMatchOptions): Promise<MatchAssignment> {
  const { signal } = options;
  const http: HttpOptions = pickHttp(options);
  const body: Record<string, unknown> = { game: options.game };
  for (const k of ["mode", "party", "skill", "region", "latencies"] as const) {
    if (options[k] !== undefined) body[k] = options[k];
  }
  if (signal?.aborted) throw cancelled("");
  const created = await requestJson<{ ticket_id?: unknown; status?: unknown }>(http, "POST", "/api/matchmaker/tickets", {
    body,
    ...(signal ? { signal } : {}),
  }).catch((e: unknown) => {
    throw isAbort(e) ? cancelled("") : e;
  });
  if (typeof created?.ticket_id !== "string") {
    throw new PylonError(0, "INVALID_RESPONSE", "the matchmaker answered without ticket_id");
  }
  const ticketId = created.ticket_id;
  options.onQueued?.(ticketId);
  const first = interpretTicket(ticketId, created as TicketStatus);
  if (first instanceof PylonError) throw first;
  if (first) return first;

  // One controller for the wait: the caller's abort, the timeout, or the result stop it.
  const ctrl = new AbortController();
  const onAbort = () => ctrl.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer =
    options.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          ctrl.abort();
        }, options.timeoutMs)
      : null;
  try {
    const result = await waitForTicket(http, ticketId, ctrl.signal, options.pollIntervalMs ?? 1000);
    if (result) return result;
    // Aborted: cancel the ticket on the server.
    await cancelTicket(http, ticketId).catch(() => undefined);
    throw timedOut
      ? new PylonError(0, "TICKET_TIMEOUT", `no match found within ${options.timeoutMs} ms`)
      : cancelled(ticketId);
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    ctrl.abort();
  }
}

function cancelled(ticketId: string): PylonError {
  return new PylonError(0, "TICKET_CANCELLED", ticketId ? `ticket ${ticketId} cancelled` : "matchmaking cancelled");
}

function pickHttp(o: HttpOptions): HttpOptions {
  const http: HttpOptions = {};
  if (o.baseUrl !== undefined) http.baseUrl = o.baseUrl;
  if (o.token !== undefined) http.token = o.token;
  if (o.fetch !== undefined) http.fetch = o.fetch;
  return http;
}

/**
 * Waits for a ticket's assignment: the event stream, else polling. Resolves `null` when
 * `signal` aborts; rejects with a `PylonError` when the ticket fails.
 */
export async function waitForTicket(
  http: HttpOptions,
  ticketId: string,
  signal: AbortSignal,
  pollIntervalMs = 1000,
): Promise<MatchAssignment | null> {
  const path = `/api/matchmaker/tickets/${encodeURIComponent(ticketId)}`;
  let outcome: MatchAssignment | PylonError | null = null;
  const streamCtrl = new AbortController();
  const stopStream = () => streamCtrl.abort();
  signal.addEventListener("abort", stopStream, { once: true });
  try {
    const url = new URL(urlFor(http, `${path}/events`));
    // Read with fetch, so the token travels in the Authorization header.
    const headers: Record<string, string> = {};
    if (http.token) headers.authorization = `Bearer ${http.token}`;
    await readEventStream(
      url.toString(),
      { signal: streamCtrl.signal, headers, ...(http.fetch ? { fetch: http.fetch } : {}) },
      (ev) => {
        let data: unknown;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (typeof data !== "object" || data === null) return;
        const status = { ...(data as Record<string, unknown>) } as TicketStatus;
        if (status.status === undefined && ev.event !== "message") status.status = ev.event;
        const r = interpretTicket(ticketId, status);
        if (r) {
          outcome = r;
          streamCtrl.abort();
        }
      },
    );
  } catch {
    // No stream (route missing, proxy, network): poll instead.
  } finally {
    signal.removeEventListener("abort", stopStream);
  }
  const streamed = outcome as MatchAssignment | PylonError | null;
  if (streamed instanceof PylonError) throw streamed;
  if (streamed) return streamed;
  while (!signal.aborted) {
    const status = await requestJson<TicketStatus>(http, "GET", path, { signal }).catch((e: unknown) => {
      if (isAbort(e)) return null;
      throw e;
    });
    if (status) {
      const r = interpretTicket(ticketId, status);
      if (r instanceof PylonError) throw r;
      if (r) return r;
    }
    await sleep(pollIntervalMs, signal);
  }
  return null;
}

/** Cancels a ticket: `DELETE /api/matchmaker/tickets/:id`. */
export async function cancelTicket(http: HttpOptions, ticketId: string): Promise<void> {
  await requestJson(http, "DELETE", `/api/matchmaker/tickets/${encodeURIComponent(ticketId)}`);
}

/** One region as `GET /api/regions` lists it. */
export interface RegionInfo {
  region: string;
  url: string;
  ws_url: string;
}

export interface PickRegionOptions extends HttpOptions {
  /** Probes per region; the fastest counts (default 2: the first may pay for the connection). */
  probes?: number;
  /** A probe slower than this counts as unreachable (default 3000 ms). */
  timeoutMs?: number;
  /** Clock in ms (default `performance.now()`). */
  now?: () => number;
}

export interface RegionChoice {
  region: string;
  url: string;
  wsUrl: string;
  /** Round trip to `/health` of each region that answered, in ms. */
  latencies: Record<string, number>;
  regions: RegionInfo[];
}

/**
 * Probes every region's `/health` and returns the fastest.
 *
 * @throws PylonError `NO_REGION` when no region answered.
 */
export async function pickRegion(options: PickRegionOptions = {}): Promise<RegionChoice> {
  const http = pickHttp(options);
  const regions = await requestJson<RegionInfo[]>(http, "GET", "/api/regions");
  if (!Array.isArray(regions) || regions.length === 0) {
    throw new PylonError(0, "NO_REGION", "the server lists no regions");
  }
  const doFetch = requireFetch(options.fetch);
  const now =
    options.now ??
    (() => (typeof performance !== "undefined" ? performance.now() : Date.now()));
  const probes = Math.max(1, options.probes ?? 2);
  const timeoutMs = options.timeoutMs ?? 3000;
  const probe = async (r: RegionInfo): Promise<number | null> => {
    let best: number | null = null;
    for (let i = 0; i < probes; i++) {
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), timeoutMs);
      const start = now();
      try {
        const res = await doFetch(`${r.url.replace(/\/+$/, "")}/health`, { signal: ctrl.signal });
        await res.arrayBuffer();
        if (res.ok) {
          const took = now() - start;
          best = best === null ? took : Math.min(best, took);
        }
      } catch {
        // unreachable or too slow
      } finally {
        clearTimeout(timer);
      }
    }
    return best;
  };
  const measured = await Promise.all(regions.map(probe));
  const latencies: Record<string, number> = {};
  let fastest: RegionInfo | null = null;
  let fastestMs = Infinity;
  regions.forEach((r, i) => {
    const ms = measured[i];
    if (ms === null || ms === undefined) return;
    latencies[r.region] = Math.round(ms * 10) / 10;
    if (ms < fastestMs) {
      fastestMs = ms;
      fastest = r;
    }
  });
  const best = fastest as RegionInfo | null;
  if (!best) throw new PylonError(0, "NO_REGION", "no region answered /health", "check the network; every probe failed or timed out");
  return { region: best.region, url: best.url, wsUrl: best.ws_url, latencies, regions };
}
