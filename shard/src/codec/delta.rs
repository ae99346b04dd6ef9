//! Structural deltas between snapshot trees: the body of opt-in delta frames.
//!
//! A snapshot is a [`serde_json::Value`] tree. [`diff`] compares the snapshot a client has
//! acknowledged (the base) with the current one and returns a [`Patch`]; the client rebuilds
//! the current snapshot with [`apply`] (or [`apply_in_place`], or its own port of them).
//!
//! # Wire format
//!
//! A patch is one of three maps, told apart by their keys. JSON is shown; MessagePack
//! carries the same maps with the same string keys ([`Patch::write_msgpack`], which also
//! writes floats that are exact in `f32` as float32; `rmp_serde::to_vec_named` gives the
//! same maps with float64, while the positional `rmp_serde::to_vec` does not round-trip).
//!
//! - `{"r": <value>}`: replace the whole value (`<value>` may be `null`).
//! - `{"o": {"<key>": <Patch>, ...}, "d": ["removed key", ...]}`: an object; only changed
//!   keys appear in `o` (in sorted order); `d` lists removed keys and is omitted when empty.
//!   Removals come first; a key of `o` the object does not have starts out absent, so its
//!   patch must be `{"r": ...}`.
//! - `{"a": [[<index>, <Patch>], ...], "n": <new length>}`: an array. It is first truncated
//!   to `n`; then each `[index, patch]` pair, in strictly increasing index order, patches the
//!   element at `index` (indexes present in both) or appends the element at the end of the
//!   array as `{"r": value}` (indexes at or past the old length). The result must have
//!   length `n`: every index from the old length up to `n - 1` has an entry.
//!
//! [`apply`] rejects a patch that does not fit its base with a [`DeltaError`] and never
//! panics. A TypeScript client can apply a patch like this (test keys with `in`, not by
//! truthiness, because `{"r": null}` is a valid patch):
//!
//! ```text
//! function apply(base, p) {
//!   if ("r" in p) return p.r;
//!   if ("o" in p) {
//!     const out = { ...base };
//!     for (const k of p.d ?? []) delete out[k];
//!     for (const [k, q] of Object.entries(p.o)) out[k] = apply(out[k], q);
//!     return out;
//!   }
//!   const out = base.slice(0, p.n);
//!   for (const [i, q] of p.a) out[i] = apply(out[i], q);
//!   return out;
//! }
//! ```
//!
//! # How `diff` chooses
//!
//! - Values of different JSON types, or scalars that differ, are replaced (`r`). Numbers
//!   compare as [`Value`] does: `1` and `1.0` differ, so the result keeps the exact number.
//! - Objects are patched key by key (`o`, `d`).
//! - Arrays are patched element by element (`a`, `n`) unless replacing the whole array is
//!   no larger, by an estimate of the MessagePack size of both; then `r`.
//!
//! # Contract
//!
//! For all values `base` and `cur`, `diff(base, cur)` is `None` exactly when
//! `base == cur`, and otherwise `apply(base, &diff(base, cur).unwrap()) == Ok(cur)`.
//!
//! ```
//! use pylon_shard::codec::delta::{Patch, apply, diff};
//! use serde_json::json;
//!
//! let base = json!({
//!     "players": [{"id": "p1", "x": 1.0, "y": 2.0}, {"id": "p2", "x": 5.0, "y": 2.0}],
//!     "round": 3,
//! });
//! let cur = json!({
//!     "players": [{"id": "p1", "x": 1.0, "y": 2.0}, {"id": "p2", "x": 5.5, "y": 2.0}],
//! });
//! let patch = diff(&base, &cur).unwrap();
//! assert_eq!(
//!     serde_json::to_string(&patch).unwrap(),
//!     r#"{"o":{"players":{"a":[[1,{"o":{"x":{"r":5.5}}}]],"n":2}},"d":["round"]}"#
//! );
//! assert_eq!(apply(&base, &patch), Ok(cur.clone()));
//! assert_eq!(diff(&cur, &cur), None::<Patch>);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::error::CodecError;

