/**
 * Getting the demo a seat: a guest session (kept in this tab's sessionStorage, so a
 * reload plays on as the same player and the server resumes its subscription), the
 * latency to every region (`pickRegion`: `GET /api/regions`, then each region's
 * `/health`), then a match through the matchmaker (`findMatch`, with those latencies). A
 * server without the matchmaker answers its ticket route with 404; the demo then asks
 * `POST /api/shards/join-or-create`, which seats it in the fullest listed arena match with
 * a free seat, or a new one.
 */

import { type GuestSession, PylonError, findMatch, guestSession, pickRegion, requestJson } from "@pylon/client";
import type { Seat } from "./options.js";

/** How the seat was found (the HUD shows it; the E2E asserts it). */
export type SeatPath = "matchmaker" | "join-or-create" | "link";

const SESSION_KEY = "pylon.demo.guest";

/** The tab's guest session, reused while it is valid for at least another minute. */
export async function guest(baseUrl: string): Promise<GuestSession> {
  const kept = readKept();
  if (kept && kept.expires_at * 1000 > Date.now() + 60_000) {
    // Still known to the server? (a restarted dev server with a throwaway session store forgets it)
    const me = await requestJson<{ user_id?: string }>({ baseUrl, token: kept.token }, "GET", "/api/auth/me").catch(
      () => null,
    );
    if (me && me.user_id === kept.user_id) return kept;
  }
  const fresh = await guestSession({ baseUrl });
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(fresh));
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
  return fresh;
}

function readKept(): GuestSession | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const v = JSON.parse(raw) as Partial<GuestSession>;
    if (typeof v.token === "string" && typeof v.user_id === "string" && typeof v.expires_at === "number") {
      return v as GuestSession;
    }
  } catch {
    // A corrupt entry: start afresh.
  }
  return null;
}

export interface Seated {
  seat: Seat;
  path: SeatPath;
  /** The match's region (the matchmaker's answer, else the fastest region measured), or `null`. */
  region: string | null;
  /** Round trips to each region's `/health` in ms (empty when the regions could not be read). */
  latencies: Record<string, number>;
}

/**
 * A seat in an arena match for `session`: the matchmaker, else join-or-create when the
 * server has no matchmaker route (404 `NOT_FOUND`; any other refusal is the answer).
 * `onQueued` is called once a ticket is queued. `fetch` defaults to the global one.
 */
export async function findSeat(
  baseUrl: string,
  session: GuestSession,
  signal: AbortSignal,
  onQueued: (ticketId: string) => void,
  fetch?: typeof globalThis.fetch,
): Promise<Seated> {
  const http = { baseUrl, token: session.token, ...(fetch ? { fetch } : {}) };
  // Regions are a preference: without them the matchmaker uses this server's own.
  const choice = await pickRegion({ ...http, probes: 2, timeoutMs: 1500 }).catch(() => null);
  const latencies = choice?.latencies ?? {};
  const region = choice?.region ?? null;
  try {
    const m = await findMatch({
      ...http,
      game: "arena",
      signal,
      onQueued,
      timeoutMs: 120_000,
      ...(Object.keys(latencies).length ? { latencies } : {}),
    });
    return {
      path: "matchmaker",
      seat: { matchId: m.shardId, sid: m.sid || session.user_id, token: session.token, wsUrl: m.wsUrl || null },
      region: m.region || region,
      latencies,
    };
  } catch (e) {
    if (!(e instanceof PylonError) || e.status !== 404 || e.code !== "NOT_FOUND") throw e;
  }
  const joined = await requestJson<{ id: string }>(http, "POST", "/api/shards/join-or-create", {
    body: { game: "arena" },
    signal,
  });
  return {
    path: "join-or-create",
    seat: { matchId: joined.id, sid: session.user_id, token: session.token, wsUrl: null },
    region,
    latencies,
  };
}
