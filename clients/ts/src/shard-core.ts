/**
 * One shard subscription, whatever carries it: a WebSocket in any wire mode, or the SSE
 * stream plus HTTP inputs when the WebSocket cannot open. Handles decoding (delta bases
 * and their acknowledgements included), reconnecting with backoff (same `sid`, so the
 * server resumes the subscription), following a 4421 to the owning region, and turning
 * close frames into typed errors. `connectShard` and `PylonRealtime` are built on it.
 */

import { Backoff } from "./backoff.js";
import {
  type WireFormat,
  decodeBinarySnapshot,
  decodeMsgpackFrame,
  decodeTextSnapshot,
  encodeBaseAck,
  encodeJsonInput,
  encodeMsgpackInput,
} from "./codec.js";
import { applyPatch, applyPatchV2, type Patch, type PatchV2 } from "./delta.js";
import { type EndpointOptions, bearerProtocol, resolveOrigin, shardSocketUrl } from "./endpoints.js";
import { CloseCode, PylonError, ShardCloseError } from "./errors.js";
import { postInput } from "./http.js";
import { readEventStream } from "./sse.js";
import {
  type FetchLike,
  type WebSocketCtor,
  type WebSocketLike,
  WS_OPEN,
  findWebSocket,
  messageBytes,
  messageText,
} from "./transport.js";

/** Connection options shared by `connectShard`, `useShard` and `PylonRealtime`. */
export interface ShardConnectionOptions extends EndpointOptions {
  /** Subscriber id (usually the user id; the server's default is the token's user). */
  subscriberId?: string;
  /** Session or admin token: the `bearer.` subprotocol on sockets, `?token=` on SSE, `Authorization` on HTTP. */
  token?: string;
  /** Use the SSE stream and HTTP inputs when the WebSocket cannot open (default true). */
  sseFallback?: boolean;
  /** Reconnect after a close worth retrying (default true). */
  autoReconnect?: boolean;
  /** First reconnect delay in ms, doubling per attempt (default 500). */
  reconnectBackoffMs?: number;
  /** Largest reconnect delay in ms (default 10 000). */
  maxReconnectBackoffMs?: number;
  /** Follow a 4421 close to the region named in its reason (default true). */
  followRegionRedirects?: boolean;
  /** WebSocket constructor (default: the global one; in Node 20 pass `ws`'s). */
  WebSocket?: WebSocketCtor;
  /** fetch (default: the global one). */
  fetch?: FetchLike;
  /** Uniform random in [0, 1) for backoff jitter (default `Math.random`). */
  random?: () => number;
}

/** How a subscription is carried right now. */
export type Transport = "websocket" | "sse";

/** Why and how a transport closed. */
export interface CloseInfo {
  /** The close code (SSE: the equivalent code; 1006 for a dropped connection). */
  code: number;
  reason: string;
  transport: Transport | null;
  /** Whether the client will connect again on its own. */
  willReconnect: boolean;
  /** The typed error for a close that was not a normal end, else `null`. */
  error: PylonError | null;
}

export interface CoreHandlers {
  snapshot(snapshot: unknown, tick: number, ack: number | null): void;
  open(transport: Transport): void;
  close(info: CloseInfo): void;
  error(err: Error): void;
  joined?(key: number, resumed: boolean): void;
  end?(outcome: unknown, tick: number): void;
  stopped?(code: string): void;
  redirect?(baseUrl: string): void;
}

/**
 * Delta snapshots: `false` (full snapshots only), `1` (patch format 1, `delta=1`) or `2`
 * (the denser patch format 2, `delta=2`). MessagePack only.
 */
export type DeltaFormat = false | 1 | 2;

export interface CoreOptions extends ShardConnectionOptions {
  format: WireFormat;
  delta: DeltaFormat;
  /** The key compat snapshots carry the ack under (`null`: none). */
  ackKey: string | null;
}

/** Delta bases kept (the server keeps 32; acknowledged bases are never older than that). */
const MAX_BASES = 64;
/** Redirects followed in a row before giving up. */
const MAX_REDIRECTS = 3;

