/**
 * Errors: `PylonError` for HTTP answers (`{"error":{"code","message","hint"?}}`) and
 * transport failures, `ShardCloseError` for a socket's close frame (codes of
 * docs/PROTOCOL.md), `DeltaError` for a patch that does not fit its base.
 */

/** An error answered by pylon, or a failure to reach it. */
export class PylonError extends Error {
  /** HTTP status; 0 when no HTTP answer was received (network failure, close frame). */
  readonly status: number;
  /** Stable UPPER_SNAKE code (`SHARD_NOT_FOUND`, `AUTH_REQUIRED`, `NETWORK_ERROR`, ...). */
  readonly code: string;
  /** What to do about it, when the server knows. */
  readonly hint: string | undefined;
  /** Extra keys of the error object (`field`, `oldest_seq`, `operation`, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    code: string,
    message: string,
    hint?: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "PylonError";
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.details = details;
  }

  /**
   * The error for an HTTP answer with a non-2xx status: the server's error object when
   * the body is one, else a generic `HTTP_<status>` error carrying the body text.
   */
  static fromBody(status: number, body: string): PylonError {
    const parsed = parseErrorBody(body);
    if (parsed) {
      return new PylonError(status, parsed.code, parsed.message, parsed.hint, parsed.details);
    }
    const text = body.trim().slice(0, 200);
    return new PylonError(status, `HTTP_${status}`, text || `HTTP ${status}`);
  }

  /** A failure to reach the server at all. */
  static network(cause: unknown, what: string): PylonError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new PylonError(0, "NETWORK_ERROR", `${what}: ${reason}`, undefined, {}, { cause });
  }
}

/** The fields of a pylon error body, or `null` when `body` is not one. */
export function parseErrorBody(
  body: string,
): { code: string; message: string; hint?: string; details: Record<string, unknown> } | null {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  if (!isObject(value) || !isObject(value.error)) return null;
  const { code, message, hint, ...details } = value.error;
  if (typeof code !== "string") return null;
  const out: { code: string; message: string; hint?: string; details: Record<string, unknown> } = {
    code,
    message: typeof message === "string" ? message : code,
    details,
  };
  if (typeof hint === "string") out.hint = hint;
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** WebSocket close codes pylon sends (docs/PROTOCOL.md, "Close codes"). */
export const CloseCode = {
  /** The match finished, or the client closed. */
  Normal: 1000,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** No token, an invalid or expired token, or a `sid` the caller may not use. */
  PolicyViolation: 1008,
  /** A frame over the size limit. */
  TooBig: 1009,
  /** A game system panicked and the match was stopped, or a server fault. */
  InternalError: 1011,
  /** Shard full, match stopped or finished, server busy, or this client too slow. */
  TryAgainLater: 1013,
  /** Missing `shard`, unknown `format`, a malformed frame, a protocol error. */
  BadRequest: 4400,
  /** No such shard. */
  UnknownShard: 4404,
  /** Nothing received within the idle timeout. */
  Idle: 4408,
  /** The same `sid` connected on a newer socket, which took over. */
  Replaced: 4409,
  /** Sync socket: the requested `since` is no longer in the change log. */
  ResyncRequired: 4410,
  /** The match lives in another region; the reason is that region's URL. */
  WrongRegion: 4421,
  /** Too many inputs per second, or too many sockets from one address. */
  RateLimited: 4429,
} as const;

/** One of pylon's close codes. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The name of a pylon close code (`"WrongRegion"`), as a type. */
export type CloseCodeName = keyof typeof CloseCode;

const NAMES = new Map<number, CloseCodeName>(
  (Object.entries(CloseCode) as [CloseCodeName, number][]).map(([name, code]) => [code, name]),
);

/** The name of a close code, `"Abnormal"` for 1006 (no close frame), else `"Unknown"`. */
export function closeCodeName(code: number): CloseCodeName | "Abnormal" | "Unknown" {
  if (code === 1006) return "Abnormal";
  return NAMES.get(code) ?? "Unknown";
}

/** Whether `code` is one of the close codes of docs/PROTOCOL.md. */
export function isCloseCode(code: number): code is CloseCode {
  return NAMES.has(code);
}

/**
 * Whether a client should reconnect after this close: the server going away, a busy or
 * full server, idleness, rate limiting and a dropped connection are worth retrying (with
 * backoff); a finished match, a refused token, a bad request, an unknown shard, being
 * replaced by a newer socket, or a server fault are not, nor is a 1013 whose reason says
 * the match finished or stopped. 4421 is followed, not retried.
 */
export function isRetryableClose(code: number, reason = ""): boolean {
  // 1013 also says "match finished" or "match stopped": that match will not come back.
  if (/^match (finished|stopped)/.test(reason)) return false;
  switch (code) {
    case CloseCode.GoingAway:
    case CloseCode.TryAgainLater:
    case CloseCode.Idle:
    case CloseCode.RateLimited:
    case 1005: // no status in the close frame
    case 1006: // abnormal: the connection dropped without a close frame
      return true;
    default:
      return false;
  }
}

/** A shard or sync socket was closed by the server (or dropped), with its code and reason. */
export class ShardCloseError extends PylonError {
  /** The WebSocket close code (1006: dropped without a close frame). */
  readonly closeCode: number;
  /** The close code's name (`"UnknownShard"`, `"WrongRegion"`, ...). */
  readonly closeName: CloseCodeName | "Abnormal" | "Unknown";
  /** The close frame's reason (for 4421: the owning region's base URL). */
  readonly reason: string;
  /** Whether a reconnect may succeed (see `isRetryableClose`). */
  readonly retryable: boolean;

  constructor(closeCode: number, reason: string) {
    const name = closeCodeName(closeCode);
    super(0, `CLOSE_${closeCode}`, `socket closed with ${closeCode} (${name})${reason ? `: ${reason}` : ""}`);
    this.name = "ShardCloseError";
    this.closeCode = closeCode;
    this.closeName = name;
    this.reason = reason;
    this.retryable = isRetryableClose(closeCode, reason);
  }
}

/** The change log no longer holds what a feed asked for: reload the entity lists. */
export class ResyncRequiredError extends PylonError {
  /** The oldest `seq` the server still holds, when it said. */
  readonly oldestSeq: number | undefined;

  constructor(oldestSeq: number | undefined, message = "resync required: the change log no longer holds the requested seq") {
    super(410, "RESYNC_REQUIRED", message, "reload the entity lists, then subscribe again from the new seq", {
      oldest_seq: oldestSeq,
    });
    this.name = "ResyncRequiredError";
    this.oldestSeq = oldestSeq;
  }
}

/** A delta patch does not fit the snapshot it is applied to (mirrors the Rust `DeltaError`). */
export class DeltaError extends Error {
  readonly kind:
    | "NotAnObject"
    | "NotAnArray"
    | "IndexOutOfRange"
    | "IndexNotIncreasing"
    | "LengthMismatch"
    | "MissingKey"
    | "Malformed";

  constructor(kind: DeltaError["kind"], message: string) {
    super(message);
    this.name = "DeltaError";
    this.kind = kind;
  }
}
