/**
 * The playable demo (`GET /demo`): a guest session, a seat through the matchmaker (or
 * join-or-create), the arena on a canvas with the local player predicted and the others
 * interpolated, and a HUD with tick, ping, input -> ack latency, bytes/s and the wire
 * mode. Keyboard: WASD or the arrow keys.
 *
 * For tests, `window.__pylonDemo` exposes `state()` (a plain-data view of everything the
 * HUD shows, the players included) and `move(dx, dy)` / `release()` (hold a direction as
 * the keys would, and let go).
 */

import "./demo.css";
import { type CloseInfo, shardInfo } from "@pylon/client";
import { byId, el, formatBytes, formatMs, setText } from "../common/dom.js";
import { type ArenaOutcome, type ArenaPlayer, type ArenaState, DEFAULT_SPEED, FIELD_SIZE, type Move, direction, findPlayer, predictArena } from "./arena.js";
import { type GameLink, compatLink, realtimeLink } from "./link.js";
import { MODE_LABELS, WIRE_MODES, compatOptions, modeHref, parseConfig, realtimeOptions } from "./options.js";
import { type SeatPath, findSeat, guest } from "./queue.js";
import { draw, fitCanvas, shortId } from "./render.js";

type Phase = "starting" | "queueing" | "connecting" | "playing" | "ended" | "error";

const cfg = parseConfig(location.search);
const origin = location.origin;

const canvas = byId<HTMLCanvasElement>("arena");
const banner = byId("banner");
const hud = {
  status: byId("hud-status"),
  mode: byId("hud-mode"),
  transport: byId("hud-transport"),
  match: byId("hud-match"),
  path: byId("hud-path"),
  region: byId("hud-region"),
  tick: byId("hud-tick"),
  ping: byId("hud-ping"),
  ack: byId("hud-ack"),
  pending: byId("hud-pending"),
  bytes: byId("hud-bytes"),
  frames: byId("hud-frames"),
  time: byId("hud-time"),
};
const scores = byId<HTMLOListElement>("scores");
const share = byId<HTMLAnchorElement>("share");
const again = byId<HTMLButtonElement>("again");

let phase: Phase = "starting";
let errorText: string | null = null;
let path: SeatPath | null = null;
let matchId: string | null = null;
let me = "";
let ticket: string | null = null;
let region: string | null = null;
let latencies: Record<string, number> = {};
let link: GameLink | null = null;
let tickRateHz = 20;
let outcome: ArenaOutcome | null = null;
let queueing: AbortController | null = null;

// Input: held keys, or a direction held by a test through the hook.
const keys = new Set<string>();
let held: Move | null = null;
let lastSent: Move = { dx: 0, dy: 0 };
let lastSentAt = 0;
let inputTimer: ReturnType<typeof setInterval> | null = null;

// HUD rates, measured once a second.
let pingMs: number | null = null;
let bytesPerSec = 0;
let framesPerSec = 0;
let lastCount = { at: performance.now(), bytes: 0, frames: 0 };

function setPhase(next: Phase, message: string | null = null): void {
  phase = next;
  errorText = next === "error" ? message : null;
  const text =
    next === "error" ? `Error: ${message ?? "unknown"}` : next === "ended" ? (message ?? "The match finished.") : message;
  banner.hidden = !text;
  setText(banner, text ?? "");
  banner.className = `banner ${next}`;
  again.hidden = next !== "ended" && next !== "error";
}