/** The close code an SSE `stopped` event stands for. */
export function stoppedCloseCode(code: string): { code: number; reason: string } {
  switch (code) {
    case "shutdown":
      return { code: CloseCode.GoingAway, reason: "server shutting down" };
    case "panicked":
      return { code: CloseCode.InternalError, reason: "match stopped: game error" };
    case "forbidden":
      return { code: CloseCode.PolicyViolation, reason: "forbidden" };
    case "full":
      return { code: CloseCode.TryAgainLater, reason: "shard full" };
    case "gone":
      return { code: 1006, reason: "subscription dropped" };
    case "finished":
      return { code: CloseCode.TryAgainLater, reason: "match finished" };
    default:
      return { code: CloseCode.TryAgainLater, reason: code === "idle" ? "match stopped: idle" : "match stopped" };
  }
}

/** The close code an HTTP error of the SSE stream stands for, and whether to retry. */
function httpCloseCode(err: PylonError): { code: number; retry: boolean } {
  const s = err.status;
  if (s === 0) return { code: 1006, retry: true };
  if (s === 401 || s === 403) return { code: CloseCode.PolicyViolation, retry: false };
  if (s === 404) return { code: CloseCode.UnknownShard, retry: false };
  if (s === 429) return { code: CloseCode.RateLimited, retry: true };
  if (s === 503) return { code: CloseCode.TryAgainLater, retry: err.code !== "SHARD_UNAVAILABLE" };
  if (s >= 500 || s === 408) return { code: CloseCode.InternalError, retry: true };
  return { code: CloseCode.BadRequest, retry: false };
}

/** Counters of one client's traffic. */
export interface ShardStats {
  /** Messages received (frames or SSE events). */
  frames: number;
  /** Bytes of those messages (SSE: characters of the data). */
  bytes: number;
  /** Full snapshots received. */
  snapshots: number;
  /** Delta frames applied (MessagePack + delta). */
  deltas: number;
  /** Inputs sent. */
  inputs: number;
  /** Connections opened (the first and every reconnect). */
  opens: number;
}

export class ShardCore {
  readonly stats: ShardStats = { frames: 0, bytes: 0, snapshots: 0, deltas: 0, inputs: 0, opens: 0 };
  transport: Transport | null = null;
  connected = false;
  /** The newest snapshot tick received. */
  lastTick = 0;

  private readonly backoff: Backoff;
  private endpoint: EndpointOptions;
  private ws: WebSocketLike | null = null;
  private sse: AbortController | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private ended = false;
  private useSse = false;
  private redirects = 0;
  private healthy = false;
  /** Delta mode: snapshots by tick that deltas may use as base. */
  private bases = new Map<number, unknown>();
  private appliedBase = 0;
  private ackedBase = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private inputs: Promise<unknown> = Promise.resolve();

  constructor(
    readonly shardId: string,
    private readonly opts: CoreOptions,
    private readonly on: CoreHandlers,
  ) {
    this.backoff = new Backoff({
      initialMs: opts.reconnectBackoffMs ?? 500,
      maxMs: opts.maxReconnectBackoffMs ?? 10_000,
      ...(opts.random ? { random: opts.random } : {}),
    });
    this.endpoint = { ...pick(opts) };
  }

  /** Whether the subscription is over for good (closed by the app, ended, or refused). */
  get finished(): boolean {
    return this.closed;
  }

  start(): void {
    this.connect();
  }

  /** Sends one input with its sequence number; `false` when nothing is connected. */
  sendInput(input: unknown, seq: number | null): boolean {
    const ws = this.ws;
    if (ws && ws.readyState === WS_OPEN && this.transport === "websocket") {
      if (this.opts.format === "msgpack") {
        const base = this.opts.delta && this.appliedBase > 0 ? this.appliedBase : null;
        if (base !== null && base > this.ackedBase) this.ackedBase = base;
        ws.send(encodeMsgpackInput(seq, base, input));
      } else {
        ws.send(encodeJsonInput(input, seq));
      }
      this.stats.inputs += 1;
      return true;
    }
    if (this.transport === "sse" && this.connected) {
      const body: { input: unknown; client_seq?: number; subscriber_id?: string } = { input: input ?? null };
      if (seq !== null) body.client_seq = seq;
      if (this.opts.subscriberId) body.subscriber_id = this.opts.subscriberId;
      this.stats.inputs += 1;
      const http = this.httpOptions();
      // One request at a time, so inputs reach the server in order.
      this.inputs = this.inputs.then(() =>
        postInput(http, this.shardId, body).catch((e: unknown) => {
          if (!this.closed) this.on.error(e instanceof Error ? e : new Error(String(e)));
        }),
      );
      return true;
    }
    return false;
  }

