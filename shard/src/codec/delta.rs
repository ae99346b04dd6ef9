//! Structural deltas between two snapshot trees (`serde_json::Value`), the body of delta
//! frames. Wire format (JSON shown; MessagePack carries the same maps):
//!
//! - `{"r": <value>}`: replace the whole value.
//! - `{"o": {"<key>": <patch>, …}, "d": ["<removed key>", …]}`: an object; only changed
//!   keys appear; `d` is omitted when no key was removed.
//! - `{"a": [[<index>, <patch>], …], "n": <new length>}`: an array; patches for changed
//!   indexes below the old length, `{"r": …}` for indexes at or past it, in increasing
//!   order; the result has length `n`.
//!
//! Contract: `apply(base, &diff(base, cur)?) == cur`, and `diff(x, x)` is `None`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// A change from one tree to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Patch {
    /// Replace the value.
    Replace {
        /// The new value.
        r: Value,
    },
    /// Change some keys of an object.
    Object {
        /// Changed or added keys.
        o: BTreeMap<String, Patch>,
        /// Removed keys.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        d: Vec<String>,
    },
    /// Change some elements of an array.
    Array {
        /// `(index, patch)` pairs in increasing index order.
        a: Vec<(usize, Patch)>,
        /// The new length.
        n: usize,
    },
}

/// Why a patch does not fit the value it is applied to.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaError {
    /// An object patch met something that is not an object.
    #[error("object patch applied to a non-object")]
    NotAnObject,
    /// An array patch met something that is not an array.
    #[error("array patch applied to a non-array")]
    NotAnArray,
    /// A nested patch names a key the object does not have.
    #[error("patch for missing key `{0}`")]
    MissingKey(String),
    /// An array patch names an index past the end, or the final length is wrong.
    #[error("array index {0} out of range")]
    IndexOutOfRange(usize),
}

/// The patch from `base` to `current`, or `None` when they are equal.
#[must_use]
pub fn diff(base: &Value, current: &Value) -> Option<Patch> {
    if base == current {
        return None;
    }
    Some(match (base, current) {
        (Value::Object(b), Value::Object(c)) => {
            let o = c
                .iter()
                .filter_map(|(key, cv)| {
                    let patch = match b.get(key) {
                        Some(bv) => diff(bv, cv)?,
                        None => Patch::Replace { r: cv.clone() },
                    };
                    Some((key.clone(), patch))
                })
                .collect();
            let d = b.keys().filter(|k| !c.contains_key(*k)).cloned().collect();
            Patch::Object { o, d }
        }
        (Value::Array(b), Value::Array(c)) => diff_arrays(b, c, current),
        _ => Patch::Replace { r: current.clone() },
    })
}

fn diff_arrays(base: &[Value], current: &[Value], whole: &Value) -> Patch {
    let mut a = Vec::new();
    for (index, cv) in current.iter().enumerate() {
        match base.get(index) {
            Some(bv) => {
                if let Some(p) = diff(bv, cv) {
                    a.push((index, p));
                }
            }
            None => a.push((index, Patch::Replace { r: cv.clone() })),
        }
    }
    // Element-wise pays only when it saves something: if most elements are replaced
    // outright anyway, send the whole array.
    let replaced = a.iter().filter(|(_, p)| matches!(p, Patch::Replace { .. })).count();
    if replaced * 2 > current.len() {
        return Patch::Replace { r: whole.clone() };
    }
    Patch::Array { a, n: current.len() }
}

/// `base` with `patch` applied.
///
/// # Errors
/// [`DeltaError`] when the patch does not fit `base`.
pub fn apply(base: &Value, patch: &Patch) -> Result<Value, DeltaError> {
    let mut value = base.clone();
    apply_in_place(&mut value, patch)?;
    Ok(value)
}

/// Applies `patch` to `target` in place. On error `target` may be partly patched.
///
/// # Errors
/// [`DeltaError`] when the patch does not fit `target`.
pub fn apply_in_place(target: &mut Value, patch: &Patch) -> Result<(), DeltaError> {
    match patch {
        Patch::Replace { r } => *target = r.clone(),
        Patch::Object { o, d } => {
            let Value::Object(map) = target else {
                return Err(DeltaError::NotAnObject);
            };
            for key in d {
                map.remove(key);
            }
            for (key, p) in o {
                match (map.get_mut(key), p) {
                    (Some(value), _) => apply_in_place(value, p)?,
                    (None, Patch::Replace { r }) => {
                        map.insert(key.clone(), r.clone());
                    }
                    (None, _) => return Err(DeltaError::MissingKey(key.clone())),
                }
            }
        }
        Patch::Array { a, n } => {
            let Value::Array(items) = target else {
                return Err(DeltaError::NotAnArray);
            };
            items.truncate(*n);
            for (index, p) in a {
                let len = items.len();
                match (items.get_mut(*index), p) {
                    (Some(value), _) => apply_in_place(value, p)?,
                    (None, Patch::Replace { r }) if *index == len => items.push(r.clone()),
                    _ => return Err(DeltaError::IndexOutOfRange(*index)),
                }
            }
            if items.len() != *n {
                return Err(DeltaError::IndexOutOfRange(*n));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
