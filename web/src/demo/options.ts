/**
 * What the demo page is asked to do (its query string) and the connection options that
 * follows from it, kept pure so that tests can check them without a browser.
 *
 * Query: `mode=compat|json|msgpack|delta` (default `delta`), `wsPort=N` (send the shard
 * socket to that port: the E2E points it at a closed port to force the SSE fallback),
 * `match=<id>` (join that match instead of queueing: the link a second tab can open).
 */

import type { UseShardOptions } from "@pylon/client";

/** The wire modes the demo can play in. */
export type WireMode = "compat" | "json" | "msgpack" | "delta";

export const WIRE_MODES: readonly WireMode[] = ["delta", "msgpack", "json", "compat"];

/** What each mode is, for the HUD and the mode links. */
export const MODE_LABELS: Record<WireMode, string> = {
  delta: "MessagePack + delta",
  msgpack: "MessagePack",
  json: "JSON text frames",
  compat: "compat: connectShard, binary JSON frames",
};

export interface DemoConfig {
  mode: WireMode;
  /** Shard socket port override, or `null`. */
  wsPort: number | null;
  /** A match to join directly, or `null` to queue. */
  match: string | null;
  /** Why a query value was ignored, or `null`. */
  warning: string | null;
}

const MATCH_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Reads the page's query string. Unknown values are ignored with a warning, never fatal. */
export function parseConfig(search: string): DemoConfig {
  const q = new URLSearchParams(search);
  const warnings: string[] = [];
  const rawMode = q.get("mode");
  let mode: WireMode = "delta";
  if (rawMode !== null) {
    if ((WIRE_MODES as readonly string[]).includes(rawMode)) mode = rawMode as WireMode;
    else warnings.push(`unknown mode "${rawMode}" (use ${WIRE_MODES.join(", ")}): playing in delta`);
  }
  let wsPort: number | null = null;
  const rawPort = q.get("wsPort");
  if (rawPort !== null) {
    const n = Number(rawPort);
    if (Number.isInteger(n) && n > 0 && n < 65536) wsPort = n;
    else warnings.push(`wsPort "${rawPort}" is not a port: ignored`);
  }
  let match: string | null = null;
  const rawMatch = q.get("match");
  if (rawMatch !== null) {
    if (MATCH_ID.test(rawMatch)) match = rawMatch;
    else warnings.push("match is not a match id: queueing instead");
  }
  return { mode, wsPort, match, warning: warnings.length ? warnings.join("; ") : null };
}

/** The parts of `location` the options depend on. */
export interface PageLocation {
  protocol: string;
  hostname: string;
  port: string;
  origin: string;
}

/** Where the demo sits in a match: from the matchmaker, join-or-create, or a link. */
export interface Seat {
  matchId: string;
  /** The subscriber id to connect as (the matchmaker's `sid`, else the guest's user id). */
  sid: string;
  token: string;
  /** The socket base URL the matchmaker named (`ws_url`), or `null`. */
  wsUrl: string | null;
}

/**
 * pylon's own `connectShard` options, and nothing else: `subscriberId`, `token`, a bare
 * host name as `baseUrl`, and `wsPort` (the page's port + 3, as `pylon` listens) or
 * `wsUrl`. A page served without an explicit port (behind a proxy) uses `/shard` on its
 * own origin through `wsUrl`.
 */
export function compatOptions(page: PageLocation, cfg: DemoConfig, seat: Seat): UseShardOptions {
  const options: UseShardOptions = { subscriberId: seat.sid, token: seat.token, baseUrl: page.hostname };
  if (cfg.wsPort !== null) options.wsPort = cfg.wsPort;
  else if (seat.wsUrl) options.wsUrl = seat.wsUrl;
  else if (page.port !== "") options.wsPort = Number(page.port) + 3;
  else options.wsUrl = `${page.protocol === "https:" ? "wss:" : "ws:"}//${page.hostname}/shard`;
  return options;
}

/** `PylonRealtime`'s connection options for the other modes. */
export interface RealtimeConnection {
  baseUrl: string;
  token: string;
  subscriberId: string;
  format: "msgpack" | "json";
  delta: boolean;
  wsPort?: number;
  wsUrl?: string;
}

/**
 * The richer client's options: the page's origin as `baseUrl` (so sockets use `/shard` on
 * the same origin unless told otherwise), the wire format of the mode, and the port
 * override or the matchmaker's socket URL.
 */
export function realtimeOptions(page: PageLocation, cfg: DemoConfig, seat: Seat): RealtimeConnection {
  const options: RealtimeConnection = {
    baseUrl: page.origin,
    token: seat.token,
    subscriberId: seat.sid,
    format: cfg.mode === "json" ? "json" : "msgpack",
    delta: cfg.mode === "delta",
  };
  if (cfg.wsPort !== null) options.wsPort = cfg.wsPort;
  else if (seat.wsUrl) options.wsUrl = seat.wsUrl;
  return options;
}

/** The demo's URL in another mode, keeping the other query values. */
export function modeHref(search: string, mode: WireMode): string {
  const q = new URLSearchParams(search);
  q.set("mode", mode);
  return `?${q.toString()}`;
}