  /** Closes for good (no reconnect). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    if (this.sse) this.sse.abort();
  }

  private httpOptions() {
    const http: { baseUrl: string; token?: string; fetch?: FetchLike } = {
      baseUrl: resolveOrigin(this.endpoint.baseUrl, this.endpoint.wsPort).http,
    };
    if (this.opts.token) http.token = this.opts.token;
    if (this.opts.fetch) http.fetch = this.opts.fetch;
    return http;
  }

  private connect(): void {
    this.timer = null;
    if (this.closed) return;
    this.resetStream();
    if (this.useSse) {
      this.connectSse();
      return;
    }
    const Ctor = findWebSocket(this.opts.WebSocket);
    if (!Ctor) {
      if (this.opts.sseFallback !== false) {
        this.useSse = true;
        this.connectSse();
      } else {
        this.giveUp(new PylonError(0, "NO_WEBSOCKET", "no WebSocket implementation: pass one with the WebSocket option"));
      }
      return;
    }
    this.connectWs(Ctor);
  }

  private resetStream(): void {
    this.bases.clear();
    this.appliedBase = 0;
    this.ackedBase = 0;
    this.healthy = false;
  }

  private connectWs(Ctor: WebSocketCtor): void {
    const url = shardSocketUrl(this.shardId, this.endpoint, {
      sid: this.opts.subscriberId,
      format: this.opts.format,
      delta: this.opts.format === "msgpack" && this.opts.delta,
    });
    let ws: WebSocketLike;
    try {
      ws = this.opts.token ? new Ctor(url, [bearerProtocol(this.opts.token)]) : new Ctor(url);
    } catch (e) {
      this.wsClosed(1006, e instanceof Error ? e.message : String(e), false);
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.connected = true;
      this.transport = "websocket";
      this.stats.opens += 1;
      this.on.open("websocket");
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.wsMessage(ev.data);
    };
    ws.onerror = () => {
      // The close event follows with the code; errors are reported there.
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.wsClosed(ev.code, ev.reason ?? "", opened);
    };
  }

  private wsClosed(code: number, reason: string, opened: boolean): void {
    this.connected = false;
    const transport = this.transport;
    if (this.closed) {
      this.on.close({ code, reason, transport, willReconnect: false, error: null });
      return;
    }
    if (!opened && this.opts.sseFallback !== false) {
      // The WebSocket never opened (blocked, no route, proxy): the SSE stream instead.
      this.useSse = true;
      this.on.close({ code, reason, transport: "websocket", willReconnect: true, error: null });
      this.connect();
      return;
    }
    this.afterClose(code, reason, transport, null);
  }

  /** Decides what follows a close: redirect, reconnect, or the end. */
  private afterClose(code: number, reason: string, transport: Transport | null, httpError: PylonError | null): void {
    if (
      code === CloseCode.WrongRegion &&
      this.opts.followRegionRedirects !== false &&
      reason.includes("://") &&
      this.redirects < MAX_REDIRECTS
    ) {
      this.redirects += 1;
      this.endpoint = { baseUrl: reason };
      this.on.close({ code, reason, transport, willReconnect: true, error: null });
      this.on.redirect?.(reason);
      this.connect();
      return;
    }
    const normal = code === CloseCode.Normal && !httpError;
    const error = normal ? null : (httpError ?? new ShardCloseError(code, reason));
    const retryable = httpError ? httpCloseCode(httpError).retry : error instanceof ShardCloseError && error.retryable;
    const willReconnect = this.opts.autoReconnect !== false && !this.ended && !normal && retryable;
    this.on.close({ code, reason, transport, willReconnect, error });
    if (error) this.on.error(error);
    if (willReconnect) {
      this.timer = setTimeout(() => this.connect(), this.backoff.next());
    } else {
      this.closed = true;
    }
  }