async function start(): Promise<void> {
  outcome = null;
  setPhase("starting", "Signing in as a guest…");
  const session = await guest(origin);
  me = session.user_id;
  let seat;
  if (cfg.match) {
    path = "link";
    seat = { matchId: cfg.match, sid: session.user_id, token: session.token, wsUrl: null };
  } else {
    setPhase("queueing", "Looking for a match…");
    queueing = new AbortController();
    const seated = await findSeat(origin, session, queueing.signal, (id) => {
      ticket = id;
      setPhase("queueing", "Queued: waiting for other players…");
    });
    queueing = null;
    path = seated.path;
    seat = seated.seat;
    region = seated.region;
    latencies = seated.latencies;
  }
  me = seat.sid;
  matchId = seat.matchId;
  setPhase("connecting", "Connecting…");
  const info = await shardInfo({ baseUrl: origin }, seat.matchId);
  tickRateHz = info.tick_rate_hz > 0 ? info.tick_rate_hz : 20;
  const predict = predictArena(me, DEFAULT_SPEED, tickRateHz);
  const events = {
    snapshot: () => {
      if (phase === "connecting") setPhase("playing");
    },
    end: (o: ArenaOutcome) => {
      outcome = o;
      stopInputs();
      const winner = o.winner ? (o.winner === me ? "You won" : `${shortId(o.winner)} won`) : "No winner";
      setPhase("ended", `Match over (${o.reason.replace("_", " ")}). ${winner}.`);
    },
    close: (info: CloseInfo) => onClose(info),
    error: (e: Error) => {
      // Reported again by the close that follows when the client gives up.
      console.warn(`pylon demo: ${e.message}`);
    },
  };
  link =
    cfg.mode === "compat"
      ? compatLink(seat.matchId, compatOptions(location, cfg, seat), predict, tickRateHz, events)
      : realtimeLink(seat.matchId, realtimeOptions(location, cfg, seat), predict, tickRateHz, events);
  share.href = `/demo${modeHref(`match=${encodeURIComponent(seat.matchId)}`, cfg.mode)}`;
  share.hidden = false;
  startInputs();
}

function onClose(info: CloseInfo): void {
  if (info.willReconnect || phase === "ended") return;
  stopInputs();
  if (info.error) {
    console.error(`pylon demo: connection closed: ${info.code} ${info.reason}`);
    setPhase("error", `${info.error.message} (close ${info.code})`);
  } else if (phase !== "error") {
    setPhase("ended", info.reason ? `Disconnected: ${info.reason}.` : "Disconnected.");
  }
}

function currentDirection(): Move {
  if (held) return held;
  const k = (a: string, b: string) => keys.has(a) || keys.has(b);
  return direction(k("KeyA", "ArrowLeft"), k("KeyD", "ArrowRight"), k("KeyW", "ArrowUp"), k("KeyS", "ArrowDown"));
}

/** One input per tick while a direction is held, and one `{0, 0}` when it is let go. */
function inputTick(): void {
  if (!link?.connected) return;
  const dir = currentDirection();
  const moving = dir.dx !== 0 || dir.dy !== 0;
  const wasMoving = lastSent.dx !== 0 || lastSent.dy !== 0;
  if (!moving && !wasMoving) return;
  if (link.send(dir)) {
    lastSent = dir;
    lastSentAt = performance.now();
  }
}

function startInputs(): void {
  stopInputs();
  inputTimer = setInterval(inputTick, 1000 / tickRateHz);
}

function stopInputs(): void {
  if (inputTimer) clearInterval(inputTimer);
  inputTimer = null;
  lastSent = { dx: 0, dy: 0 };
}

const ARROWS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "KeyW", "KeyA", "KeyS", "KeyD"]);
window.addEventListener("keydown", (e) => {
  if (!ARROWS.has(e.code) || e.target instanceof HTMLInputElement) return;
  e.preventDefault();
  keys.add(e.code);
});
window.addEventListener("keyup", (e) => keys.delete(e.code));
window.addEventListener("blur", () => keys.clear());

/** The local player as predicted, eased into the newest input's step over one tick. */
function localPlayer(now: number): ArenaPlayer | null {
  const p = findPlayer(link?.predicted ?? null, me);
  if (!p) return null;
  const step = DEFAULT_SPEED / tickRateHz;
  const rest = 1 - Math.min(1, Math.max(0, (now - lastSentAt) / (1000 / tickRateHz)));
  const clamp = (v: number) => Math.max(0, Math.min(FIELD_SIZE, v));
  return { ...p, x: clamp(p.x - lastSent.dx * step * rest), y: clamp(p.y - lastSent.dy * step * rest) };
}

function frame(): void {
  fitCanvas(canvas);
  const now = performance.now();
  const state = link?.state ?? null;
  draw(canvas, {
    others: link?.interpolated(now) ?? null,
    me: localPlayer(now),
    meServer: findPlayer(state, me) ?? null,
    pickups: state?.pickups ?? [],
    meId: me,
  });
  requestAnimationFrame(frame);
}

