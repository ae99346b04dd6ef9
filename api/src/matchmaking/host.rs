//! [`Host`]: where the matcher's assignments become matches, before they are committed
//! (`pylon_sync::matchmaker::MatchHost`). A new match is created in this process's match
//! table, so its id carries this process's prefix (`eu_2-…`) and routing reaches it; that
//! id replaces the planned key, so every status and push names the real match. A refused
//! commit stops the match again. A backfill goes ahead while its match still runs (this
//! process's own) or is another process's (whose slot sync keeps its offer current).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pylon_shard::StopReason;
use pylon_sync::matchmaker::{Assignment, MatchHost};

use super::metrics::MatchmakerMetrics;
use super::seats::Seats;
use crate::Matches;
use crate::matches::{CreateError, Quota};

/// At most one warning about matches that could not be made per this interval (a full
/// server would otherwise log every pass).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Makes the matcher's matches in this process.
#[derive(Debug)]
pub struct Host {
    matches: Arc<Matches>,
    quota: Quota,
    seats: Arc<Seats>,
    metrics: Arc<MatchmakerMetrics>,
    warned: Mutex<Option<Instant>>,
}

impl Host {
    /// A host creating matches in `matches`, at most `max_matches` running in all.
    #[must_use]
    pub fn new(
        matches: Arc<Matches>,
        max_matches: usize,
        seats: Arc<Seats>,
        metrics: Arc<MatchmakerMetrics>,
    ) -> Self {
        let quota = Quota { owner: None, per_owner: usize::MAX, total: max_matches };
        Self { matches, quota, seats, metrics, warned: Mutex::new(None) }
    }

    /// Whether a backfill into `match_id` may go ahead.
    fn still_open(&self, match_id: &str) -> bool {
        match self.matches.get(match_id) {
            Some(entry) => entry.handle.status().is_running(),
            None => match_id.split_once('-').is_some_and(|(p, _)| p != self.matches.prefix()),
        }
    }

    fn failed(&self, a: &Assignment, e: &CreateError) {
        self.metrics.host_failures.fetch_add(1, Ordering::Relaxed);
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *warned = Some(Instant::now());
            tracing::warn!(game = %a.game, region = %a.region, error = %e, "matchmaker: a match could not be made; its tickets stay queued");
        }
    }
}

impl MatchHost for Host {
    fn host(&self, a: &Assignment) -> Option<String> {
        if a.backfill {
            return self.still_open(&a.match_key).then(|| a.match_key.clone());
        }
        let params = a.params.clone().unwrap_or(serde_json::Value::Null);
        match self.matches.create_within(&self.quota, &a.game, params, None, None, false) {
            Ok(entry) => {
                self.metrics.matches.fetch_add(1, Ordering::Relaxed);
                self.seats.made(&entry.id, a);
                Some(entry.id.to_string())
            }
            Err(e) => {
                self.failed(a, &e);
                None
            }
        }
    }

    fn abandon(&self, a: &Assignment) {
        if a.backfill {
            return;
        }
        self.seats.forget(&a.match_key);
        if let Some(entry) = self.matches.get(&a.match_key) {
            let _ = entry.handle.stop(StopReason::Stopped);
            tracing::debug!(shard = %a.match_key, "matchmaker: commit refused, match stopped");
        }
    }
}
