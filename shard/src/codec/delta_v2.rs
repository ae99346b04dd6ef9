//! Denser structural deltas, version 2 (`format=msgpack&delta=2`): the body of delta frames
//! in [`WireMode::MsgPackDeltaV2`](super::WireMode::MsgPackDeltaV2).
//!
//! The model is version 1's ([`super::delta`]): a snapshot is a [`Value`] tree, [`diff`]
//! compares the snapshot a client acknowledged (the base) with the current one, and the
//! client rebuilds the current one with [`apply`] (or [`apply_in_place`], or its own port).
//! Only the encoding differs. Version 1 wraps every change in a map with one-letter keys
//! (`{"r": v}`, `{"o": …}`, `{"a": …, "n": …}`); version 2 lets the MessagePack type of each
//! node say what it is, so the most common change, a number inside a record inside a list,
//! is written as the bare number under its key.
//!
//! # Wire format
//!
//! A patch is one MessagePack value, read by its type (shown here as JSON):
//!
//! - **A scalar** (nil, boolean, integer, float, string): the new value is that scalar.
//! - **A map** `{"<key>": <patch>, …}`: an object patch; the base must be an object. Each
//!   entry changes one key. `[2]` removes the key, which must be present. Any other patch
//!   applies to the key's value; a key the object does not have takes a replacement (a
//!   scalar or `[0, v]`) and is added. Keys are strings and unique; the encoder writes them
//!   in sorted order, but as they name distinct keys, the order of application is free.
//! - **An array**, told apart by its first element, the tag:
//!   - `[0, <value>]`: replace the whole value by `<value>`, whatever it is. The encoder uses
//!     it for maps and arrays, which would otherwise read as patches.
//!   - `[1, <n>, <i1>, <patch1>, <i2>, <patch2>, …]`: an array patch; the base must be an
//!     array. Truncate it to `n` elements, then apply the pairs in strictly increasing index
//!     order: an index below the current length patches that element, the index equal to
//!     it appends a new element (its patch must be a replacement). The result must be
//!     exactly `n` long.
//!   - `[2]`: remove; valid only as the patch of a key inside an object patch.
//!   - Any other array (another tag, a wrong length) is malformed.
//!
//! A nil frame body still means "unchanged since the base", so a replacement of the whole
//! snapshot by null is written `[0, nil]`. Floats that are exact in 32 bits are written as
//! float32 (as in version 1): every MessagePack reader widens them back to the same value.
//!
//! [`apply`] refuses a patch that does not fit its base with a [`DeltaError`], before it
//! writes anything, and never panics. A TypeScript client can apply a patch like this
//! (without the checks):
//!
//! ```text
//! function apply(base, p) {
//!   if (Array.isArray(p)) {
//!     if (p[0] === 0) return p[1];
//!     const out = base.slice(0, p[1]);                   // p[0] === 1: an array patch
//!     for (let j = 2; j < p.length; j += 2) out[p[j]] = apply(out[p[j]], p[j + 1]);
//!     return out;
//!   }
//!   if (p === null || typeof p !== "object") return p;  // a scalar
//!   const out = { ...base };                            // an object patch
//!   for (const [k, q] of Object.entries(p)) {
//!     if (Array.isArray(q) && q[0] === 2) delete out[k];
//!     else out[k] = apply(out[k], q);
//!   }
//!   return out;
//! }
//! ```
//!
//! # How `diff` chooses
//!
//! - Values of different JSON types, or scalars that differ, are replaced. Numbers compare
//!   as [`Value`] does: `1` and `1.0` differ, so the result keeps the exact number.
//! - Objects are patched key by key, and arrays element by element, unless replacing the
//!   whole value is no larger, by an exact count of the MessagePack bytes of both.
//!
//! # Contract
//!
//! For all values `base` and `cur`, `diff(base, cur)` is `None` exactly when
//! `base == cur`, and otherwise `apply(base, &diff(base, cur).unwrap()) == Ok(cur)`; the
//! patch survives [`Patch::write_msgpack`] and [`Patch::read_msgpack`] unchanged.
//!
//! ```
//! use pylon_shard::codec::delta_v2::{Patch, apply, diff};
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
//! assert_eq!(patch.to_value(), json!({"players": [1, 2, 1, {"x": 5.5}], "round": [2]}));
//! assert_eq!(apply(&base, &patch), Ok(cur.clone()));
//! let mut bytes = Vec::new();
//! patch.write_msgpack(&mut bytes).unwrap();
//! assert_eq!(bytes.len(), 29);
//! assert_eq!(Patch::read_msgpack(&bytes).unwrap(), patch);
//! assert_eq!(diff(&cur, &cur), None::<Patch>);
//! ```

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::delta::{
    CompactValue, DeltaError, container_header, exact_f32, number_size, str_size, uint_size,
};
use super::error::CodecError;