  private giveUp(err: PylonError): void {
    this.closed = true;
    this.on.error(err);
  }

  private wsMessage(data: unknown): void {
    this.stats.frames += 1;
    try {
      const text = messageText(data);
      if (text !== null) {
        this.stats.bytes += text.length;
        const { tick, snapshot } = decodeTextSnapshot(text);
        this.compatSnapshot(snapshot, tick);
        return;
      }
      const bytes = messageBytes(data);
      if (!bytes) return;
      this.stats.bytes += bytes.byteLength;
      if (this.opts.format === "msgpack") this.msgpackFrame(bytes);
      else {
        const { tick, snapshot } = decodeBinarySnapshot(bytes);
        this.compatSnapshot(snapshot, tick);
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.on.error(new PylonError(0, "DECODE_ERROR", `cannot decode a shard frame: ${err.message}`, undefined, {}, { cause: err }));
      if (this.opts.delta && this.opts.format === "msgpack") this.restart();
    }
  }

  /** Drops the socket and subscribes afresh (a delta that did not fit: start from a full snapshot). */
  private restart(): void {
    const ws = this.ws;
    this.ws = null;
    this.connected = false;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(1000, "resubscribing");
      } catch {
        // already closing
      }
    }
    this.on.close({ code: 1000, reason: "resubscribing", transport: this.transport, willReconnect: true, error: null });
    this.connect();
  }

  private compatSnapshot(snapshot: unknown, tick: number): void {
    let ack: number | null = null;
    const key = this.opts.ackKey;
    if (key && typeof snapshot === "object" && snapshot !== null && !Array.isArray(snapshot) && key in snapshot) {
      const { [key]: v, ...rest } = snapshot as Record<string, unknown>;
      if (typeof v === "number") ack = v;
      // A MessagePack client on the SSE fallback: the same snapshot shape as its frames,
      // which carry the ack beside the snapshot, not in it.
      if (this.opts.format === "msgpack") snapshot = rest;
    }
    this.delivered(snapshot, tick, ack);
  }

  private delivered(snapshot: unknown, tick: number, ack: number | null, delta = false): void {
    if (delta) this.stats.deltas += 1;
    else this.stats.snapshots += 1;
    if (!this.healthy) {
      this.healthy = true;
      this.redirects = 0;
      this.backoff.reset();
    }
    this.lastTick = tick;
    this.on.snapshot(snapshot, tick, ack);
  }

  private msgpackFrame(bytes: Uint8Array): void {
    const frame = decodeMsgpackFrame(bytes);
    switch (frame.kind) {
      case 1:
        if (this.opts.delta) this.remember(frame.tick, frame.body);
        this.delivered(frame.body, frame.tick, frame.ack);
        return;
      case 2: {
        if (!this.bases.has(frame.base)) {
          throw new Error(`delta against tick ${frame.base}, which this client does not hold`);
        }
        const base = this.bases.get(frame.base);
        const snapshot =
          this.opts.delta === 2 ? applyPatchV2(base, frame.body as PatchV2 | null) : applyPatch(base, frame.body as Patch | null);
        for (const t of this.bases.keys()) {
          if (t < frame.base) this.bases.delete(t);
        }
        this.remember(frame.tick, snapshot);
        this.delivered(snapshot, frame.tick, frame.ack, true);
        return;
      }
      case 3:
        this.ended = true;
        this.on.end?.(frame.body, frame.tick);
        return;
      case 4:
        this.on.stopped?.(frame.code);
        return;
      case 5:
        this.on.joined?.(frame.key, frame.resumed);
        return;
    }
  }

  /** Keeps a snapshot as a possible base and acknowledges it (delta mode). */
  private remember(tick: number, snapshot: unknown): void {
    this.bases.set(tick, snapshot);
    if (this.bases.size > MAX_BASES) {
      const oldest = this.bases.keys().next().value;
      if (oldest !== undefined) this.bases.delete(oldest);
    }
    if (tick > this.appliedBase) this.appliedBase = tick;
    // Acknowledge once the snapshot handlers have run: an input they send carries the
    // base already, and then no separate frame (which counts toward the server's input
    // rate limit) is needed.
    if (!this.ackTimer) this.ackTimer = setTimeout(() => this.flushBaseAck(), 0);
  }

  private flushBaseAck(): void {
    this.ackTimer = null;
    const ws = this.ws;
    const tick = this.appliedBase;
    if (tick > this.ackedBase && ws && ws.readyState === WS_OPEN) {
      this.ackedBase = tick;
      ws.send(encodeBaseAck(tick));
    }
  }

  private connectSse(): void {
    const origin = resolveOrigin(this.endpoint.baseUrl, this.endpoint.wsPort);
    const url = new URL(`${origin.http}/api/shards/${encodeURIComponent(this.shardId)}/connect`);
    if (this.opts.subscriberId) url.searchParams.set("sid", this.opts.subscriberId);
    // EventSource cannot send headers, so the server reads the token from the query here.
    if (this.opts.token) url.searchParams.set("token", this.opts.token);
    const ctrl = new AbortController();
    this.sse = ctrl;
    let end: { code: number; reason: string } | null = null;
    let opened = false;
    const resumeFrom = this.lastTick > 0 ? String(this.lastTick) : undefined;
    const streamOpts: Parameters<typeof readEventStream>[1] = {
      signal: ctrl.signal,
      onOpen: () => {
        if (this.sse !== ctrl) return;
        opened = true;
        this.connected = true;
        this.transport = "sse";
        this.stats.opens += 1;
        this.on.open("sse");
      },
    };
    if (this.opts.fetch) streamOpts.fetch = this.opts.fetch;
    if (resumeFrom) streamOpts.lastEventId = resumeFrom;
    readEventStream(url.toString(), streamOpts, (ev) => {
      if (this.sse !== ctrl) return;
      this.stats.frames += 1;
      this.stats.bytes += ev.data.length;
      try {
        if (ev.event === "message") {
          const tick = Number(ev.id);
          this.compatSnapshot(JSON.parse(ev.data), Number.isFinite(tick) ? tick : this.lastTick);
        } else if (ev.event === "end") {
          this.ended = true;
          const tick = Number(ev.id);
          this.on.end?.(JSON.parse(ev.data), Number.isFinite(tick) && ev.id !== "" ? tick : this.lastTick);
          end = { code: CloseCode.Normal, reason: "match finished" };
          ctrl.abort();
        } else if (ev.event === "stopped") {
          const code = String((JSON.parse(ev.data) as { code?: unknown }).code ?? "stopped");
          this.on.stopped?.(code);
          end = stoppedCloseCode(code);
          ctrl.abort();
        }
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        this.on.error(new PylonError(0, "DECODE_ERROR", `cannot decode an SSE event: ${err.message}`));
      }
    }).then(
      () => this.sseEnded(ctrl, end, null, opened),
      (e: unknown) => this.sseEnded(ctrl, end, e instanceof PylonError ? e : PylonError.network(e, "event stream"), opened),
    );
  }

  private sseEnded(
    ctrl: AbortController,
    end: { code: number; reason: string } | null,
    err: PylonError | null,
    opened: boolean,
  ): void {
    if (this.sse !== ctrl) return;
    this.sse = null;
    this.connected = false;
    // Neither transport reached the server: the next attempt tries the WebSocket again.
    if (err && err.status === 0 && !opened) this.useSse = false;
    const transport = this.transport;
    if (this.closed) {
      this.on.close({ code: 1000, reason: "client closed", transport, willReconnect: false, error: null });
      return;
    }
    if (err) {
      const { code } = httpCloseCode(err);
      this.afterClose(code, err.message, transport, err);
      return;
    }
    const { code, reason } = end ?? { code: 1006, reason: "event stream ended" };
    this.afterClose(code, reason, transport, null);
  }
}

function pick(o: EndpointOptions): EndpointOptions {
  const out: EndpointOptions = {};
  if (o.baseUrl !== undefined) out.baseUrl = o.baseUrl;
  if (o.wsPort !== undefined) out.wsPort = o.wsPort;
  if (o.wsUrl !== undefined) out.wsUrl = o.wsUrl;
  return out;
}
