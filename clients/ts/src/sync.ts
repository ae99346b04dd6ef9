/**
 * The change feed and presence, on the entity-sync socket.
 *
 * Changes: the WebSocket `/ws?since=N` on the main port (or `syncUrl`, such as port +1),
 * one JSON text frame per change `{"seq","entity","row_id","kind","data"?,"timestamp"}`;
 * when the WebSocket cannot open, SSE `/events` (or `eventsUrl`, such as port +2) with
 * `id: <seq>`, resumed with `Last-Event-ID`. Events with a seq at or below the last seen
 * are dropped; reconnects resume after the last seen. When the server no longer holds
 * what the feed needs (a `RESYNC_REQUIRED` error frame and close 4410, or an SSE `resync`
 * event) the feed stops and reports a `ResyncRequiredError`: reload, then subscribe again.
 *
 * Presence (WebSocket only): `setPresence(data)` sends `{"type":"presence","event":"update","data"}`
 * and `publish(topic, data)` sends `{"type":"topic","topic","data"}`; the server relays
 * them to the other clients with `from`, and announces a client's departure with
 * `{"type":"presence","event":"disconnect","clientId"}`. Presence is re-sent on reconnect.
 */

import { Backoff } from "./backoff.js";
import type { ChangeEvent } from "./entities.js";
import { bearerProtocol, resolveOrigin, toWebSocketUrl } from "./endpoints.js";
import { CloseCode, PylonError, ResyncRequiredError, ShardCloseError } from "./errors.js";
import type { HttpOptions } from "./http.js";
import { readEventStream } from "./sse.js";
import { type WebSocketCtor, type WebSocketLike, WS_OPEN, findWebSocket, messageBytes, messageText } from "./transport.js";

export interface SyncOptions extends HttpOptions {
  /** Deliver changes after this seq (default: only changes made from now on). */
  since?: number;
  /** `"auto"` (default): WebSocket, SSE when it cannot open. */
  transport?: "auto" | "websocket" | "sse";
  /** An explicit sync WebSocket URL (default: `/ws` on the main port). */
  syncUrl?: string;
  /** An explicit SSE URL (default: `/events` on the main port). */
  eventsUrl?: string;
  /** Deliver only changes of these entities (filtered here; default: all the caller may read). */
  entities?: string[];
  autoReconnect?: boolean;
  reconnectBackoffMs?: number;
  maxReconnectBackoffMs?: number;
  random?: () => number;
  WebSocket?: WebSocketCtor;
}

/** A presence message relayed by the server. */
export type PresenceEvent =
  | { event: "disconnect"; clientId: string }
  | { event: string; from: string; data: unknown };

/** A topic message relayed by the server. */
export interface TopicMessage {
  topic: string;
  data: unknown;
  from: string | undefined;
}

/** Classifies one sync socket frame (exported for tests). */
export function parseSyncFrame(
  text: string,
):
  | { type: "change"; change: ChangeEvent }
  | { type: "presence"; presence: PresenceEvent }
  | { type: "topic"; topic: TopicMessage }
  | { type: "resync"; oldestSeq: number | undefined }
  | { type: "error"; error: PylonError }
  | { type: "unknown" } {
  let m: Record<string, unknown>;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) return { type: "unknown" };
    m = v as Record<string, unknown>;
  } catch {
    return { type: "unknown" };
  }
  if (typeof m.seq === "number" && typeof m.entity === "string" && typeof m.kind === "string") {
    return { type: "change", change: m as unknown as ChangeEvent };
  }
  if (m.type === "presence") {
    if (m.event === "disconnect") {
      return { type: "presence", presence: { event: "disconnect", clientId: String(m.clientId ?? m.from ?? "") } };
    }
    return {
      type: "presence",
      presence: { event: typeof m.event === "string" ? m.event : "update", from: String(m.from ?? m.clientId ?? ""), data: m.data },
    };
  }
  if (m.type === "topic" && typeof m.topic === "string") {
    return { type: "topic", topic: { topic: m.topic, data: m.data, from: typeof m.from === "string" ? m.from : undefined } };
  }
  const err = (typeof m.error === "object" && m.error !== null ? m.error : m.code ? m : null) as Record<string, unknown> | null;
  if (err && typeof err.code === "string") {
    if (err.code === "RESYNC_REQUIRED") {
      return { type: "resync", oldestSeq: typeof err.oldest_seq === "number" ? err.oldest_seq : undefined };
    }
    return {
      type: "error",
      error: new PylonError(0, err.code, typeof err.message === "string" ? err.message : err.code),
    };
  }
  return { type: "unknown" };
}

