/**
 * The ops dashboard (`GET /dashboard`). Every second it reads the server's own `/metrics`
 * (Prometheus text, parsed here) and every two seconds `GET /api/shards` with the admin
 * token; it keeps five minutes of readings in memory and draws them with uPlot: running
 * matches by game, subscribers and connections, frames and bytes in and out per second,
 * the tick lateness histogram of the last minute, change-feed clients, and the
 * matchmaker's queues when the server exports them (the panel stays hidden otherwise).
 *
 * The admin token is typed into the page, kept in this tab's sessionStorage (gone when
 * the tab closes) and sent only as `Authorization: Bearer` to this origin.
 *
 * For tests, `window.__pylonDashboard.state()` returns what the page shows as plain data.
 */

import "./dashboard.css";
import { byId, el, formatBytes, formatCount, formatDuration, formatMs, setText } from "../common/dom.js";
import { BucketChart, type Line, TimeChart } from "./charts.js";
import { type Histogram, type Metrics, bucketCounts, byLabel, histogram, parseMetrics, quantile, rate, total } from "./prom.js";

const TOKEN_KEY = "pylon.dashboard.adminToken";
const HISTORY_SECS = 300;
const LATENESS_WINDOW_SECS = 60;
const METRICS_EVERY_MS = 1000;
const SHARDS_EVERY_MS = 2000;

interface MatchRow {
  id: string;
  game: string;
  running: boolean;
  tick: number;
  subscribers: number;
  input_queue: number;
  tick_rate_hz: number;
  state: string;
}

interface Reading {
  /** Unix seconds. */
  t: number;
  m: Metrics;
}

const readings: Reading[] = [];
let token: string | null = readToken();
let admin = false;
let matches: MatchRow[] = [];
let polls = 0;
let shardPolls = 0;
let lastError: string | null = null;
let metricsError: string | null = null;

const form = byId<HTMLFormElement>("token-form");
const tokenInput = byId<HTMLInputElement>("token");
const forget = byId<HTMLButtonElement>("forget");
const authStatus = byId("auth-status");
const errorBox = byId("error");

const tiles = {
  uptime: byId("t-uptime"),
  threads: byId("t-threads"),
  matches: byId("t-matches"),
  subscribers: byId("t-subscribers"),
  sockets: byId("t-sockets"),
  sse: byId("t-sse"),
  feeds: byId("t-feeds"),
  ticks: byId("t-ticks"),
  inputs: byId("t-inputs"),
  lateness: byId("t-lateness"),
};

