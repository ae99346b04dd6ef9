/**
 * The platform pieces the clients use: a WebSocket constructor (the browser's, Node 22's
 * global one, or one passed in, such as the `ws` package's in Node 20) and `fetch`.
 */

import { PylonError } from "./errors.js";

/** The part of the WebSocket interface the clients use (browsers' and `ws`'s both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  readonly protocol?: string;
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `ws`'s `WebSocket` in Node 20. */
export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `WebSocket.OPEN`. */
export const WS_OPEN = 1;

/** The WebSocket constructor to use: the one given, else the global one, else `undefined`. */
export function findWebSocket(given?: WebSocketCtor): WebSocketCtor | undefined {
  if (given) return given;
  const g = globalThis as { WebSocket?: unknown };
  return typeof g.WebSocket === "function" ? (g.WebSocket as unknown as WebSocketCtor) : undefined;
}

/** Like `findWebSocket`, but a missing constructor is a `PylonError` (`NO_WEBSOCKET`). */
export function requireWebSocket(given?: WebSocketCtor): WebSocketCtor {
  const ctor = findWebSocket(given);
  if (!ctor) {
    throw new PylonError(
      0,
      "NO_WEBSOCKET",
      "no WebSocket implementation: pass one with the WebSocket option",
      "in Node 20: import { WebSocket } from \"ws\" and pass { WebSocket }",
    );
  }
  return ctor;
}

/** The `fetch` to use. */
export type FetchLike = typeof fetch;

export function requireFetch(given?: FetchLike): FetchLike {
  const f = given ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!f) throw new PylonError(0, "NO_FETCH", "no fetch implementation: pass one with the fetch option");
  // Browsers throw "Illegal invocation" when fetch is called detached from window.
  return given ? f : f.bind(globalThis);
}

/** Text of a WebSocket text message, or `null` for a binary one. */
export function messageText(data: unknown): string | null {
  return typeof data === "string" ? data : null;
}

/** Bytes of a WebSocket binary message (ArrayBuffer, a view, or a Node Buffer). */
export function messageBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
    // `ws` with binaryType "fragments".
    const total = data.reduce((n: number, d: Uint8Array) => n + d.byteLength, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const d of data as Uint8Array[]) {
      out.set(d, at);
      at += d.byteLength;
    }
    return out;
  }
  return null;
}