/// A change from one [`Value`] to another; see the module docs for the wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Patch {
    /// `{"r": value}`: replace the whole value.
    Replace {
        /// The new value.
        r: Value,
    },
    /// `{"o": {...}, "d": [...]}`: change some keys of an object.
    Object {
        /// Patches of changed or added keys.
        o: BTreeMap<String, Patch>,
        /// Removed keys; omitted on the wire when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        d: Vec<String>,
    },
    /// `{"a": [[index, patch], ...], "n": length}`: change some elements of an array.
    Array {
        /// `(index, patch)` pairs in strictly increasing index order.
        a: Vec<(usize, Patch)>,
        /// The length of the array after the patch.
        n: usize,
    },
}

impl Patch {
    /// Writes the patch as MessagePack, the body of a delta frame. The same maps as
    /// `rmp_serde::to_vec_named(self)`, except that a number which survives a round trip
    /// through `f32` is written as a float32 (5 bytes, not 9): snapshot trees hold game
    /// `f32`s widened to `f64`, and every MessagePack reader widens them back to the very
    /// same value, so decoding gives an equal patch.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when serialization fails.
    pub fn write_msgpack(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        rmp_serde::encode::write_named(out, &CompactPatch(self))
            .map_err(|e| CodecError::Encode(e.to_string()))
    }
}

/// [`Patch`] with its values written through [`CompactValue`].
struct CompactPatch<'a>(&'a Patch);

impl Serialize for CompactPatch<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Patch::Replace { r } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("r", &CompactValue(r))?;
                map.end()
            }
            Patch::Object { o, d } => {
                let mut map = serializer.serialize_map(Some(1 + usize::from(!d.is_empty())))?;
                map.serialize_entry("o", &CompactEntries(o))?;
                if !d.is_empty() {
                    map.serialize_entry("d", d)?;
                }
                map.end()
            }
            Patch::Array { a, n } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("a", &CompactElements(a))?;
                map.serialize_entry("n", n)?;
                map.end()
            }
        }
    }
}

struct CompactEntries<'a>(&'a BTreeMap<String, Patch>);

impl Serialize for CompactEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, patch) in self.0 {
            map.serialize_entry(key, &CompactPatch(patch))?;
        }
        map.end()
    }
}

struct CompactElements<'a>(&'a [(usize, Patch)]);

impl Serialize for CompactElements<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (index, patch) in self.0 {
            seq.serialize_element(&(index, CompactPatch(patch)))?;
        }
        seq.end()
    }
}

/// `f` as an `f32` when that loses nothing (same bits back).
#[expect(clippy::cast_possible_truncation, reason = "the round trip below checks it is exact")]
pub(super) fn exact_f32(f: f64) -> Option<f32> {
    let narrow = f as f32;
    (f64::from(narrow).to_bits() == f.to_bits()).then_some(narrow)
}

/// A JSON value whose `f32`-exact floats serialize as `f32`.
pub(super) struct CompactValue<'a>(pub(super) &'a Value);

impl Serialize for CompactValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Number(n) if n.is_f64() => match n.as_f64().and_then(exact_f32) {
                Some(f) => serializer.serialize_f32(f),
                None => n.serialize(serializer),
            },
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&CompactValue(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &CompactValue(value))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Why a patch does not fit the value it is applied to.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaError {
    /// An object patch met a value that is not an object (or a key that is absent).
    #[error("object patch applied to a non-object")]
    NotAnObject,
    /// An array patch met a value that is not an array (or an element that is absent).
    #[error("array patch applied to a non-array")]
    NotAnArray,
    /// An array patch entry points past the end of the array or at or past its new length.
    #[error("array index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// The index of the entry.
        index: usize,
        /// The length of the array when the entry is applied.
        len: usize,
    },
    /// The entries of an array patch are not in strictly increasing index order.
    #[error("array index {index} is not above the previous index")]
    IndexNotIncreasing {
        /// The offending index.
        index: usize,
    },
    /// An array patch does not end at its new length (an appended element has no entry).
    #[error("array patch ends at length {actual}, expected {expected}")]
    LengthMismatch {
        /// The length the patch announces (`n`).
        expected: usize,
        /// The length its entries produce.
        actual: usize,
    },
    /// A version 2 patch removes a key its object does not have.
    #[error("removed key is absent")]
    MissingKey,
    /// A version 2 patch is not of the documented shape (an unknown tag, an odd entry).
    #[error("malformed patch: {0}")]
    Malformed(&'static str),
}

