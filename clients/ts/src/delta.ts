/**
 * Delta patches (docs/PROTOCOL.md "Deltas"; the reference is `shard/src/codec/delta.rs`).
 *
 * - `{"r": value}` replaces the whole value (`null` included: test with `in`).
 * - `{"o": {key: patch}, "d": [removed keys]}` patches an object: removals first, then
 *   each key; a key the object does not have must take an `r` patch.
 * - `{"a": [[index, patch], ...], "n": length}` patches an array: truncate to `n`, then
 *   apply entries in strictly increasing index order; an index below the current length
 *   patches that element, the index equal to it appends the `r` value; the result must be
 *   exactly `n` long.
 *
 * `applyPatch` checks the whole patch against the base before it builds anything (as the
 * Rust `apply` does), so a patch that does not fit is refused whole with a `DeltaError`.
 * It never modifies the base: the result shares the unchanged parts of it.
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