const charts = {
  matches: new TimeChart(byId("c-matches"), (v) => formatCount(v), true),
  clients: new TimeChart(byId("c-clients"), (v) => formatCount(v), true),
  frames: new TimeChart(byId("c-frames"), (v) => `${formatCount(v)}/s`),
  bytes: new TimeChart(byId("c-bytes"), (v) => `${formatBytes(v)}/s`),
  lateness: new BucketChart(byId("c-lateness")),
  feeds: new TimeChart(byId("c-feeds"), (v) => (Number.isInteger(v) ? formatCount(v) : v.toFixed(1)), false),
  queues: new TimeChart(byId("c-queues"), (v) => formatCount(v), true),
};
const matchmakerPanel = byId("p-matchmaker");
const queueTable = byId<HTMLTableSectionElement>("mm-rows");
const latenessNote = byId("lateness-note");
const matchesBody = byId<HTMLTableSectionElement>("match-rows");
const gamesSummary = byId("games-summary");
const matchesNote = byId("matches-note");

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(value: string | null): void {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

function authHeaders(): HeadersInit {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Checks a token with `GET /api/auth/me`; only the admin token is kept. */
async function signIn(candidate: string): Promise<void> {
  setText(authStatus, "checking…");
  const res = await fetch("/api/auth/me", { headers: { authorization: `Bearer ${candidate}` }, cache: "no-store" });
  const body = (await res.json().catch(() => null)) as { is_admin?: boolean; error?: { message?: string } } | null;
  if (!res.ok) {
    admin = false;
    setText(authStatus, `refused: ${body?.error?.message ?? res.status}`);
    return;
  }
  if (!body?.is_admin) {
    admin = false;
    setText(authStatus, "that token is a session, not the admin token");
    return;
  }
  token = candidate;
  admin = true;
  storeToken(candidate);
  tokenInput.value = "";
  setText(authStatus, "signed in as admin");
  forget.hidden = false;
  void pollShards();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const value = tokenInput.value.trim();
  if (value) void signIn(value).catch((err: unknown) => setText(authStatus, `cannot check: ${String(err)}`));
});
forget.addEventListener("click", () => {
  token = null;
  admin = false;
  matches = [];
  storeToken(null);
  forget.hidden = true;
  setText(authStatus, "not signed in: live matches need the admin token");
  renderMatches();
});

async function pollMetrics(): Promise<void> {
  try {
    const res = await fetch("/metrics", { headers: authHeaders(), cache: "no-store" });
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    const m = parseMetrics(await res.text());
    readings.push({ t: Date.now() / 1000, m });
    while (readings.length > 0 && readings[0]!.t < Date.now() / 1000 - HISTORY_SECS) readings.shift();
    polls += 1;
    metricsError = null;
    render();
  } catch (e) {
    metricsError = e instanceof Error ? e.message : String(e);
  }
  showError();
}

async function pollShards(): Promise<void> {
  if (!token || !admin) return;
  try {
    const res = await fetch("/api/shards", { headers: authHeaders(), cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      admin = false;
      setText(authStatus, "the admin token was refused: sign in again");
      return;
    }
    if (!res.ok) throw new Error(`/api/shards answered ${res.status}`);
    matches = (await res.json()) as MatchRow[];
    shardPolls += 1;
    lastError = null;
    renderMatches();
  } catch (e) {
    lastError = e instanceof Error ? e.message : String(e);
  }
  showError();
}

function showError(): void {
  const text = [metricsError, lastError].filter(Boolean).join(" · ");
  errorBox.hidden = text === "";
  setText(errorBox, text);
}

/** The reading closest to `secsAgo` before the newest (the oldest one when history is shorter). */
function readingAgo(secsAgo: number): Reading | null {
  const newest = readings.at(-1);
  if (!newest) return null;
  let best: Reading | null = null;
  for (const r of readings) {
    if (r.t <= newest.t - secsAgo) best = r;
    else break;
  }
  return best ?? readings[0] ?? null;
}

function series(f: (m: Metrics) => number | null): (number | null)[] {
  return readings.map((r) => f(r.m));
}

/** Per-second rates of a counter between consecutive readings (the first is null). */
function rates(f: (m: Metrics) => number | null): (number | null)[] {
  return readings.map((r, i) => {
    const prev = readings[i - 1];
    return prev ? rate(f(r.m), f(prev.m), r.t - prev.t) : null;
  });
}

function render(): void {
  const newest = readings.at(-1);
  if (!newest) return;
  const m = newest.m;
  const times = readings.map((r) => r.t);
  const prev = readings.at(-2);
  const perSec = (name: string) => (prev ? rate(total(m, name), total(prev.m, name), newest.t - prev.t) : null);

  setText(tiles.uptime, formatDuration(total(m, "pylon_uptime_seconds") ?? NaN));
  setText(tiles.threads, formatCount(total(m, "pylon_tick_threads") ?? NaN));
  setText(tiles.matches, formatCount(total(m, "pylon_matches") ?? 0));
  setText(tiles.subscribers, formatCount(total(m, "pylon_subscribers") ?? NaN));
  setText(tiles.sockets, formatCount(total(m, "pylon_socket_connections") ?? NaN));
  setText(tiles.sse, formatCount(total(m, "pylon_sse_streams") ?? NaN));
  setText(tiles.feeds, formatCount(total(m, "pylon_presence_sockets") ?? NaN));
  setText(tiles.ticks, formatCount(perSec("pylon_ticks_total") ?? NaN));
  setText(tiles.inputs, formatCount(perSec("pylon_inputs_applied_total") ?? NaN));

  // Running matches by game: one line per game seen in the window.
  const games = new Set<string>();
  for (const r of readings) for (const g of Object.keys(byLabel(r.m, "pylon_matches", "game"))) games.add(g);
  const gameLines: Line[] = [...games].sort().map((g) => ({
    label: g,
    values: series((x) => byLabel(x, "pylon_matches", "game")[g] ?? 0),
  }));
  charts.matches.update(times, gameLines.length ? gameLines : [{ label: "matches", values: series(() => 0) }]);

  charts.clients.update(times, [
    { label: "subscribers", values: series((x) => total(x, "pylon_subscribers")), colour: "#58a6ff" },
    { label: "shard sockets", values: series((x) => total(x, "pylon_socket_connections")), colour: "#3fb950" },
    { label: "SSE snapshot streams", values: series((x) => total(x, "pylon_sse_streams")), colour: "#d29922" },
  ]);
  charts.frames.update(times, [
    { label: "frames out", values: rates((x) => total(x, "pylon_frames_out_total")), colour: "#58a6ff" },
    { label: "frames in", values: rates((x) => total(x, "pylon_frames_in_total")), colour: "#3fb950" },
  ]);
  charts.bytes.update(times, [
    { label: "bytes out", values: rates((x) => total(x, "pylon_bytes_out_total")), colour: "#58a6ff" },
    { label: "bytes in", values: rates((x) => total(x, "pylon_bytes_in_total")), colour: "#3fb950" },
  ]);
  renderLateness(m);
  charts.feeds.update(times, [
    { label: "sync sockets open", values: series((x) => total(x, "pylon_presence_sockets")), colour: "#a371f7" },
    {
      label: "feed streams opened/s (/ws, /events)",
      values: rates((x) => {
        const ws = total(x, "pylon_http_requests_total", { route: "/ws" }) ?? 0;
        const sse = total(x, "pylon_http_requests_total", { route: "/events" }) ?? 0;
        return ws + sse;
      }),
      colour: "#d29922",
    },
  ]);
  renderMatchmaker(times, m);
}

function renderLateness(m: Metrics): void {
  const now = histogram(m, "pylon_tick_lateness_seconds");
  if (!now) {
    setText(latenessNote, "the server exports no tick lateness histogram");
    return;
  }
  const before = readingAgo(LATENESS_WINDOW_SECS);
  const old: Histogram | null = before && before !== readings.at(-1) ? histogram(before.m, "pylon_tick_lateness_seconds") : null;
  const counts = bucketCounts(now, old);
  const labels = now.le.map(shortBound);
  charts.lateness.update(labels, counts, "ticks");
  const n = counts.reduce((a, b) => a + b, 0);
  const p50 = quantile(now.le, counts, 0.5);
  const p99 = quantile(now.le, counts, 0.99);
  const span = old && before ? Math.round(readings.at(-1)!.t - before.t) : null;
  const fmt = (v: number | null) => (v === null ? "–" : v === Infinity ? "> 250 ms" : `≤ ${formatMs(v * 1000)}`);
  setText(
    latenessNote,
    `${formatCount(n)} ticks ${span ? `in the last ${span} s` : "since start"} · p50 ${fmt(p50)} · p99 ${fmt(p99)}`,
  );
  setText(tiles.lateness, fmt(p99));
}

/** A bucket bound in seconds, short: `10µs`, `2.5ms`, `+Inf`. */
function shortBound(le: number): string {
  if (le === Infinity) return "+Inf";
  if (le < 1e-3) return `${Math.round(le * 1e6)}µs`;
  if (le < 1) return `${Number((le * 1e3).toPrecision(3))}ms`;
  return `${Number(le.toPrecision(3))}s`;
}

/** The matchmaker's families (`pylon_matchmaker_*`): gauges charted, everything listed. */
function renderMatchmaker(times: number[], m: Metrics): void {
  const families = [...m.values()].filter((f) => f.name.startsWith("pylon_matchmaker_"));
  matchmakerPanel.hidden = families.length === 0;
  if (families.length === 0) return;
  const gauges = families.filter((f) => f.type === "gauge");
  const lines: Line[] = [];
  for (const f of gauges) {
    const keys = new Set<string>();
    for (const r of readings) for (const s of r.m.get(f.name)?.samples ?? []) keys.add(labelKey(s.labels));
    for (const key of [...keys].sort()) {
      lines.push({
        label: `${f.name.replace("pylon_matchmaker_", "")}${key ? ` ${key}` : ""}`,
        values: series((x) => {
          const s = x.get(f.name)?.samples.find((v) => labelKey(v.labels) === key);
          return s ? s.value : null;
        }),
      });
    }
  }
  if (lines.length) charts.queues.update(times, lines.slice(0, 12));
  const samples = families.flatMap((f) => f.samples.filter((s) => !s.name.endsWith("_bucket")));
  queueTable.replaceChildren(
    ...samples.slice(0, 100).map((s) => {
      const tr = el("tr");
      tr.append(
        el("td", { class: "mono" }, s.name),
        el("td", { class: "mono" }, labelKey(s.labels)),
        el("td", { class: "num" }, Number.isInteger(s.value) ? formatCount(s.value) : s.value.toFixed(3)),
      );
      return tr;
    }),
  );
}

function labelKey(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k]) => k !== "le")
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

