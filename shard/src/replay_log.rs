//! Replay logs: a match's seed, parameters and every membership change and applied input,
//! in order, with a marker per tick. The runtime records them; [`crate::replay`] plays
//! them back.

use serde::{Deserialize, Serialize};

/// A recorded match. Serializes to JSON for download and storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayLog {
    /// The game type.
    pub game: String,
    /// The match seed.
    pub seed: u64,
    /// The match parameters, as the game's `Params` serialized them.
    pub params: serde_json::Value,
    /// Everything that happened, in order.
    pub events: Vec<ReplayEvent>,
}

/// One recorded event. Joins, leaves and resumes happen between ticks; `Tick` starts a
/// step, and the `Input` events right after it are the inputs applied at its start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum ReplayEvent {
    /// A subscriber joined and got `key`.
    Join {
        /// Its key.
        key: u32,
        /// Its sid.
        sid: String,
        /// Whether it was an operator.
        is_admin: bool,
    },
    /// The subscriber `old` reconnected and got `key`.
    Resume {
        /// The key it had.
        old: u32,
        /// Its new key.
        key: u32,
    },
    /// A subscriber left.
    Leave {
        /// Its key.
        key: u32,
    },
    /// A step began.
    Tick {
        /// The tick this step produced (1 for the first step).
        tick: u64,
    },
    /// An input applied at the start of the current step.
    Input {
        /// The tick it was applied on.
        tick: u64,
        /// The sender's key.
        key: u32,
        /// The sender's sequence number.
        client_seq: Option<u64>,
        /// The input, as JSON.
        input: serde_json::Value,
    },
}

impl ReplayLog {
    /// An empty log.
    #[must_use]
    pub fn new(game: &str, seed: u64, params: serde_json::Value) -> Self {
        Self { game: game.to_owned(), seed, params, events: Vec::new() }
    }

    /// How many ticks the log covers.
    #[must_use]
    pub fn ticks(&self) -> u64 {
        self.events.iter().filter(|e| matches!(e, ReplayEvent::Tick { .. })).count() as u64
    }
}