type Fn<A extends unknown[]> = (...args: A) => void;

export class SyncConnection {
  /** The highest change seq delivered (or the `since` given). */
  lastSeq: number;
  /** What carries the feed now. */
  transport: "websocket" | "sse" | null = null;
  connected = false;
  /** Presence of the other clients by client id (what each last sent). */
  readonly peers = new Map<string, unknown>();

  private readonly handlers = {
    change: new Set<Fn<[ChangeEvent]>>(),
    presence: new Set<Fn<[PresenceEvent]>>(),
    topic: new Set<Fn<[TopicMessage]>>(),
    error: new Set<Fn<[Error]>>(),
    open: new Set<Fn<["websocket" | "sse"]>>(),
    close: new Set<Fn<[{ code: number; reason: string; willReconnect: boolean }]>>(),
    resync: new Set<Fn<[ResyncRequiredError]>>(),
  };
  private readonly backoff: Backoff;
  private ws: WebSocketLike | null = null;
  private sse: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private useSse: boolean;
  private presence: unknown = undefined;
  private readonly hasSince: boolean;

  constructor(private readonly opts: SyncOptions = {}) {
    this.lastSeq = opts.since ?? 0;
    this.hasSince = opts.since !== undefined;
    this.useSse = opts.transport === "sse";
    this.backoff = new Backoff({
      initialMs: opts.reconnectBackoffMs ?? 500,
      maxMs: opts.maxReconnectBackoffMs ?? 10_000,
      ...(opts.random ? { random: opts.random } : {}),
    });
  }

  /** Starts (once); returns `this`. */
  connect(): this {
    if (!this.ws && !this.sse && !this.timer && !this.closed) this.open();
    return this;
  }

  onChange(fn: Fn<[ChangeEvent]>) {
    return this.add(this.handlers.change, fn);
  }
  onPresence(fn: Fn<[PresenceEvent]>) {
    return this.add(this.handlers.presence, fn);
  }
  /** Topic messages (all topics, or only `topic`). */
  onTopic(topic: string | null, fn: Fn<[TopicMessage]>) {
    return this.add(this.handlers.topic, (m: TopicMessage) => {
      if (topic === null || m.topic === topic) fn(m);
    });
  }
  onError(fn: Fn<[Error]>) {
    return this.add(this.handlers.error, fn);
  }
  onOpen(fn: Fn<["websocket" | "sse"]>) {
    return this.add(this.handlers.open, fn);
  }
  onClose(fn: Fn<[{ code: number; reason: string; willReconnect: boolean }]>) {
    return this.add(this.handlers.close, fn);
  }
  /** The feed stopped because the log no longer holds what it needs: reload, resubscribe. */
  onResync(fn: Fn<[ResyncRequiredError]>) {
    return this.add(this.handlers.resync, fn);
  }

  /** Sets this client's presence (sent now when the WebSocket is open, and on every reconnect). */
  setPresence(data: unknown): boolean {
    this.presence = data;
    return this.sendJson({ type: "presence", event: "update", data });
  }

