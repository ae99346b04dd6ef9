/**
 * Where things are: the HTTP base URL and the socket URLs, from the options every client
 * takes (`baseUrl`, `wsPort`, `wsUrl`), in browsers and in Node.
 *
 * `baseUrl` may be a full URL (`https://game.example.com`, `http://127.0.0.1:4321`) or,
 * as in pylon's own web client, a bare host name (`game.example.com`). With a full URL
 * and no `wsPort`, shard sockets use `/shard` on that same origin (it works behind one
 * reverse proxy); with a bare host name, or with `wsPort`, they use
 * `ws(s)://<host>:<wsPort, default 4324>/` like the stock client.
 */

/** The pylon defaults: HTTP on 4321, entity-sync socket +1, SSE +2, shard sockets +3. */
export const DEFAULT_HTTP_PORT = 4321;
export const DEFAULT_WS_PORT = 4324;

export interface EndpointOptions {
  /** A full URL or a bare host name (see module docs). Default: the page's origin, or `http://localhost:4321` outside a browser. */
  baseUrl?: string;
  /** The shard socket port (default 4324 with a bare host name). */
  wsPort?: number;
  /** An explicit shard socket URL; `shard`, `sid` and `format` are added when missing. */
  wsUrl?: string;
}

/** What the options resolve to. */
export interface Origin {
  /** The HTTP base, no trailing slash: `http://host:4321` or `https://host/prefix`. */
  http: string;
  /** The host name alone (for `ws://host:wsPort/`). */
  hostname: string;
  /** https / wss. */
  secure: boolean;
  /** Whether `baseUrl` was a full URL (sockets then default to its own origin). */
  fullUrl: boolean;
}

interface LocationLike {
  protocol: string;
  hostname: string;
  origin: string;
}

function pageLocation(): LocationLike | undefined {
  const g = globalThis as { location?: LocationLike };
  return g.location && typeof g.location.origin === "string" && g.location.origin !== "null" ? g.location : undefined;
}

/** Resolves `baseUrl` (and `wsPort`, for a bare host name) to an HTTP origin. */
export function resolveOrigin(baseUrl?: string, wsPort?: number): Origin {
  const page = pageLocation();
  if (baseUrl && baseUrl.includes("://")) {
    const u = new URL(baseUrl);
    const secure = u.protocol === "https:" || u.protocol === "wss:";
    const scheme = secure ? "https:" : "http:";
    const path = u.pathname.replace(/\/+$/, "");
    return { http: `${scheme}//${u.host}${path}`, hostname: u.hostname, secure, fullUrl: true };
  }
  if (baseUrl) {
    const secure = page?.protocol === "https:";
    const scheme = secure ? "https:" : "http:";
    const hasPort = /:\d+$/.test(baseUrl) && !baseUrl.endsWith("]");
    const hostname = hasPort ? baseUrl.replace(/:\d+$/, "") : baseUrl;
    if (!hasPort && page && page.hostname === hostname) {
      return { http: page.origin, hostname, secure, fullUrl: false };
    }
    const port = hasPort ? "" : `:${wsPort !== undefined ? wsPort - 3 : DEFAULT_HTTP_PORT}`;
    return { http: `${scheme}//${baseUrl}${port}`, hostname, secure, fullUrl: false };
  }
  if (page) {
    return { http: page.origin, hostname: page.hostname, secure: page.protocol === "https:", fullUrl: false };
  }
  return { http: `http://localhost:${DEFAULT_HTTP_PORT}`, hostname: "localhost", secure: false, fullUrl: false };
}

/**
 * The shard socket URL for `shardId` with the given query values. `delta`: `2` adds
 * `delta=2` (patch format 2), `1` or `true` add `delta=1` (patch format 1).
 */
export function shardSocketUrl(
  shardId: string,
  opts: EndpointOptions,
  query: { sid?: string | undefined; format?: string | undefined; delta?: boolean | 1 | 2 | undefined },
): string {
  let url: URL;
  if (opts.wsUrl) {
    url = new URL(opts.wsUrl);
  } else {
    const origin = resolveOrigin(opts.baseUrl, opts.wsPort);
    const scheme = origin.secure ? "wss:" : "ws:";
    if (origin.fullUrl && opts.wsPort === undefined) {
      const u = new URL(origin.http);
      url = new URL(`${scheme}//${u.host}${u.pathname.replace(/\/+$/, "")}/shard`);
    } else {
      const host = origin.hostname.includes(":") && !origin.hostname.startsWith("[") ? `[${origin.hostname}]` : origin.hostname;
      url = new URL(`${scheme}//${host}:${opts.wsPort ?? DEFAULT_WS_PORT}/`);
    }
  }
  const q = url.searchParams;
  if (!q.has("shard")) q.set("shard", shardId);
  if (query.sid && !q.has("sid")) q.set("sid", query.sid);
  if (query.format && query.format !== "binary" && !q.has("format")) q.set("format", query.format);
  if (query.delta && !q.has("delta")) q.set("delta", query.delta === 2 ? "2" : "1");
  return url.toString();
}

/** `http(s)://…` to `ws(s)://…`. */
export function toWebSocketUrl(http: string): string {
  return http.replace(/^http(s?):/, "ws$1:");
}

/** The subprotocol entry carrying a bearer token (percent-encoded, as the server reads it). */
export function bearerProtocol(token: string): string {
  // encodeURIComponent leaves ( and ), which may not appear in a subprotocol token.
  const encoded = encodeURIComponent(token).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `bearer.${encoded}`;
}
