/**
 * Delta patches (docs/PROTOCOL.md "Deltas"), in both formats.
 *
 * Format 1 (`delta=1`, `applyPatch`; the reference is `shard/src/codec/delta.rs`):
 * - `{"r": value}` replaces the whole value (`null` included: test with `in`).
 * - `{"o": {key: patch}, "d": [removed keys]}` patches an object: removals first, then
 *   each key; a key the object does not have must take an `r` patch.
 * - `{"a": [[index, patch], ...], "n": length}` patches an array: truncate to `n`, then
 *   apply entries in strictly increasing index order; an index below the current length
 *   patches that element, the index equal to it appends the `r` value; the result must be
 *   exactly `n` long.
 *
 * Format 2 (`delta=2`, `applyPatchV2`; the reference is `shard/src/codec/delta_v2.rs`): the
 * type of each node says what it is.
 * - a scalar (null, boolean, number, string) replaces the value;
 * - a map patches an object key by key: `[2]` removes a key (which must be present), any
 *   other patch applies to the key's value, and a key the object lacks takes a replacement;
 * - `[0, value]` replaces the value (used for objects and arrays);
 * - `[1, n, i1, patch1, i2, patch2, ...]` patches an array as `{"a", "n"}` does above.
 * A nil frame body means unchanged in both formats.
 *
 * Both check the whole patch against the base before they build anything (as the Rust
 * `apply` does), so a patch that does not fit is refused whole with a `DeltaError`. They
 * never modify the base: the result shares the unchanged parts of it.
 */

import { DeltaError } from "./errors.js";

/** A JSON-like value as snapshots hold it. */
export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

/** `{"r": value}`: replace the whole value. */
export interface ReplacePatch {
  r: unknown;
}
/** `{"o": {...}, "d": [...]}`: change some keys of an object. */
export interface ObjectPatch {
  o: Record<string, Patch>;
  d?: string[];
}
/** `{"a": [[index, patch], ...], "n": length}`: change some elements of an array. */
export interface ArrayPatch {
  a: [number, Patch][];
  n: number;
}
/** A delta patch. */
export type Patch = ReplacePatch | ObjectPatch | ArrayPatch;

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

type Shape =
  | { kind: "r"; r: unknown }
  | { kind: "o"; o: Record<string, unknown>; d: string[] }
  | { kind: "a"; a: unknown[]; n: number };

/** Which of the three patch shapes `p` is (the order serde's untagged enum tries them). */
function shape(p: unknown): Shape {
  if (!isPlainObject(p)) throw new DeltaError("Malformed", "a patch must be a map");
  if (hasOwn(p, "r")) return { kind: "r", r: p.r };
  if (hasOwn(p, "o")) {
    const o = p.o;
    const d = p.d ?? [];
    if (!isPlainObject(o)) throw new DeltaError("Malformed", "object patch: o must be a map");
    if (!Array.isArray(d) || !d.every((k) => typeof k === "string")) {
      throw new DeltaError("Malformed", "object patch: d must be a list of keys");
    }
    return { kind: "o", o, d: d as string[] };
  }
  if (hasOwn(p, "a") && hasOwn(p, "n")) {
    if (!Array.isArray(p.a) || !isIndex(p.n)) {
      throw new DeltaError("Malformed", "array patch: a must be a list and n a length");
    }
    return { kind: "a", a: p.a, n: p.n as number };
  }
  throw new DeltaError("Malformed", "a patch has r, o, or a and n");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

function entry(e: unknown): [number, unknown] {
  if (!Array.isArray(e) || e.length !== 2 || !isIndex(e[0])) {
    throw new DeltaError("Malformed", "array patch entries are [index, patch]");
  }
  return [e[0], e[1]];
}

const ABSENT = Symbol("absent");
type Slot = unknown | typeof ABSENT;

/** Checks that `patch` fits `target` without building anything (mirrors `check` in delta.rs). */
function check(target: Slot, patch: unknown): void {
  const p = shape(patch);
  switch (p.kind) {
    case "r":
      return;
    case "o": {
      if (target === ABSENT || !isPlainObject(target)) {
        throw new DeltaError("NotAnObject", "object patch applied to a non-object");
      }
      const removed = new Set(p.d);
      for (const key of Object.keys(p.o)) {
        const child = removed.has(key) || !hasOwn(target, key) ? ABSENT : target[key];
        check(child, p.o[key]);
      }
      return;
    }
    case "a": {
      if (target === ABSENT || !Array.isArray(target)) {
        throw new DeltaError("NotAnArray", "array patch applied to a non-array");
      }
      checkArray(target, p.a, p.n);
      return;
    }
  }
}

function checkArray(items: unknown[], entries: unknown[], n: number): void {
  const kept = Math.min(items.length, n);
  let len = kept;
  let next = 0;
  for (const e of entries) {
    const [index, p] = entry(e);
    if (index < next) {
      throw new DeltaError("IndexNotIncreasing", `array index ${index} is not above the previous index`);
    }
    if (index > len || index >= n) {
      throw new DeltaError("IndexOutOfRange", `array index ${index} out of range for length ${len}`);
    }
    check(index < kept ? items[index] : ABSENT, p);
    if (index === len) len += 1;
    next = index + 1;
  }
  if (len !== n) {
    throw new DeltaError("LengthMismatch", `array patch ends at length ${len}, expected ${n}`);
  }
}

function setKey(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    out[key] = value;
  }
}