/// The patch that turns `base` into `current`, or `None` when they are equal.
///
/// `apply(base, &diff(base, current).unwrap()) == Ok(current.clone())` always holds.
#[must_use]
pub fn diff(base: &Value, current: &Value) -> Option<Patch> {
    diff_sized(base, current).map(|(patch, _)| patch)
}

/// `base` with `patch` applied, as a new value.
///
/// # Errors
/// A [`DeltaError`] when the patch does not fit `base`.
pub fn apply(base: &Value, patch: &Patch) -> Result<Value, DeltaError> {
    check(Some(base), patch)?;
    if let Patch::Replace { r } = patch {
        return Ok(r.clone());
    }
    let mut value = base.clone();
    write_checked(&mut value, patch);
    Ok(value)
}

/// Applies `patch` to `target` in place.
///
/// The patch is checked before anything is written, so on error `target` is unchanged.
///
/// # Errors
/// A [`DeltaError`] when the patch does not fit `target`.
pub fn apply_in_place(target: &mut Value, patch: &Patch) -> Result<(), DeltaError> {
    check(Some(target), patch)?;
    write_checked(target, patch);
    Ok(())
}

// ---- diff -------------------------------------------------------------------------------

/// The patch and its estimated MessagePack size in bytes.
type Measured = (Patch, usize);

/// Bytes of `{"r": ...}` around the value: a one-entry map header and the key.
const REPLACE_OVERHEAD: usize = 3;

fn diff_sized(base: &Value, current: &Value) -> Option<Measured> {
    match (base, current) {
        (Value::Object(b), Value::Object(c)) => diff_objects(b, c),
        (Value::Array(b), Value::Array(c)) => diff_arrays(b, c, current),
        _ if base == current => None,
        _ => Some(replace(current)),
    }
}

fn replace(value: &Value) -> Measured {
    let mut size = REPLACE_OVERHEAD;
    measure(value, &mut size, usize::MAX);
    (Patch::Replace { r: value.clone() }, size)
}

fn diff_objects(base: &Map<String, Value>, current: &Map<String, Value>) -> Option<Measured> {
    let mut o = BTreeMap::new();
    // The outer map header and the key "o".
    let mut size: usize = 3;
    for (key, cv) in current {
        let child = match base.get(key) {
            Some(bv) => diff_sized(bv, cv),
            None => Some(replace(cv)),
        };
        if let Some((patch, s)) = child {
            size = size.saturating_add(str_size(key)).saturating_add(s);
            o.insert(key.clone(), patch);
        }
    }
    let d: Vec<String> = base.keys().filter(|k| !current.contains_key(*k)).cloned().collect();
    if o.is_empty() && d.is_empty() {
        return None;
    }
    size = size.saturating_add(container_header(o.len()));
    if !d.is_empty() {
        let keys: usize = d.iter().map(|k| str_size(k)).sum();
        size = size.saturating_add(2 + container_header(d.len())).saturating_add(keys);
    }
    Some((Patch::Object { o, d }, size))
}

fn diff_arrays(base: &[Value], current: &[Value], whole: &Value) -> Option<Measured> {
    let mut a = Vec::new();
    // The outer map header, the keys "a" and "n", and the value of `n`.
    let mut size = 5 + uint_size(current.len() as u64);
    for (index, cv) in current.iter().enumerate() {
        let child = match base.get(index) {
            Some(bv) => diff_sized(bv, cv),
            None => Some(replace(cv)),
        };
        if let Some((patch, s)) = child {
            // Each entry is a two-element array: header, index, patch.
            size = size.saturating_add(1 + uint_size(index as u64)).saturating_add(s);
            a.push((index, patch));
        }
    }
    if a.is_empty() && base.len() == current.len() {
        return None;
    }
    size = size.saturating_add(container_header(a.len()));
    // Measuring stops as soon as replacing is known to be larger than patching.
    let mut replace_size = REPLACE_OVERHEAD;
    measure(whole, &mut replace_size, size);
    if replace_size <= size {
        return Some((Patch::Replace { r: whole.clone() }, replace_size));
    }
    Some((Patch::Array { a, n: current.len() }, size))
}

