//! Typed errors of the shard crate (the codec's own are `codec::CodecError`).

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