/** Builds the result of a checked patch; `target` is never modified. */
function build(target: Slot, patch: unknown): unknown {
  const p = shape(patch);
  switch (p.kind) {
    case "r":
      return p.r;
    case "o": {
      const out: Record<string, unknown> = { ...(target as Record<string, unknown>) };
      for (const key of p.d) delete out[key];
      for (const key of Object.keys(p.o)) {
        setKey(out, key, build(hasOwn(out, key) ? out[key] : ABSENT, p.o[key]));
      }
      return out;
    }
    case "a": {
      const out = (target as unknown[]).slice(0, p.n);
      for (const e of p.a) {
        const [index, q] = entry(e);
        if (index < out.length) out[index] = build(out[index], q);
        else out.push(build(ABSENT, q));
      }
      return out;
    }
  }
}

/**
 * `base` with `patch` applied, as a new value sharing the unchanged parts of `base`.
 * `patch === null` (a delta frame whose body is nil) means unchanged: `base` is returned.
 *
 * @throws DeltaError when the patch does not fit `base` (nothing is built then).
 */
export function applyPatch<T = unknown>(base: unknown, patch: Patch | null | undefined): T {
  if (patch === null || patch === undefined) return base as T;
  check(base, patch);
  return build(base, patch) as T;
}

// ---- format 2 ---------------------------------------------------------------------------

/**
 * A format 2 patch (`delta=2`): a MessagePack value read by its type. Scalars replace,
 * maps patch objects, and arrays are tagged: `[0, value]` replaces, `[1, n, index, patch,
 * ...]` patches an array, `[2]` removes a key of an object.
 */
export type PatchV2 = null | boolean | number | string | PatchV2[] | { [key: string]: PatchV2 };

/** The tags of format 2 arrays. */
export const PatchV2Tag = { Replace: 0, Array: 1, Remove: 2 } as const;

function isRemove(q: unknown): boolean {
  return Array.isArray(q) && q.length === 1 && q[0] === PatchV2Tag.Remove;
}

function isScalar(p: unknown): boolean {
  return p === null || typeof p === "boolean" || typeof p === "number" || typeof p === "string" || typeof p === "bigint";
}

/** The checked shape of a format 2 array node: a replacement or an array patch. */
function tagged(p: unknown[]): { replace: true; value: unknown } | { replace: false; n: number } {
  if (p[0] === PatchV2Tag.Replace && p.length === 2) return { replace: true, value: p[1] };
  if (p[0] === PatchV2Tag.Array && p.length >= 2 && p.length % 2 === 0) {
    if (!isIndex(p[1])) throw new DeltaError("Malformed", "malformed patch: lengths and indexes are unsigned integers");
    return { replace: false, n: p[1] };
  }
  if (isRemove(p)) throw new DeltaError("Malformed", "malformed patch: [2] removes a key of an object");
  throw new DeltaError("Malformed", "malformed patch: an array patch is [0, value] or [1, len, ...pairs]");
}