/// Adds the MessagePack size of `value` to `acc`, stopping early once `acc` exceeds `cap`.
fn measure(value: &Value, acc: &mut usize, cap: usize) {
    if *acc > cap {
        return;
    }
    match value {
        Value::Null | Value::Bool(_) => *acc = acc.saturating_add(1),
        Value::Number(n) => *acc = acc.saturating_add(number_size(n)),
        Value::String(s) => *acc = acc.saturating_add(str_size(s)),
        Value::Array(items) => {
            *acc = acc.saturating_add(container_header(items.len()));
            for item in items {
                measure(item, acc, cap);
                if *acc > cap {
                    return;
                }
            }
        }
        Value::Object(map) => {
            *acc = acc.saturating_add(container_header(map.len()));
            for (key, item) in map {
                *acc = acc.saturating_add(str_size(key));
                measure(item, acc, cap);
                if *acc > cap {
                    return;
                }
            }
        }
    }
}

pub(super) fn number_size(n: &Number) -> usize {
    if let Some(u) = n.as_u64() {
        uint_size(u)
    } else if let Some(i) = n.as_i64() {
        match i {
            -32..=-1 => 1,
            -128..=-33 => 2,
            -32_768..=-129 => 3,
            -2_147_483_648..=-32_769 => 5,
            _ => 9,
        }
    } else {
        9
    }
}

pub(super) fn uint_size(u: u64) -> usize {
    match u {
        0..=127 => 1,
        128..=255 => 2,
        256..=65_535 => 3,
        65_536..=4_294_967_295 => 5,
        _ => 9,
    }
}

pub(super) fn str_size(s: &str) -> usize {
    let header = match s.len() {
        0..=31 => 1,
        32..=255 => 2,
        256..=65_535 => 3,
        _ => 5,
    };
    header + s.len()
}

pub(super) fn container_header(len: usize) -> usize {
    match len {
        0..=15 => 1,
        16..=65_535 => 3,
        _ => 5,
    }
}

// ---- apply ------------------------------------------------------------------------------

/// Checks that `patch` fits `target` (`None`: absent) without writing anything. Mirrors
/// [`write_checked`] exactly, so a checked patch always applies.
fn check(target: Option<&Value>, patch: &Patch) -> Result<(), DeltaError> {
    match patch {
        Patch::Replace { .. } => Ok(()),
        Patch::Object { o, d } => {
            let Some(Value::Object(map)) = target else {
                return Err(DeltaError::NotAnObject);
            };
            let removed: BTreeSet<&str> = d.iter().map(String::as_str).collect();
            for (key, p) in o {
                let child = if removed.contains(key.as_str()) { None } else { map.get(key) };
                check(child, p)?;
            }
            Ok(())
        }
        Patch::Array { a, n } => {
            let Some(Value::Array(items)) = target else {
                return Err(DeltaError::NotAnArray);
            };
            check_array(items, a, *n)
        }
    }
}

fn check_array(items: &[Value], a: &[(usize, Patch)], n: usize) -> Result<(), DeltaError> {
    check_array_with(items, a, n, check)
}

/// The array rule both patch formats share: truncate to `n`, then entries in strictly
/// increasing index order, each patching an element or appending the next one, ending
/// exactly `n` long. `check` checks one entry's patch against its element.
pub(super) fn check_array_with<P>(
    items: &[Value],
    entries: &[(usize, P)],
    n: usize,
    check: impl Fn(Option<&Value>, &P) -> Result<(), DeltaError>,
) -> Result<(), DeltaError> {
    let kept = items.len().min(n);
    // The length of the array while the entries are applied in order.
    let mut len = kept;
    let mut next = 0;
    for (index, p) in entries {
        let index = *index;
        if index < next {
            return Err(DeltaError::IndexNotIncreasing { index });
        }
        if index > len || index >= n {
            return Err(DeltaError::IndexOutOfRange { index, len });
        }
        let child = if index < kept { items.get(index) } else { None };
        check(child, p)?;
        if index == len {
            len += 1;
        }
        next = index + 1;
    }
    if len == n { Ok(()) } else { Err(DeltaError::LengthMismatch { expected: n, actual: len }) }
}