/// The tag of `[0, value]`: replace the whole value.
pub const TAG_REPLACE: u64 = 0;
/// The tag of `[1, n, index, patch, …]`: patch an array.
pub const TAG_ARRAY: u64 = 1;
/// The tag of `[2]`: remove a key of an object.
pub const TAG_REMOVE: u64 = 2;

/// A change from one [`Value`] to another; see the module docs for the wire format.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// Replace the whole value (a bare scalar, or `[0, value]`).
    Replace(Value),
    /// Change some keys of an object (a map).
    Object(BTreeMap<String, KeyPatch>),
    /// Change some elements of an array (`[1, len, index, patch, …]`).
    Array {
        /// The length of the array after the patch.
        len: usize,
        /// `(index, patch)` pairs in strictly increasing index order.
        entries: Vec<(usize, Patch)>,
    },
}

/// What an object patch does to one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPatch {
    /// Patch the key's value, or add the key (then the patch is a replacement).
    Patch(Patch),
    /// Remove the key (`[2]`).
    Remove,
}

impl Patch {
    /// Writes the patch as MessagePack, the body of a version 2 delta frame: a top-level
    /// replacement by null is written `[0, nil]` (a nil body means "unchanged"), and floats
    /// exact in `f32` as float32.
    ///
    /// # Errors
    /// [`CodecError::Encode`] when serialization fails.
    pub fn write_msgpack(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        rmp_serde::encode::write(out, &Wire { patch: self, top: true })
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    /// Reads a patch written by [`Self::write_msgpack`] (or any client's encoder).
    ///
    /// # Errors
    /// [`CodecError::MsgPack`] when the bytes are not one MessagePack value with string
    /// map keys, [`CodecError::Delta`] when the value is not a patch.
    pub fn read_msgpack(bytes: &[u8]) -> Result<Self, CodecError> {
        let value: Value =
            rmp_serde::from_slice(bytes).map_err(|e| CodecError::MsgPack(e.to_string()))?;
        Ok(Self::try_from(value)?)
    }

    /// The patch as a JSON value: the MessagePack value it is written as, with every float
    /// kept at 64 bits (a top-level replacement by null is plain `null` here).
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::Replace(value) if is_container(value) => {
                Value::Array(vec![Value::from(TAG_REPLACE), value.clone()])
            }
            Self::Replace(value) => value.clone(),
            Self::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, entry)| {
                        let value = match entry {
                            KeyPatch::Patch(patch) => patch.to_value(),
                            KeyPatch::Remove => Value::Array(vec![Value::from(TAG_REMOVE)]),
                        };
                        (key.clone(), value)
                    })
                    .collect(),
            ),
            Self::Array { len, entries } => {
                let mut items = Vec::with_capacity(2 + 2 * entries.len());
                items.push(Value::from(TAG_ARRAY));
                items.push(Value::from(*len));
                for (index, patch) in entries {
                    items.push(Value::from(*index));
                    items.push(patch.to_value());
                }
                Value::Array(items)
            }
        }
    }
}

impl TryFrom<Value> for Patch {
    type Error = DeltaError;

    /// Reads a patch from its value (what a MessagePack or JSON reader gives).
    fn try_from(value: Value) -> Result<Self, DeltaError> {
        match value {
            Value::Object(map) => {
                let mut entries = BTreeMap::new();
                for (key, value) in map {
                    let entry = if is_remove(&value) {
                        KeyPatch::Remove
                    } else {
                        KeyPatch::Patch(Self::try_from(value)?)
                    };
                    entries.insert(key, entry);
                }
                Ok(Self::Object(entries))
            }
            Value::Array(items) => tagged(items),
            scalar => Ok(Self::Replace(scalar)),
        }
    }
}

fn is_container(value: &Value) -> bool {
    matches!(value, Value::Array(_) | Value::Object(_))
}

