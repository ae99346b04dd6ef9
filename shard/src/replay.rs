//! Replay: playing a recorded log ([`crate::replay_log`]) through a fresh shard of the same
//! game reproduces the match bit for bit, which [`replay`] checks tick by tick with state
//! hashes.

use std::sync::Arc;

use crate::error::ShardError;
use crate::game::{Game, SubscriberKey};
use crate::runtime::{DynShard, Shard};

pub use crate::replay_log::{ReplayEvent, ReplayLog};

/// Replays `log` with game `G`, calling `on_tick(tick, state_hash)` after every step, and
/// returns the final state hash.
///
/// # Errors
/// [`ShardError`] when the log is for another game or an event cannot be applied.
pub fn replay<G: Game>(
    log: &ReplayLog,
    on_tick: &mut dyn FnMut(u64, u64),
) -> Result<u64, ShardError> {
    if log.game != G::NAME {
        return Err(ShardError::ReplayGameMismatch { expected: G::NAME, found: log.game.clone() });
    }
    let params: G::Params = serde_json::from_value(log.params.clone())
        .map_err(|source| ShardError::BadParams { game: G::NAME, source })?;
    let mut shard = Shard::<G>::with_params(&params, log.seed, None);
    let bad = |index: usize, reason: &str| ShardError::BadReplayEvent {
        index,
        reason: reason.to_owned(),
    };
    let mut hash = shard.state_hash();
    for (index, event) in log.events.iter().enumerate() {
        match event {
            ReplayEvent::Join { key, sid, is_admin } => {
                let joined = shard
                    .admit(Arc::from(sid.as_str()), *is_admin)
                    .map_err(|_| bad(index, "join refused"))?;
                if joined.key.0 != *key {
                    return Err(bad(index, "join produced a different key"));
                }
            }
            ReplayEvent::Resume { old, key } => {
                let sid = shard
                    .sid_of(SubscriberKey(*old))
                    .ok_or_else(|| bad(index, "resume of unknown key"))?;
                let joined = shard.admit(sid, false).map_err(|_| bad(index, "resume refused"))?;
                if joined.key.0 != *key {
                    return Err(bad(index, "resume produced a different key"));
                }
            }
            ReplayEvent::Leave { key } => {
                shard.leave(SubscriberKey(*key));
            }
            ReplayEvent::Tick { tick } => {
                if *tick != shard.tick() + 1 {
                    return Err(bad(index, "tick out of sequence"));
                }
                queue_inputs::<G>(&mut shard, &log.events[index + 1..], index)?;
                shard.run_tick(&mut Vec::new());
                let mut drained = Vec::new();
                shard.drain_outgoing(&mut drained);
                hash = shard.state_hash();
                on_tick(shard.tick(), hash);
            }
            ReplayEvent::Input { .. } => {}
        }
    }
    Ok(hash)
}

fn queue_inputs<G: Game>(
    shard: &mut Shard<G>,
    after: &[ReplayEvent],
    tick_index: usize,
) -> Result<(), ShardError> {
    for (offset, event) in after.iter().enumerate() {
        let ReplayEvent::Input { key, client_seq, input, .. } = event else {
            break;
        };
        let index = tick_index + 1 + offset;
        let typed: G::Input = serde_json::from_value(input.clone())
            .map_err(|e| ShardError::BadReplayEvent { index, reason: e.to_string() })?;
        shard.force_input(SubscriberKey(*key), *client_seq, typed).map_err(|_| {
            ShardError::BadReplayEvent { index, reason: "input for unknown key".to_owned() }
        })?;
    }
    Ok(())
}