  /** Sends a topic message to the other clients; `false` when the WebSocket is not open. */
  publish(topic: string, data: unknown): boolean {
    return this.sendJson({ type: "topic", topic, data });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      this.ws?.close(1000, "client closed");
    } catch {
      // already closing
    }
    this.sse?.abort();
  }

  private add<F>(set: Set<F>, fn: F): () => void {
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  }

  private emit<A extends unknown[]>(set: Set<Fn<A>>, ...args: A): void {
    for (const h of [...set]) {
      try {
        h(...args);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private sendJson(msg: unknown): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  private from(): number | undefined {
    return this.hasSince || this.lastSeq > 0 ? this.lastSeq : undefined;
  }

  private open(): void {
    this.timer = null;
    if (this.closed) return;
    const Ctor = findWebSocket(this.opts.WebSocket);
    if (this.useSse || !Ctor || this.opts.transport === "sse") {
      if (this.opts.transport === "websocket") {
        this.fail(new PylonError(0, "NO_WEBSOCKET", "no WebSocket implementation: pass one with the WebSocket option"));
        return;
      }
      this.openSse();
      return;
    }
    this.openWs(Ctor);
  }

  private wsUrl(): string {
    const url = this.opts.syncUrl
      ? new URL(this.opts.syncUrl)
      : new URL(`${toWebSocketUrl(resolveOrigin(this.opts.baseUrl).http)}/ws`);
    const since = this.from();
    if (since !== undefined) url.searchParams.set("since", String(since));
    return url.toString();
  }

  private openWs(Ctor: WebSocketCtor): void {
    let ws: WebSocketLike;
    try {
      ws = this.opts.token ? new Ctor(this.wsUrl(), [bearerProtocol(this.opts.token)]) : new Ctor(this.wsUrl());
    } catch (e) {
      this.emit(this.handlers.error, e instanceof Error ? e : new Error(String(e)));
      this.wsClosed(1006, "", false);
      return;
    }
    this.ws = ws;
    let opened = false;
    let resync: number | undefined | null = null;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.connected = true;
      this.transport = "websocket";
      this.backoff.reset();
      if (this.presence !== undefined) this.sendJson({ type: "presence", event: "update", data: this.presence });
      this.emit(this.handlers.open, "websocket");
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      const text = messageText(ev.data) ?? decodeUtf8(messageBytes(ev.data));
      if (text === null) return;
      const frame = parseSyncFrame(text);
      if (frame.type === "resync") resync = frame.oldestSeq;
      else this.frame(frame);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (resync !== null || ev.code === CloseCode.ResyncRequired) {
        this.connected = false;
        this.resync(resync ?? undefined);
        return;
      }
      this.wsClosed(ev.code, ev.reason ?? "", opened);
    };
  }

  private frame(frame: ReturnType<typeof parseSyncFrame>): void {
    switch (frame.type) {
      case "change":
        if (frame.change.seq <= this.lastSeq) return;
        this.lastSeq = frame.change.seq;
        if (this.opts.entities && !this.opts.entities.includes(frame.change.entity)) return;
        this.emit(this.handlers.change, frame.change);
        return;
      case "presence":
        if (frame.presence.event === "disconnect") this.peers.delete((frame.presence as { clientId: string }).clientId);
        else this.peers.set((frame.presence as { from: string }).from, (frame.presence as { data: unknown }).data);
        this.emit(this.handlers.presence, frame.presence);
        return;
      case "topic":
        this.emit(this.handlers.topic, frame.topic);
        return;
      case "error":
        this.emit(this.handlers.error, frame.error);
        return;
      default:
        return;
    }
  }

  private resync(oldestSeq: number | undefined): void {
    this.closed = true;
    const err = new ResyncRequiredError(oldestSeq);
    this.emit(this.handlers.close, { code: CloseCode.ResyncRequired, reason: "resync required", willReconnect: false });
    this.emit(this.handlers.resync, err);
    this.emit(this.handlers.error, err);
  }

  private fail(err: PylonError): void {
    this.closed = true;
    this.emit(this.handlers.error, err);
  }

  private wsClosed(code: number, reason: string, opened: boolean): void {
    this.connected = false;
    this.peers.clear();
    if (this.closed) {
      this.emit(this.handlers.close, { code, reason, willReconnect: false });
      return;
    }
    if (!opened && this.opts.transport !== "websocket") {
      this.useSse = true;
      this.emit(this.handlers.close, { code, reason, willReconnect: true });
      this.open();
      return;
    }
    // A refused token or a bad request will not get better by retrying.
    const fatal = code === CloseCode.PolicyViolation || code === CloseCode.BadRequest;
    this.retry(code, reason, code === CloseCode.Normal ? null : new ShardCloseError(code, reason), !fatal);
  }

  private retry(code: number, reason: string, error: PylonError | null, retryable: boolean): void {
    const willReconnect = retryable && this.opts.autoReconnect !== false;
    this.emit(this.handlers.close, { code, reason, willReconnect });
    if (error) this.emit(this.handlers.error, error);
    if (willReconnect) this.timer = setTimeout(() => this.open(), this.backoff.next());
    else this.closed = true;
  }

  private openSse(): void {
    const url = new URL(this.opts.eventsUrl ?? `${resolveOrigin(this.opts.baseUrl).http}/events`);
    const since = this.from();
    if (since !== undefined) url.searchParams.set("since", String(since));
    // EventSource cannot send headers, so the server reads the token from the query.
    if (this.opts.token) url.searchParams.set("token", this.opts.token);
    const ctrl = new AbortController();
    this.sse = ctrl;
    let resync: number | undefined | null = null;
    let opened = false;
    const streamOpts: Parameters<typeof readEventStream>[1] = {
      signal: ctrl.signal,
      onOpen: () => {
        if (this.sse !== ctrl) return;
        opened = true;
        this.connected = true;
        this.transport = "sse";
        this.backoff.reset();
        this.emit(this.handlers.open, "sse");
      },
    };
    if (this.lastSeq > 0) streamOpts.lastEventId = String(this.lastSeq);
    if (this.opts.fetch) streamOpts.fetch = this.opts.fetch;
    readEventStream(url.toString(), streamOpts, (ev) => {
      if (this.sse !== ctrl) return;
      if (ev.event === "resync") {
        const f = parseSyncFrame(ev.data);
        resync = f.type === "resync" ? f.oldestSeq : undefined;
        ctrl.abort();
        return;
      }
      this.frame(parseSyncFrame(ev.data));
    }).then(
      () => this.sseEnded(ctrl, resync, null, opened),
      (e: unknown) => this.sseEnded(ctrl, resync, e instanceof PylonError ? e : PylonError.network(e, "event stream"), opened),
    );
  }

  private sseEnded(ctrl: AbortController, resync: number | undefined | null, err: PylonError | null, opened: boolean): void {
    if (this.sse !== ctrl) return;
    this.sse = null;
    this.connected = false;
    if (this.closed) {
      this.emit(this.handlers.close, { code: 1000, reason: "client closed", willReconnect: false });
      return;
    }
    if (resync !== null) {
      this.resync(resync);
      return;
    }
    if (err) {
      if (err.code === "RESYNC_REQUIRED") {
        const oldest = err.details.oldest_seq;
        this.resync(typeof oldest === "number" ? oldest : undefined);
        return;
      }
      // Neither transport reached the server: try the WebSocket first next time.
      if (err.status === 0 && !opened && this.opts.transport !== "sse") this.useSse = false;
      const retryable = err.status === 0 || err.status >= 500 || err.status === 429;
      this.retry(1006, err.message, err, retryable);
      return;
    }
    this.retry(1006, "event stream ended", null, true);
  }
}

function decodeUtf8(bytes: Uint8Array | null): string | null {
  return bytes ? new TextDecoder().decode(bytes) : null;
}

/** Subscribes to the change feed; `onChange` gets every new change once, in seq order. */
export function subscribeChanges(options: SyncOptions, onChange: (change: ChangeEvent) => void): SyncConnection {
  const conn = new SyncConnection(options);
  conn.onChange(onChange);
  return conn.connect();
}