fn is_remove(value: &Value) -> bool {
    matches!(value, Value::Array(items) if items.len() == 1 && items[0].as_u64() == Some(TAG_REMOVE))
}

/// An array read as a patch: `[0, value]` or `[1, len, index, patch, …]`.
fn tagged(items: Vec<Value>) -> Result<Patch, DeltaError> {
    let mut items = items.into_iter();
    let tag = items.next().and_then(|tag| tag.as_u64());
    match (tag, items.len()) {
        (Some(TAG_REPLACE), 1) => Ok(Patch::Replace(items.next().unwrap_or(Value::Null))),
        (Some(TAG_ARRAY), rest) if rest % 2 == 1 => {
            let len = index(items.next())?;
            let mut entries = Vec::with_capacity(rest / 2);
            while let Some(at) = items.next() {
                let patch = items.next().ok_or(DeltaError::Malformed("an index without patch"))?;
                entries.push((index(Some(at))?, Patch::try_from(patch)?));
            }
            Ok(Patch::Array { len, entries })
        }
        (Some(TAG_REMOVE), 0) => Err(DeltaError::Malformed("[2] removes a key of an object")),
        _ => Err(DeltaError::Malformed("an array patch is [0, value] or [1, len, …pairs]")),
    }
}

fn index(value: Option<Value>) -> Result<usize, DeltaError> {
    value
        .and_then(|v| v.as_u64())
        .and_then(|i| usize::try_from(i).ok())
        .ok_or(DeltaError::Malformed("lengths and indexes are unsigned integers"))
}