/// Writes a patch that [`check`] accepted. Mismatches cannot happen then; they are skipped.
fn write_checked(target: &mut Value, patch: &Patch) {
    match (target, patch) {
        (target, Patch::Replace { r }) => *target = r.clone(),
        (Value::Object(map), Patch::Object { o, d }) => {
            for key in d {
                map.remove(key);
            }
            for (key, p) in o {
                match map.get_mut(key) {
                    Some(value) => write_checked(value, p),
                    None => {
                        map.insert(key.clone(), fresh(p));
                    }
                }
            }
        }
        (Value::Array(items), Patch::Array { a, n }) => {
            items.truncate(*n);
            items.reserve(n.saturating_sub(items.len()));
            for (index, p) in a {
                match items.get_mut(*index) {
                    Some(value) => write_checked(value, p),
                    None => items.push(fresh(p)),
                }
            }
        }
        _ => {}
    }
}

/// The value a checked patch gives when its target is absent.
fn fresh(patch: &Patch) -> Value {
    let mut value = Value::Null;
    write_checked(&mut value, patch);
    value
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    /// Asserts the contract for one pair, through both `apply` and `apply_in_place`.
    fn assert_round_trip(base: &Value, current: &Value) {
        let Some(patch) = diff(base, current) else {
            assert_eq!(base, current, "diff said equal");
            return;
        };
        assert_ne!(base, current, "diff of equal values: {patch:?}");
        assert_eq!(apply(base, &patch).as_ref(), Ok(current), "{base} -> {current}: {patch:?}");
        let mut target = base.clone();
        assert_eq!(apply_in_place(&mut target, &patch), Ok(()));
        assert_eq!(&target, current);
        let mut bytes = Vec::new();
        patch.write_msgpack(&mut bytes).unwrap();
        let decoded: Patch = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded, patch, "the compact MessagePack decodes to the same patch");
        assert!(bytes.len() <= rmp_serde::to_vec_named(&patch).unwrap().len());
    }

    #[test]
    fn f32_exact_floats_are_written_as_float32_and_others_keep_their_bits() {
        let base = json!({"x": 1.0, "y": 0.0, "t": 5});
        let current = json!({"x": f64::from(128.3_f32), "y": 0.1, "t": -7});
        assert_round_trip(&base, &current);
        let patch = diff(&base, &current).unwrap();
        let mut compact = Vec::new();
        patch.write_msgpack(&mut compact).unwrap();
        let named = rmp_serde::to_vec_named(&patch).unwrap();
        assert_eq!(named.len() - compact.len(), 4, "x as float32 saves 4 bytes; y stays float64");
        let decoded: Patch = rmp_serde::from_slice(&compact).unwrap();
        assert_eq!(apply(&base, &decoded), Ok(current));
    }

    fn json_text(patch: &Patch) -> String {
        serde_json::to_string(patch).unwrap()
    }

    fn replace(r: Value) -> Patch {
        Patch::Replace { r }
    }

    /// Nested objects, removed keys, growing and shrinking arrays, type changes and nulls
    /// all round-trip.
    #[test]
    fn hand_written_round_trips() {
        let cases = [
            (
                json!({"a": 1, "b": {"c": {"d": [1, 2, 3]}}}),
                json!({"a": 1, "b": {"c": {"d": [1, 5, 3]}}}),
            ),
            (json!({"a": 1, "b": 2, "c": 3}), json!({"a": 1})),
            (json!({"a": 1}), json!({"a": 1, "z": {"new": [true, null]}})),
            (json!({"a": {"x": 1}, "b": 2}), json!({"b": 2, "c": {"x": 1}})),
            (json!([1, 2, 3]), json!([1, 2, 3, 4, 5])),
            (json!([{"x": 1}, {"x": 2}, {"x": 3}]), json!([{"x": 1}])),
            (json!([{"x": 1, "tag": "long enough"}, 2]), json!([{"x": 9, "tag": "long enough"}])),
            (json!([]), json!([[], {}])),
            (json!([1, 2]), json!([])),
            (json!({"a": [1]}), json!({"a": "now a string"})),
            (json!({"a": {"b": 1}}), json!({"a": [1]})),
            (json!(null), json!({"a": 1})),
            (json!({"a": 1}), json!(null)),
            (json!({"a": null}), json!({"a": 0})),
            (json!({"a": 0}), json!({"a": null})),
            (json!([null, 1]), json!([1, null])),
            (json!(1), json!(1.0)),
            (json!(-0.5), json!(0.25)),
            (json!("x"), json!("y")),
            (json!(true), json!(false)),
            (json!({}), json!({})),
        ];
        for (base, current) in &cases {
            assert_round_trip(base, current);
            assert_round_trip(current, base);
        }
    }

    /// `diff` of equal values is `None`, and nested unchanged parts are left out.
    #[test]
    fn unchanged_parts_are_omitted() {
        let v = json!({"a": [1, {"b": null}], "c": 2.5, "e": {}});
        assert_eq!(diff(&v, &v.clone()), None);
        let changed = json!({"a": [1, {"b": null}], "c": 3.5, "e": {}});
        let expected =
            Patch::Object { o: [("c".to_owned(), replace(json!(3.5)))].into(), d: vec![] };
        assert_eq!(diff(&v, &changed), Some(expected));
    }

    /// Each patch shape serializes to exactly the documented JSON and parses back.
    #[test]
    fn json_shapes() {
        let shapes = [
            (replace(json!({"k": [1]})), r#"{"r":{"k":[1]}}"#),
            (replace(Value::Null), r#"{"r":null}"#),
            (
                Patch::Object {
                    o: [("b".to_owned(), replace(json!(2)))].into(),
                    d: vec!["c".into()],
                },
                r#"{"o":{"b":{"r":2}},"d":["c"]}"#,
            ),
            (
                Patch::Object { o: [("b".to_owned(), replace(json!(2)))].into(), d: vec![] },
                r#"{"o":{"b":{"r":2}}}"#,
            ),
            (
                Patch::Object { o: BTreeMap::new(), d: vec!["gone".into()] },
                r#"{"o":{},"d":["gone"]}"#,
            ),
            (
                Patch::Array { a: vec![(1, replace(json!(5))), (3, replace(json!("new")))], n: 4 },
                r#"{"a":[[1,{"r":5}],[3,{"r":"new"}]],"n":4}"#,
            ),
            (Patch::Array { a: vec![], n: 2 }, r#"{"a":[],"n":2}"#),
        ];
        for (patch, text) in &shapes {
            assert_eq!(json_text(patch), *text);
            assert_eq!(&serde_json::from_str::<Patch>(text).unwrap(), patch, "{text}");
        }
    }

    /// `diff` produces the documented shapes: key removal, element patches and appends.
    #[test]
    fn diff_shapes() {
        let base = json!({"keep": 1, "old": 2, "list": [{"id": "a-long-id", "v": 1}, {"id": "b-long-id", "v": 2}]});
        let current = json!({"keep": 1, "list": [{"id": "a-long-id", "v": 1}, {"id": "b-long-id", "v": 3}, {"id": "c"}]});
        assert_eq!(
            json_text(&diff(&base, &current).unwrap()),
            r#"{"o":{"list":{"a":[[1,{"o":{"v":{"r":3}}}],[2,{"r":{"id":"c"}}]],"n":3}},"d":["old"]}"#
        );
        assert_eq!(json_text(&diff(&json!([1, 2]), &json!({"a": 1})).unwrap()), r#"{"r":{"a":1}}"#);
        assert_eq!(json_text(&diff(&json!({"a": 1}), &json!(null)).unwrap()), r#"{"r":null}"#);
    }

    /// Arrays fall back to a plain replacement when that is not larger than the patch.
    #[test]
    fn arrays_replace_when_cheaper() {
        let patch = diff(&json!([1, 2, 3]), &json!([4, 5, 6])).unwrap();
        assert_eq!(patch, replace(json!([4, 5, 6])));
        let base: Vec<Value> =
            (0..40).map(|i| json!({"id": format!("item-{i}"), "hp": 100})).collect();
        let mut current = base.clone();
        current[7]["hp"] = json!(90);
        let patch = diff(&Value::Array(base), &Value::Array(current)).unwrap();
        assert_eq!(json_text(&patch), r#"{"a":[[7,{"o":{"hp":{"r":90}}}]],"n":40}"#);
    }

    /// A patch survives a MessagePack round trip with `to_vec_named` / `from_slice`.
    #[test]
    fn msgpack_round_trip() {
        let patch = Patch::Object {
            o: [
                (
                    "a".to_owned(),
                    Patch::Array {
                        a: vec![(0, replace(json!(-7))), (2, replace(json!(1.5)))],
                        n: 3,
                    },
                ),
                ("n".to_owned(), replace(Value::Null)),
                ("o".to_owned(), Patch::Object { o: BTreeMap::new(), d: vec!["x".into()] }),
                ("r".to_owned(), replace(json!({"deep": [u64::MAX, i64::MIN, "s", true]}))),
            ]
            .into(),
            d: vec!["gone".into()],
        };
        let bytes = rmp_serde::to_vec_named(&patch).unwrap();
        assert_eq!(rmp_serde::from_slice::<Patch>(&bytes).unwrap(), patch);
        let as_value: Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(as_value, serde_json::to_value(&patch).unwrap(), "same maps as JSON");
    }

    /// Patches that do not fit their base give errors, never panics, and leave an
    /// `apply_in_place` target untouched.
    #[test]
    fn mismatched_patches_are_errors() {
        let object = Patch::Object { o: [("k".to_owned(), replace(json!(1)))].into(), d: vec![] };
        let array = |a: Vec<(usize, Patch)>, n| Patch::Array { a, n };
        let cases = [
            (json!([1]), object.clone(), DeltaError::NotAnObject),
            (json!(3), array(vec![], 0), DeltaError::NotAnArray),
            (
                json!({}),
                Patch::Object { o: [("k".to_owned(), object.clone())].into(), d: vec![] },
                DeltaError::NotAnObject,
            ),
            (
                json!({"k": {}}),
                Patch::Object { o: [("k".to_owned(), object.clone())].into(), d: vec!["k".into()] },
                DeltaError::NotAnObject,
            ),
            (
                json!([0]),
                array(vec![(5, replace(json!(1)))], 6),
                DeltaError::IndexOutOfRange { index: 5, len: 1 },
            ),
            (
                json!([0, 1, 2]),
                array(vec![(2, replace(json!(1)))], 2),
                DeltaError::IndexOutOfRange { index: 2, len: 2 },
            ),
            (
                json!([0, 1]),
                array(vec![(1, replace(json!(1))), (1, replace(json!(2)))], 2),
                DeltaError::IndexNotIncreasing { index: 1 },
            ),
            (json!([0]), array(vec![], 3), DeltaError::LengthMismatch { expected: 3, actual: 1 }),
            (json!([0]), array(vec![(0, array(vec![], 0))], 1), DeltaError::NotAnArray),
            (json!([0]), array(vec![(1, object.clone())], 2), DeltaError::NotAnObject),
            (
                json!([]),
                array(vec![], usize::MAX),
                DeltaError::LengthMismatch { expected: usize::MAX, actual: 0 },
            ),
            (
                json!([]),
                array(vec![(usize::MAX, replace(json!(1)))], usize::MAX),
                DeltaError::IndexOutOfRange { index: usize::MAX, len: 0 },
            ),
        ];
        for (base, patch, error) in cases {
            assert_eq!(apply(&base, &patch), Err(error.clone()), "{base} with {patch:?}");
            let mut target = base.clone();
            assert_eq!(apply_in_place(&mut target, &patch), Err(error));
            assert_eq!(target, base, "unchanged after an error");
        }
        let err = DeltaError::IndexOutOfRange { index: 5, len: 1 };
        assert_eq!(err.to_string(), "array index 5 out of range for length 1");
    }

    /// A tiny deterministic xorshift64* generator (shared with the version 2 tests).
    pub(in crate::codec) struct XorShift(pub(in crate::codec) u64);

    impl XorShift {
        pub(in crate::codec) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub(in crate::codec) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_scalar(rng: &mut XorShift) -> Value {
        match rng.below(8) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => json!(rng.below(300)),
            3 => json!(-(rng.below(70_000) as i64) - 1),
            // Eighths: exact in binary and short in decimal, so JSON round-trips them too.
            4 => json!((rng.below(2_000) as f64 - 1_000.0) / 8.0),
            5 => json!(rng.next()),
            6 => json!(["a", "bb", "player-1", ""][rng.below(4) as usize]),
            _ => json!(rng.below(3)),
        }
    }

    pub(in crate::codec) fn random_value(rng: &mut XorShift, depth: u32) -> Value {
        if depth == 0 || rng.below(3) == 0 {
            return random_scalar(rng);
        }
        let len = rng.below(5) as usize;
        if rng.below(2) == 0 {
            Value::Array((0..len).map(|_| random_value(rng, depth - 1)).collect())
        } else {
            let key = |rng: &mut XorShift| {
                ["a", "b", "c", "d", "e", "f"][rng.below(6) as usize].to_owned()
            };
            Value::Object((0..len).map(|_| (key(rng), random_value(rng, depth - 1))).collect())
        }
    }

    /// A copy of `value` with a few random edits, so that pairs share structure.
    pub(in crate::codec) fn mutate(rng: &mut XorShift, value: &Value, depth: u32) -> Value {
        match (value, rng.below(6)) {
            (_, 0) => random_value(rng, depth),
            (Value::Array(items), _) => {
                let mut items: Vec<Value> = items
                    .iter()
                    .map(|v| {
                        if rng.below(3) == 0 {
                            mutate(rng, v, depth.saturating_sub(1))
                        } else {
                            v.clone()
                        }
                    })
                    .collect();
                match rng.below(4) {
                    0 => items.truncate(rng.below(items.len() as u64 + 1) as usize),
                    1 => items.push(random_value(rng, depth.saturating_sub(1))),
                    _ => {}
                }
                Value::Array(items)
            }
            (Value::Object(map), _) => {
                let mut map = map.clone();
                for v in map.values_mut() {
                    if rng.below(3) == 0 {
                        *v = mutate(rng, v, depth.saturating_sub(1));
                    }
                }
                let key = ["a", "b", "c", "d", "e", "f", "g"][rng.below(7) as usize];
                match rng.below(3) {
                    0 => {
                        map.remove(key);
                    }
                    1 => {
                        map.insert(key.to_owned(), random_value(rng, depth.saturating_sub(1)));
                    }
                    _ => {}
                }
                Value::Object(map)
            }
            (v, _) => {
                if rng.below(2) == 0 {
                    v.clone()
                } else {
                    random_scalar(rng)
                }
            }
        }
    }

    /// 2,000 random pairs of trees (depth up to 4) satisfy the contract, `diff(x, x)` is
    /// `None`, and every patch survives JSON and MessagePack round trips.
    #[test]
    fn random_round_trips() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut patched = 0;
        for i in 0..2_000 {
            let base = random_value(&mut rng, 4);
            let current =
                if i % 4 == 0 { random_value(&mut rng, 4) } else { mutate(&mut rng, &base, 4) };
            assert_eq!(diff(&base, &base), None);
            assert_eq!(diff(&current, &current), None);
            assert_round_trip(&base, &current);
            if let Some(patch) = diff(&base, &current) {
                patched += 1;
                assert_eq!(serde_json::from_str::<Patch>(&json_text(&patch)).unwrap(), patch);
                let bytes = rmp_serde::to_vec_named(&patch).unwrap();
                assert_eq!(rmp_serde::from_slice::<Patch>(&bytes).unwrap(), patch);
            }
        }
        assert!(patched > 1_000, "most pairs differ: {patched}");
    }

    pub(in crate::codec) fn game_snapshot() -> Value {
        let players: Vec<Value> = (0..8)
            .map(|i| {
                let (x, y) = (100.0 * f64::from(i) + 0.5, 2.0 * f64::from(i));
                json!({"id": format!("p{i}"), "x": x, "y": y, "score": 10 * i})
            })
            .collect();
        let pickups: Vec<Value> =
            (0..20).map(|i| json!({"id": format!("k{i}"), "kind": "coin", "x": 37.5 * f64::from(i), "y": 12.25})).collect();
        json!({"players": players, "pickups": pickups})
    }

    /// One moved player in an 8-player, 20-pickup snapshot encodes to less than a fifth of
    /// the full snapshot in MessagePack.
    #[test]
    fn moved_player_patch_is_small() {
        let base = game_snapshot();
        let mut current = base.clone();
        current["players"][3]["x"] = json!(312.25);
        current["players"][3]["y"] = json!(7.75);
        let patch = diff(&base, &current).unwrap();
        assert_eq!(apply(&base, &patch).as_ref(), Ok(&current));
        let full = rmp_serde::to_vec_named(&current).unwrap().len();
        let delta = rmp_serde::to_vec_named(&patch).unwrap().len();
        println!("delta {delta} B / full {full} B = {:.4}", delta as f64 / full as f64);
        assert!(delta * 5 < full, "delta {delta} vs full {full}");
    }
}
