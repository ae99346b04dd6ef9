//! TEMPORARY STUB (being written by a teammate).
use serde_json::Value;
/// stub
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Patch {
    /// stub
    R(Value),
}
/// stub
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeltaError {
    /// stub
    #[error("x")]
    X,
}
/// stub
pub fn diff(base: &Value, current: &Value) -> Option<Patch> {
    (base != current).then(|| Patch::R(current.clone()))
}