const MAX_ROWS = 200;

function renderMatches(): void {
  if (!admin) {
    matchesBody.replaceChildren();
    setText(gamesSummary, "");
    setText(matchesNote, "Sign in with the admin token to list the live matches.");
    return;
  }
  const byGame = new Map<string, { matches: number; subscribers: number }>();
  for (const x of matches) {
    const g = byGame.get(x.game) ?? { matches: 0, subscribers: 0 };
    g.matches += 1;
    g.subscribers += x.subscribers;
    byGame.set(x.game, g);
  }
  gamesSummary.replaceChildren(
    ...[...byGame.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([game, g]) =>
        el("span", { class: "chip" }, `${game}: ${plural(g.matches, "match", "matches")}, ${plural(g.subscribers, "subscriber", "subscribers")}`),
      ),
  );
  const sorted = [...matches].sort((a, b) => a.game.localeCompare(b.game) || b.subscribers - a.subscribers || (a.id < b.id ? -1 : 1));
  matchesBody.replaceChildren(
    ...sorted.slice(0, MAX_ROWS).map((x) => {
      const tr = el("tr", { "data-match-id": x.id });
      tr.append(
        el("td", {}, x.game),
        el("td", { class: "mono" }, x.id),
        el("td", { class: "num" }, formatCount(x.subscribers)),
        el("td", { class: "num" }, formatCount(x.tick)),
        el("td", { class: "num" }, `${x.tick_rate_hz} Hz`),
        el("td", { class: "num" }, formatCount(x.input_queue)),
        el("td", {}, x.running ? x.state || "running" : "stopped"),
      );
      return tr;
    }),
  );
  setText(
    matchesNote,
    matches.length === 0
      ? "No match is running."
      : matches.length > MAX_ROWS
        ? `Showing ${MAX_ROWS} of ${formatCount(matches.length)} matches.`
        : `${plural(matches.length, "match", "matches")}.`,
  );
}

