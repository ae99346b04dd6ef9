//! The persister: one thread that takes the tick threads' [`Persist`] records off their
//! bounded channel and writes them to storage. Saved states of running matches replace
//! the previous one; a finished match writes its `MatchResult` row (when the manifest
//! declares that entity: only the fields it declares are filled), stores its replay log
//! and forgets its saved state; a stopped match forgets its saved state.
//!
//! It runs until every tick thread is gone (the channel closes), so at shutdown it writes
//! the states the tick threads saved while stopping their matches.
//!
//! At start a process resumes only its own saved matches ([`restorable`]): with a shared
//! Postgres, the saved matches of every region and process are in one table.

use crossbeam_channel::Receiver;
use pylon_storage::{ChangeKind, Row, WriteOp};
use pylon_tick::Persist;
use serde_json::{Value, json};

use crate::AppState;

/// Which of the saved matches (`(id, state)` pairs, as the store lists them) this
/// process resumes: those whose id carries its prefix (`Regions::owns`: `eu-…` for a
/// process of region `eu`, `eu_2-…` for its instance 2). The others belong to other
/// processes sharing the database; their count is logged.
#[must_use]
pub fn restorable(regions: &crate::Regions, saved: Vec<(String, String)>) -> Vec<(String, String)> {
    let total = saved.len();
    let mine: Vec<_> = saved.into_iter().filter(|(id, _)| regions.owns(id)).collect();
    if mine.len() < total {
        let others = total - mine.len();
        tracing::info!(others, prefix = %regions.prefix(), "saved matches of other processes left alone");
    }
    mine
}

/// Starts the persister thread.
///
/// # Errors
/// The OS refused a thread.
pub fn spawn(
    rx: Receiver<Persist>,
    state: AppState,
    rt: tokio::runtime::Handle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("pylon-persister".into()).spawn(move || {
        while let Ok(record) = rx.recv() {
            rt.block_on(handle(&state, record));
        }
    })
}

async fn handle(state: &AppState, record: Persist) {
    let Some(ents) = state.entities.as_ref() else { return };
    match record {
        Persist::Saved { shard, saved } => {
            let Some(id) = state.matches.id_of(shard) else { return };
            let game = saved.game.clone();
            let tick = saved.tick;
            let Ok(text) = serde_json::to_string(&saved) else { return };
            if let Err(e) = ents.store().save_match(&id, &game, tick, text).await {
                tracing::error!(shard = %id, error = %e, "saving match state failed");
            }
        }
        Persist::Dropped { shard } => {
            if let Some(id) = state.matches.id_of(shard)
                && let Err(e) = ents.store().delete_match(&id).await
            {
                tracing::error!(shard = %id, error = %e, "forgetting match state failed");
            }
        }
        Persist::Finished { shard, game, tick, outcome, replay } => {
            let Some(id) = state.matches.id_of(shard) else { return };
            let hz = state.matches.get(&id).map_or(0, |m| m.handle.status().tick_rate_hz());
            write_result(state, &id, game, tick, hz, outcome.as_ref()).await;
            if let Some(log) = replay
                && let Ok(text) = serde_json::to_string(&log)
                && let Err(e) = ents.store().save_replay(&id, game, text).await
            {
                tracing::error!(shard = %id, error = %e, "storing the replay failed");
            }
            if let Err(e) = ents.store().delete_match(&id).await {
                tracing::error!(shard = %id, error = %e, "forgetting match state failed");
            }
        }
    }
}

/// Writes the `MatchResult` row of a finished match, if the manifest has that entity.
async fn write_result(
    state: &AppState,
    id: &str,
    game: &str,
    tick: u64,
    hz: u32,
    outcome: Option<&Value>,
) {
    let Some(ents) = state.entities.as_ref() else { return };
    let Some(entity) = ents.store().manifest().entity("MatchResult") else { return };
    let duration = if hz == 0 { 0.0 } else { tick as f64 / f64::from(hz) };
    let winner = outcome.and_then(|o| o.get("winner")).cloned().unwrap_or(Value::Null);
    let candidates = json!({
        "matchId": id,
        "game": game,
        "winner": winner,
        "scores": outcome.map_or_else(|| "null".to_owned(), Value::to_string),
        "outcome": outcome.map_or_else(|| "null".to_owned(), Value::to_string),
        "endedAt": pylon_storage::time::now_rfc3339(),
        "durationSecs": duration,
        "ticks": tick,
    });
    let data: Row = candidates
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(k, _)| entity.field(k).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let op = WriteOp {
        kind: ChangeKind::Insert,
        entity: "MatchResult".into(),
        id: Some(id.to_owned()),
        data,
        guard: None,
    };
    match ents.store().write(vec![op]).await {
        Ok(result) => ents.publish(result.changes),
        Err(e) => tracing::error!(shard = %id, error = %e, "writing the MatchResult row failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process resumes only the saved matches with its own prefix: its region's bare
    /// prefix is another process's when it runs as an instance.
    #[test]
    fn restores_only_its_own_prefix() {
        let saved = |ids: &[&str]| -> Vec<(String, String)> {
            ids.iter().map(|id| ((*id).to_owned(), String::new())).collect()
        };
        let all = saved(&["eu-a", "eu_1-b", "eu_2-c", "us-d", "eux-e", "odd"]);
        let ids = |regions: &crate::Regions| -> Vec<String> {
            restorable(regions, all.clone()).into_iter().map(|(id, _)| id).collect()
        };
        let eu = crate::Regions { local: "eu".into(), ..crate::Regions::default() };
        assert_eq!(ids(&eu), ["eu-a"]);
        let eu2 = crate::Regions { instance: Some("2".into()), ..eu };
        assert_eq!(ids(&eu2), ["eu_2-c"]);
    }
}
