/**
 * The shard socket wire codec (docs/PROTOCOL.md; the server side is `shard/src/codec/`).
 * Pure functions, no I/O.
 *
 * Server -> client:
 * - compat binary: 8 bytes big-endian u64 tick, then the snapshot as UTF-8 JSON;
 * - compat text (`format=json`): `{"tick":N,"snapshot":...}`;
 * - MessagePack (`format=msgpack`, `delta=1` or `delta=2`): the array `[kind, tick, ack,
 *   base, body]`; a delta frame's body is a patch of the chosen format (`delta.ts`).
 *
 * Client -> server: JSON `{"input":...,"client_seq":N}` in compat modes, MessagePack
 * `[client_seq|nil, base|nil, input]` in MessagePack modes.
 */

import { Decoder, Encoder } from "@msgpack/msgpack";

/** The `kind` element of a MessagePack server frame. */
export const FrameKind = {
  Snapshot: 1,
  Delta: 2,
  MatchEnd: 3,
  Stopped: 4,
  Joined: 5,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** A snapshot decoded from a compat frame. */
export interface CompatSnapshot<S = unknown> {
  tick: number;
  snapshot: S;
}

/** A decoded MessagePack server frame. */
export type ServerFrame =
  | { kind: 1; tick: number; ack: number | null; body: unknown }
  | { kind: 2; tick: number; ack: number | null; base: number; body: unknown }
  | { kind: 3; tick: number; body: unknown }
  | { kind: 4; code: string; body: unknown }
  | { kind: 5; key: number; resumed: boolean; body: unknown };

/** The wire format of a shard socket (the `format` query value). */
export type WireFormat = "binary" | "json" | "msgpack";

const utf8 = new TextDecoder("utf-8", { fatal: false });
const msgpackDecoder = new Decoder();
const msgpackEncoder = new Encoder();

function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** Reads a big-endian u64 as a number (exact up to 2^53). */
export function readU64BE(bytes: Uint8Array, offset = 0): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
  return view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4);
}

/**
 * Decodes a compat binary frame: u64 big-endian tick, then the snapshot JSON.
 *
 * @throws Error when the frame is shorter than 8 bytes or the JSON does not parse.
 */
export function decodeBinarySnapshot<S = unknown>(data: ArrayBuffer | ArrayBufferView): CompatSnapshot<S> {
  const bytes = bytesOf(data);
  if (bytes.byteLength < 8) throw new Error(`binary frame too short: ${bytes.byteLength} bytes`);
  const tick = readU64BE(bytes, 0);
  const snapshot = JSON.parse(utf8.decode(bytes.subarray(8))) as S;
  return { tick, snapshot };
}

/**
 * Decodes a compat text frame `{"tick":N,"snapshot":...}`.
 *
 * @throws Error when it is not of that shape.
 */
export function decodeTextSnapshot<S = unknown>(text: string): CompatSnapshot<S> {
  const parsed = JSON.parse(text) as { tick?: unknown; snapshot?: unknown };
  if (typeof parsed !== "object" || parsed === null || typeof parsed.tick !== "number" || !("snapshot" in parsed)) {
    throw new Error("text frame is not {\"tick\":N,\"snapshot\":...}");
  }
  return { tick: parsed.tick, snapshot: parsed.snapshot as S };
}

function optUint(v: unknown, what: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === "bigint" && v >= 0n) return Number(v);
  throw new Error(`${what}: expected uint or nil`);
}

/**
 * Decodes a MessagePack server frame `[kind, tick, ack, base, body]`.
 *
 * @throws Error when the bytes are not such a frame.
 */
export function decodeMsgpackFrame(data: ArrayBuffer | ArrayBufferView): ServerFrame {
  const value = msgpackDecoder.decode(bytesOf(data));
  if (!Array.isArray(value) || value.length !== 5) {
    throw new Error("MessagePack frame is not [kind, tick, ack, base, body]");
  }
  const [kind, tickRaw, ackRaw, baseRaw, body] = value as [unknown, unknown, unknown, unknown, unknown];
  const tick = optUint(tickRaw, "tick") ?? 0;
  const ack = optUint(ackRaw, "ack");
  const base = optUint(baseRaw, "base");
  switch (kind) {
    case FrameKind.Snapshot:
      return { kind: 1, tick, ack, body };
    case FrameKind.Delta:
      if (base === null) throw new Error("delta frame without a base");
      return { kind: 2, tick, ack, base, body };
    case FrameKind.MatchEnd:
      return { kind: 3, tick, body };
    case FrameKind.Stopped: {
      const code = typeof body === "object" && body !== null ? (body as { code?: unknown }).code : undefined;
      return { kind: 4, code: typeof code === "string" ? code : "unknown", body };
    }
    case FrameKind.Joined: {
      const b = (typeof body === "object" && body !== null ? body : {}) as { key?: unknown; resumed?: unknown };
      return { kind: 5, key: typeof b.key === "number" ? b.key : 0, resumed: b.resumed === true, body };
    }
    default:
      throw new Error(`unknown frame kind ${String(kind)}`);
  }
}

/** A compat (JSON) client frame: `{"input":...,"client_seq":N}`. */
export function encodeJsonInput(input: unknown, clientSeq?: number | null): string {
  const frame: { input: unknown; client_seq?: number } = { input: input === undefined ? null : input };
  if (clientSeq !== undefined && clientSeq !== null) frame.client_seq = clientSeq;
  return JSON.stringify(frame);
}

/** A MessagePack client frame `[client_seq|nil, base|nil, input]`. */
export function encodeMsgpackInput(clientSeq: number | null, base: number | null, input: unknown): Uint8Array {
  return msgpackEncoder.encode([clientSeq, base, input === undefined ? null : input]);
}

/** A pure base acknowledgement (delta mode): `[nil, tick, nil]`. */
export function encodeBaseAck(tick: number): Uint8Array {
  return encodeMsgpackInput(null, tick, null);
}
