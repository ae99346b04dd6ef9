//! What a tick thread hands to persistence: a running match's saved state every N ticks
//! (and at shutdown), a finished match's outcome and replay log, or word that a match
//! ended without a result (its saved state can go). One closed enum over one bounded
//! channel: when the channel is full the record is skipped and counted, never waited for.

use pylon_shard::SavedMatch;
use pylon_shard::replay::ReplayLog;

use crate::command::ShardId;

/// One persistence record.
#[derive(Debug)]
pub enum Persist {
    /// A running match's state (`Game::save`), to resume it after a restart.
    Saved {
        /// The shard.
        shard: ShardId,
        /// Its state.
        saved: Box<SavedMatch>,
    },
    /// The match finished normally.
    Finished {
        /// The shard.
        shard: ShardId,
        /// The game type.
        game: &'static str,
        /// The final tick.
        tick: u64,
        /// The outcome (`Game::outcome`) as JSON.
        outcome: Option<serde_json::Value>,
        /// The replay log, when the match recorded one.
        replay: Option<Box<ReplayLog>>,
    },
    /// The match was stopped (operator, idle, panic) and will not resume.
    Dropped {
        /// The shard.
        shard: ShardId,
    },
}

/// Where a tick thread sends [`Persist`] records, and how often it saves.
#[derive(Debug, Clone)]
pub struct PersistSink {
    /// The bounded channel to the persister.
    pub tx: crossbeam_channel::Sender<Persist>,
    /// Save every this many ticks (0: only at shutdown).
    pub every_ticks: u64,
}
