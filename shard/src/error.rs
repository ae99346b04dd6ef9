//! Typed errors of the shard crate.

use thiserror::Error;

/// Errors raised while building a shard or decoding its inputs.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ShardError {
    /// No game of that name is registered.
    #[error("unknown game type `{0}`")]
    UnknownGame(String),
    /// The match parameters do not deserialize into the game's `Params`.
    #[error("invalid parameters for game `{game}`: {source}")]
    BadParams {
        /// The game type.
        game: &'static str,
        /// Why the parameters were refused.
        source: serde_json::Error,
    },
    /// A replay log names another game than the one asked to replay it.
    #[error("replay log is for game `{found}`, not `{expected}`")]
    ReplayGameMismatch {
        /// The game the caller replays with.
        expected: &'static str,
        /// The game written in the log.
        found: String,
    },
    /// A saved match could not be restored.
    #[error("cannot restore a saved `{game}` match: {reason}")]
    Restore {
        /// The game type.
        game: &'static str,
        /// Why.
        reason: String,
    },
    /// An event in a replay log could not be applied.
    #[error("replay event {index} is invalid: {reason}")]
    BadReplayEvent {
        /// Position of the event in the log.
        index: usize,
        /// What was wrong with it.
        reason: String,
    },
}

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
    Delta(#[from] crate::codec::delta::DeltaError),
}