/// A patch as it goes on the wire; `top`: the frame body (a null replacement is wrapped).
struct Wire<'a> {
    patch: &'a Patch,
    top: bool,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.patch {
            Patch::Replace(value) if is_container(value) || (self.top && value.is_null()) => {
                let mut seq = serializer.serialize_seq(Some(2))?;
                seq.serialize_element(&TAG_REPLACE)?;
                seq.serialize_element(&CompactValue(value))?;
                seq.end()
            }
            Patch::Replace(value) => CompactValue(value).serialize(serializer),
            Patch::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, entry) in entries {
                    match entry {
                        KeyPatch::Patch(patch) => {
                            map.serialize_entry(key, &Wire { patch, top: false })?;
                        }
                        KeyPatch::Remove => map.serialize_entry(key, &[TAG_REMOVE])?,
                    }
                }
                map.end()
            }
            Patch::Array { len, entries } => {
                let mut seq = serializer.serialize_seq(Some(2 + 2 * entries.len()))?;
                seq.serialize_element(&TAG_ARRAY)?;
                seq.serialize_element(len)?;
                for (index, patch) in entries {
                    seq.serialize_element(index)?;
                    seq.serialize_element(&Wire { patch, top: false })?;
                }
                seq.end()
            }
        }
    }
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
    if let Patch::Replace(value) = patch {
        return Ok(value.clone());
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

/// The patch and its MessagePack size in bytes (below the top level, where it is exact).
type Measured = (Patch, usize);

/// Bytes of `[0, …]` around a replacing map or array: the array header and the tag.
const REPLACE_OVERHEAD: usize = 2;

fn diff_sized(base: &Value, current: &Value) -> Option<Measured> {
    match (base, current) {
        (Value::Object(b), Value::Object(c)) => diff_objects(b, c, current),
        (Value::Array(b), Value::Array(c)) => diff_arrays(b, c, current),
        _ if base == current => None,
        _ => Some(replace(current)),
    }
}

fn replace(value: &Value) -> Measured {
    let mut size = if is_container(value) { REPLACE_OVERHEAD } else { 0 };
    measure(value, &mut size, usize::MAX);
    (Patch::Replace(value.clone()), size)
}

fn diff_objects(
    base: &Map<String, Value>,
    current: &Map<String, Value>,
    whole: &Value,
) -> Option<Measured> {
    let mut entries = BTreeMap::new();
    let mut size: usize = 0;
    for (key, cv) in current {
        let child = match base.get(key) {
            Some(bv) => diff_sized(bv, cv),
            None => Some(replace(cv)),
        };
        if let Some((patch, s)) = child {
            size = size.saturating_add(str_size(key)).saturating_add(s);
            entries.insert(key.clone(), KeyPatch::Patch(patch));
        }
    }
    for key in base.keys().filter(|k| !current.contains_key(*k)) {
        // `[2]`: a one-element array header and the tag.
        size = size.saturating_add(str_size(key)).saturating_add(2);
        entries.insert(key.clone(), KeyPatch::Remove);
    }
    if entries.is_empty() {
        return None;
    }
    size = size.saturating_add(container_header(entries.len()));
    Some(smaller(Patch::Object(entries), size, whole))
}

fn diff_arrays(base: &[Value], current: &[Value], whole: &Value) -> Option<Measured> {
    let mut entries = Vec::new();
    // The tag and the new length.
    let mut size = 1 + uint_size(current.len() as u64);
    for (index, cv) in current.iter().enumerate() {
        let child = match base.get(index) {
            Some(bv) => diff_sized(bv, cv),
            None => Some(replace(cv)),
        };
        if let Some((patch, s)) = child {
            size = size.saturating_add(uint_size(index as u64)).saturating_add(s);
            entries.push((index, patch));
        }
    }
    if entries.is_empty() && base.len() == current.len() {
        return None;
    }
    size = size.saturating_add(container_header(2 + 2 * entries.len()));
    Some(smaller(Patch::Array { len: current.len(), entries }, size, whole))
}

/// `patch` (of `size` bytes), or the replacement by `whole` (a map or an array) when that
/// is no larger. Measuring stops as soon as the replacement is known to be larger.
fn smaller(patch: Patch, size: usize, whole: &Value) -> Measured {
    let mut replace_size = REPLACE_OVERHEAD;
    measure(whole, &mut replace_size, size);
    if replace_size <= size { (Patch::Replace(whole.clone()), replace_size) } else { (patch, size) }
}

/// Adds the MessagePack size of `value` as [`Patch::write_msgpack`] writes it to `acc`,
/// stopping early once `acc` exceeds `cap`.
fn measure(value: &Value, acc: &mut usize, cap: usize) {
    if *acc > cap {
        return;
    }
    match value {
        Value::Null | Value::Bool(_) => *acc = acc.saturating_add(1),
        Value::Number(n) => *acc = acc.saturating_add(compact_number_size(n)),
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

/// A number's size with `f32`-exact floats as float32 (5 bytes).
fn compact_number_size(n: &Number) -> usize {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            if exact_f32(f).is_some() {
                5
            } else {
                9
            }
        }
        _ => number_size(n),
    }
}

// ---- apply ------------------------------------------------------------------------------

/// Checks that `patch` fits `target` (`None`: absent) without writing anything. Mirrors
/// [`write_checked`] exactly, so a checked patch always applies.
fn check(target: Option<&Value>, patch: &Patch) -> Result<(), DeltaError> {
    match patch {
        Patch::Replace(_) => Ok(()),
        Patch::Object(entries) => {
            let Some(Value::Object(map)) = target else {
                return Err(DeltaError::NotAnObject);
            };
            for (key, entry) in entries {
                match entry {
                    KeyPatch::Remove if map.contains_key(key) => {}
                    KeyPatch::Remove => return Err(DeltaError::MissingKey),
                    KeyPatch::Patch(p) => check(map.get(key), p)?,
                }
            }
            Ok(())
        }
        Patch::Array { len, entries } => {
            let Some(Value::Array(items)) = target else {
                return Err(DeltaError::NotAnArray);
            };
            check_array(items, entries, *len)
        }
    }
}

fn check_array(items: &[Value], entries: &[(usize, Patch)], n: usize) -> Result<(), DeltaError> {
    super::delta::check_array_with(items, entries, n, check)
}

/// Writes a patch that [`check`] accepted. Mismatches cannot happen then; they are skipped.
fn write_checked(target: &mut Value, patch: &Patch) {
    match (target, patch) {
        (target, Patch::Replace(value)) => *target = value.clone(),
        (Value::Object(map), Patch::Object(entries)) => {
            for (key, entry) in entries {
                match (entry, map.get_mut(key)) {
                    (KeyPatch::Remove, _) => {
                        map.remove(key);
                    }
                    (KeyPatch::Patch(p), Some(value)) => write_checked(value, p),
                    (KeyPatch::Patch(p), None) => {
                        map.insert(key.clone(), fresh(p));
                    }
                }
            }
        }
        (Value::Array(items), Patch::Array { len, entries }) => {
            items.truncate(*len);
            items.reserve(len.saturating_sub(items.len()));
            for (index, p) in entries {
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
mod tests;
