/**
 * Server-sent events over `fetch` (works in browsers and in Node 20, which has no
 * EventSource): a streaming parser of `text/event-stream`, and `readEventStream`, which
 * opens one stream, sends `Last-Event-ID` when resuming, and reports HTTP errors as
 * `PylonError`s. Reconnecting is the caller's job (it knows which errors are worth it).
 */

import { PylonError } from "./errors.js";
import { isAbort } from "./http.js";
import { type FetchLike, requireFetch } from "./transport.js";

/** One dispatched event. `event` is `"message"` when the stream named none. */
export interface SseEvent {
  event: string;
  data: string;
  /** The last event ID after this event (the stream's, not only this event's). */
  id: string;
}

/** Incremental `text/event-stream` parser (the WHATWG rules, minus `retry`). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventType = "";
  private started = false;
  private skipLf = false;
  /** The last event ID seen so far. */
  lastEventId = "";

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  /** Feeds decoded text; dispatches every complete event. */
  push(chunk: string): void {
    if (chunk.length === 0) return;
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.skipLf && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.skipLf = false;
    this.buffer += chunk;
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf("\r", start);
      const lf = this.buffer.indexOf("\n", start);
      if (cr < 0 && lf < 0) break;
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr === this.buffer.length - 1) {
          // A CR ending the chunk may be the first half of a CRLF split across chunks.
          this.skipLf = true;
          next = cr + 1;
        } else {
          next = this.buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  /** The stream ended: an incomplete event is dropped, as the spec says. */
  end(): void {
    this.buffer = "";
    this.data = [];
    this.eventType = "";
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment (heartbeat)
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
    }
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      default:
        break; // `retry` and unknown fields are ignored
    }
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.eventType = "";
      return;
    }
    const event: SseEvent = { event: this.eventType || "message", data: this.data.join("\n"), id: this.lastEventId };
    this.data = [];
    this.eventType = "";
    this.onEvent(event);
  }
}

export interface EventStreamOptions {
  fetch?: FetchLike;
  headers?: Record<string, string>;
  /** Sent as `Last-Event-ID` to resume after the event with this ID. */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Called once the server answered 2xx (the stream is open). */
  onOpen?: () => void;
}

/**
 * Opens `url` as an event stream and calls `onEvent` for each event until the stream
 * ends. Resolves when the server ends it or `signal` aborts it.
 *
 * @throws PylonError for a non-2xx answer or a network failure.
 */
export async function readEventStream(url: string, opts: EventStreamOptions, onEvent: (e: SseEvent) => void): Promise<void> {
  const doFetch = requireFetch(opts.fetch);
  // Only CORS-safelisted headers beyond what the server allows (Authorization,
  // Last-Event-ID): anything else makes a cross-origin preflight fail.
  const headers: Record<string, string> = { accept: "text/event-stream", ...opts.headers };
  if (opts.lastEventId) headers["last-event-id"] = opts.lastEventId;
  const init: RequestInit = { method: "GET", headers };
  if (opts.signal) init.signal = opts.signal;
  let res: Response;
  try {
    res = await doFetch(url, init);
  } catch (e) {
    if (isAbort(e)) return;
    throw PylonError.network(e, `GET ${new URL(url).pathname}`);
  }
  if (!res.ok) throw PylonError.fromBody(res.status, await res.text());
  if (!res.body) throw new PylonError(res.status, "INVALID_RESPONSE", "the event stream has no body");
  opts.onOpen?.();
  const parser = new SseParser(onEvent);
  if (opts.lastEventId) parser.lastEventId = opts.lastEventId;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  // A read pending when the signal aborts (or one started after an event handler aborted
  // it) does not always settle: Node 20's fetch leaves it pending when the abort meets a
  // stream the server is just ending. So every read races the signal, and an abort
  // cancels the body without waiting for it.
  const aborted = abortPromise(opts.signal);
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), aborted.promise]);
      if (next === ABORTED) {
        void reader.cancel().catch(() => undefined);
        return;
      }
      if (next.done) break;
      parser.push(decoder.decode(next.value, { stream: true }));
    }
    parser.push(decoder.decode());
  } catch (e) {
    if (isAbort(e) || opts.signal?.aborted) return;
    throw PylonError.network(e, "event stream");
  } finally {
    aborted.dispose();
    parser.end();
    reader.releaseLock();
  }
}

const ABORTED: unique symbol = Symbol("aborted");

/** A promise that resolves to `ABORTED` once `signal` aborts (never without one). */
function abortPromise(signal: AbortSignal | undefined): { promise: Promise<typeof ABORTED>; dispose: () => void } {
  if (!signal) return { promise: new Promise<typeof ABORTED>(() => undefined), dispose: () => undefined };
  let onAbort = () => undefined as void;
  const promise = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    if (signal.aborted) resolve(ABORTED);
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener("abort", onAbort) };
}
