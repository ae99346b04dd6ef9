//! [`CodecError`]: why a frame or a value did not encode or decode.

use thiserror::Error;

/// Errors of the wire codec.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A client frame is not valid JSON or not the `{"input":…, "client_seq":…}` shape.
    #[error("malformed json frame: {0}")]
    Json(#[from] serde_json::Error),
    /// A client frame is not valid MessagePack or not the `[client_seq, base, input]` shape.
    #[error("malformed msgpack frame: {0}")]
    MsgPack(String),
    /// A client frame is well-formed but not of the protocol's shape (e.g. not an object).
    #[error("malformed frame: {0}")]
    Shape(&'static str),
    /// A value could not be encoded (for example a map with non-string keys).
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// A delta patch could not be built or applied.
    #[error("delta: {0}")]
    Delta(#[from] super::delta::DeltaError),
}