function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

declare global {
  interface Window {
    __pylonDashboard?: { state: () => unknown };
  }
}

window.__pylonDashboard = {
  state: () => {
    const m = readings.at(-1)?.m;
    return {
      polls,
      shardPolls,
      admin,
      error: metricsError ?? lastError,
      games: m ? byLabel(m, "pylon_matches", "game") : {},
      subscribers: m ? total(m, "pylon_subscribers") : null,
      syncSockets: m ? total(m, "pylon_presence_sockets") : null,
      matches: matches.map((x) => ({ id: x.id, game: x.game, subscribers: x.subscribers, tick: x.tick })),
      chartsDrawn: Object.values(charts).filter((c) => c.drawn).length,
      latenessTicks: m ? (histogram(m, "pylon_tick_lateness_seconds")?.count ?? 0) : 0,
      matchmakerPanel: !matchmakerPanel.hidden,
    };
  },
};

if (token) {
  forget.hidden = false;
  void signIn(token).catch(() => setText(authStatus, "cannot reach the server"));
} else {
  setText(authStatus, "not signed in: live matches need the admin token");
}
renderMatches();
void pollMetrics();
setInterval(() => void pollMetrics(), METRICS_EVERY_MS);
setInterval(() => void pollShards(), SHARDS_EVERY_MS);
