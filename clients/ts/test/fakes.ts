// Scripted stand-ins for a WebSocket and for fetch, to drive the clients' logic through
// exact server behaviours (close codes, fallbacks, recorded answers) in unit tests. The
// live test (live.test.ts) runs the same clients against the real server.
import type { WebSocketCtor, WebSocketLike } from "../src/transport.js";

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  binaryType = "blob";
  readonly sent: (string | Uint8Array)[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closedByClient: { code?: number; reason?: string } | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {}

  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.closedByClient = { code, reason };
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "" }));
  }

  // ---- the server's side ----
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  message(data: string | Uint8Array): void {
    this.onmessage?.({ data: typeof data === "string" ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) });
  }
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** The connection could not be made (no listener, blocked): error then close 1006. */
  fail(): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }
}

/** A WebSocket constructor that records every socket it makes. */
export function fakeSockets(): { ctor: WebSocketCtor; sockets: FakeSocket[]; last(): FakeSocket } {
  const sockets: FakeSocket[] = [];
  const ctor = class extends FakeSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  } as unknown as WebSocketCtor;
  return {
    ctor,
    sockets,
    last() {
      const s = sockets.at(-1);
      if (!s) throw new Error("no socket made");
      return s;
    },
  };
}

export interface Recorded {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: unknown;
}

/** An event stream the test writes to. */
export class StreamBody {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      this.controller = c;
    },
  });
  write(text: string): void {
    this.controller.enqueue(new TextEncoder().encode(text));
  }
  end(): void {
    this.controller.close();
  }
}

export type Route = (req: Recorded, signal: AbortSignal | undefined) => Response | Promise<Response>;

/** A fetch answering from `routes` (first match of "METHOD /path" wins); records every request. */
export function fakeFetch(routes: Record<string, Route>): { fetch: typeof fetch; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const f = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((init.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = v;
    const method = (init.method ?? "GET").toUpperCase();
    const req: Recorded = { method, url, headers, body: init.body ? JSON.parse(String(init.body)) : undefined };
    requests.push(req);
    const route = routes[`${method} ${url.pathname}`];
    if (!route) return json(404, { error: { code: "NOT_FOUND", message: "no such route" } });
    const signal = init.signal ?? undefined;
    if (signal?.aborted) throw Object.assign(new Error("aborted"), { name: "AbortError" });
    return route(req, signal);
  };
  return { fetch: f as typeof fetch, requests };
}

export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

export function sse(body: StreamBody, signal?: AbortSignal): Response {
  signal?.addEventListener("abort", () => {
    try {
      body.end();
    } catch {
      // already ended
    }
  });
  return new Response(body.stream, { status: 200, headers: { "content-type": "text/event-stream" } });
}

/** Resolves when `check` passes (polled every few ms), or rejects after `ms`. */
export async function until(check: () => boolean, ms = 2000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