function updateHud(): void {
  const now = performance.now();
  const stats = link?.stats;
  if (stats) {
    const dt = (now - lastCount.at) / 1000;
    if (dt >= 0.9) {
      bytesPerSec = (stats.bytes - lastCount.bytes) / dt;
      framesPerSec = (stats.frames - lastCount.frames) / dt;
      lastCount = { at: now, bytes: stats.bytes, frames: stats.frames };
    }
  }
  setText(hud.status, phase);
  setText(hud.mode, MODE_LABELS[cfg.mode]);
  setText(hud.transport, link?.transport ?? "–");
  setText(hud.match, matchId ?? "–");
  setText(hud.path, path ?? "–");
  const measured = region !== null ? latencies[region] : undefined;
  setText(hud.region, region === null ? "–" : measured !== undefined ? `${region} (${formatMs(measured)})` : region);
  setText(hud.tick, link ? String(link.tick) : "–");
  setText(hud.ping, formatMs(pingMs));
  const lat = link?.latency;
  setText(
    hud.ack,
    lat && lat.samples > 0 ? `${formatMs(lat.lastMs)} (avg ${formatMs(lat.avgMs)}, jitter ${formatMs(lat.jitterMs)})` : "–",
  );
  setText(hud.pending, link ? String(link.pending) : "–");
  setText(hud.bytes, link ? `${formatBytes(bytesPerSec)}/s` : "–");
  setText(hud.frames, link ? `${framesPerSec.toFixed(0)}/s` : "–");
  const state = link?.state;
  setText(hud.time, state ? `${Math.ceil(state.time_left_secs)} s` : "–");
  const players = [...(state?.players ?? [])].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
  const rows = players.map((p) => `${p.id === me ? "you" : shortId(p.id)}:${p.score}`).join("|");
  if (scores.dataset.rows !== rows) {
    scores.dataset.rows = rows;
    scores.replaceChildren(
      ...players.map((p) => el("li", { class: p.id === me ? "me" : "" }, `${p.id === me ? "you" : shortId(p.id)} — ${p.score}`)),
    );
  }
}

async function ping(): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await fetch(`${origin}/health`, { cache: "no-store" });
    await res.arrayBuffer();
    if (res.ok) {
      const ms = performance.now() - t0;
      pingMs = pingMs === null ? ms : pingMs + (ms - pingMs) * 0.25;
    }
  } catch {
    // Unreachable for now: the HUD keeps the last figure and the connection reports the rest.
  }
}

function buildModeLinks(): void {
  const nav = byId("modes");
  for (const mode of WIRE_MODES) {
    const a = el("a", { href: modeHref(location.search, mode), title: MODE_LABELS[mode] }, mode);
    if (mode === cfg.mode) a.setAttribute("aria-current", "page");
    nav.append(a);
  }
}

function run(): void {
  start().catch((e: unknown) => {
    queueing = null;
    const message = e instanceof Error ? e.message : String(e);
    console.error(`pylon demo: ${message}`);
    setPhase("error", message);
  });
}

again.addEventListener("click", () => {
  link?.close();
  link = null;
  run();
});
window.addEventListener("pagehide", () => {
  queueing?.abort();
  link?.close();
});

/** Plain data for tests and for poking at from the console. */
function snapshot() {
  const state = link?.state ?? null;
  const mine = findPlayer(link?.predicted ?? null, me);
  return {
    phase,
    error: errorText,
    mode: cfg.mode,
    path,
    ticket,
    region,
    latencies,
    matchId,
    me,
    transport: link?.transport ?? null,
    connected: link?.connected ?? false,
    tick: link?.tick ?? 0,
    ack: link?.ack ?? null,
    pending: link?.pending ?? 0,
    stats: link ? { ...link.stats } : null,
    latency: link ? { ...link.latency } : null,
    pingMs,
    bytesPerSec,
    players: (state?.players ?? []).map((p) => ({ ...p })),
    predictedMe: mine ? { ...mine } : null,
    outcome,
  };
}

declare global {
  interface Window {
    __pylonDemo?: {
      state: typeof snapshot;
      move: (dx: number, dy: number) => void;
      release: () => void;
    };
  }
}

window.__pylonDemo = {
  state: snapshot,
  move(dx: number, dy: number) {
    held = { dx, dy };
  },
  release() {
    held = null;
  },
};

if (cfg.warning) console.warn(`pylon demo: ${cfg.warning}`);
buildModeLinks();
setInterval(updateHud, 250);
setInterval(() => void ping(), 2000);
void ping();
requestAnimationFrame(frame);
run();