/** Checks that a format 2 `patch` fits `target` without building anything (mirrors `check` in delta_v2.rs). */
function checkV2(target: Slot, patch: unknown): void {
  if (isScalar(patch)) return;
  if (Array.isArray(patch)) {
    const t = tagged(patch);
    if (t.replace) return;
    if (target === ABSENT || !Array.isArray(target)) {
      throw new DeltaError("NotAnArray", "array patch applied to a non-array");
    }
    checkArrayV2(target, patch, t.n);
    return;
  }
  if (!isPlainObject(patch)) throw new DeltaError("Malformed", "malformed patch: not a MessagePack map, array or scalar");
  if (target === ABSENT || !isPlainObject(target)) {
    throw new DeltaError("NotAnObject", "object patch applied to a non-object");
  }
  for (const key of Object.keys(patch)) {
    const q = patch[key];
    const present = hasOwn(target, key);
    if (isRemove(q)) {
      if (!present) throw new DeltaError("MissingKey", "removed key is absent");
    } else {
      checkV2(present ? target[key] : ABSENT, q);
    }
  }
}

function checkArrayV2(items: unknown[], p: unknown[], n: number): void {
  const kept = Math.min(items.length, n);
  let len = kept;
  let next = 0;
  for (let j = 2; j < p.length; j += 2) {
    const index = p[j];
    if (!isIndex(index)) throw new DeltaError("Malformed", "malformed patch: lengths and indexes are unsigned integers");
    if (index < next) {
      throw new DeltaError("IndexNotIncreasing", `array index ${index} is not above the previous index`);
    }
    if (index > len || index >= n) {
      throw new DeltaError("IndexOutOfRange", `array index ${index} out of range for length ${len}`);
    }
    checkV2(index < kept ? items[index] : ABSENT, p[j + 1]);
    if (index === len) len += 1;
    next = index + 1;
  }
  if (len !== n) {
    throw new DeltaError("LengthMismatch", `array patch ends at length ${len}, expected ${n}`);
  }
}

/** Builds the result of a checked format 2 patch; `target` is never modified. */
function buildV2(target: Slot, patch: unknown): unknown {
  if (isScalar(patch)) return patch;
  if (Array.isArray(patch)) {
    const t = tagged(patch);
    if (t.replace) return t.value;
    const out = (target as unknown[]).slice(0, t.n);
    for (let j = 2; j < patch.length; j += 2) {
      const index = patch[j] as number;
      if (index < out.length) out[index] = buildV2(out[index], patch[j + 1]);
      else out.push(buildV2(ABSENT, patch[j + 1]));
    }
    return out;
  }
  const p = patch as Record<string, unknown>;
  const out: Record<string, unknown> = { ...(target as Record<string, unknown>) };
  for (const key of Object.keys(p)) {
    const q = p[key];
    if (isRemove(q)) delete out[key];
    else setKey(out, key, buildV2(hasOwn(out, key) ? out[key] : ABSENT, q));
  }
  return out;
}

/**
 * `base` with the format 2 `patch` (`delta=2`) applied, as a new value sharing the
 * unchanged parts of `base`. `patch === null` (a delta frame whose body is nil) means
 * unchanged: `base` is returned. (Below the top level, nil is a replacement by null; a
 * whole snapshot replaced by null comes as `[0, null]`.)
 *
 * @throws DeltaError when the patch does not fit `base` or is malformed (nothing is built then).
 */
export function applyPatchV2<T = unknown>(base: unknown, patch: PatchV2 | null | undefined): T {
  if (patch === null || patch === undefined) return base as T;
  checkV2(base, patch);
  return buildV2(base, patch) as T;
}
