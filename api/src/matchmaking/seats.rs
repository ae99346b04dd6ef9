//! Backfill: the seats of the running matches this process made for games that opt in
//! (`Matchmaking::backfill`), offered to the queue as open slots (`Queue::set_slot`) and
//! kept current from the match table every pass interval; withdrawn when a match is full,
//! ends, or the process stops.
//!
//! A seat assigned to a player stays held for [`super::DEFAULT_SEAT_HOLD`] whether or not
//! the player connected (the table counts subscribers, not who they are): during the
//! hold, taken = subscribers + held players (it may undercount free seats for a moment,
//! never overcount them); after it, taken = subscribers. So a match is never offered
//! for the players it is waiting for, and a seat its player never took is offered again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pylon_sync::matchmaker::{Assignment, OpenSlot, Queue, QueueKey, Rules};

use crate::Matches;

/// One match whose seats are offered.
#[derive(Debug)]
struct Seat {
    key: QueueKey,
    /// The matchmaking match size (capped by the match's capacity when offered).
    size: u32,
    average_skill: Option<f64>,
    /// Players assigned (at creation or by backfill) and when.
    holds: Vec<(Instant, u32)>,
    /// Free seats offered to the queue now (`u32::MAX`: unknown, offer again).
    offered: u32,
}

/// What one sync must tell the queue.
enum Change {
    Offer(OpenSlot),
    Withdraw(String),
}

/// The backfilled matches of this process.
#[derive(Debug)]
pub struct Seats {
    rules: Rules,
    hold: Duration,
    matches: Mutex<HashMap<String, Seat>>,
}

impl Seats {
    /// Seats of the games in `rules` that backfill; assigned seats held for `hold`.
    #[must_use]
    pub fn new(rules: Rules, hold: Duration) -> Self {
        Self { rules, hold, matches: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Seat>> {
        // Every critical section is one map update; a poisoned map is still consistent.
        self.matches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A match `id` was made for `assignment`: tracked when its game backfills.
    pub fn made(&self, id: &str, assignment: &Assignment) {
        let key = QueueKey {
            region: assignment.region.clone(),
            game: assignment.game.clone(),
            mode: assignment.mode.clone(),
        };
        let Some(rules) = self.rules.for_queue(&key).filter(|r| r.backfill) else { return };
        let held = u32::try_from(assignment.players.len()).unwrap_or(u32::MAX);
        let seat = Seat {
            key,
            size: rules.max_players,
            average_skill: assignment.average_skill,
            holds: vec![(Instant::now(), held)],
            offered: 0,
        };
        self.lock().insert(id.to_owned(), seat);
    }

    /// A backfill into one of this process's matches was committed (here or by another
    /// process's matcher): its players' seats are held.
    pub fn backfilled(&self, assignment: &Assignment) {
        if let Some(seat) = self.lock().get_mut(&assignment.match_key) {
            let held = u32::try_from(assignment.players.len()).unwrap_or(u32::MAX);
            seat.holds.push((Instant::now(), held));
            seat.offered = seat.offered.saturating_sub(held);
        }
    }

    /// Stops tracking match `id` (its creation was abandoned).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Matches tracked and free seats offered now.
    #[must_use]
    pub fn offered(&self) -> (u64, u64) {
        let map = self.lock();
        let open = map.values().filter(|s| s.offered > 0 && s.offered != u32::MAX);
        open.fold((0, 0), |(n, seats), s| (n + 1, seats + u64::from(s.offered)))
    }

    /// Brings the queue's open slots in line with the match table: offers what changed,
    /// withdraws ended and full matches. Never holds the lock across the queue's I/O.
    pub async fn sync(&self, matches: &Matches, queue: &Queue) {
        for change in self.changes(matches, Instant::now()) {
            let (id, result) = match change {
                Change::Offer(slot) => (slot.match_id.clone(), queue.set_slot(slot).await),
                Change::Withdraw(id) => {
                    let result = queue.remove_slot(&id).await;
                    (id, result)
                }
            };
            if let Err(e) = result {
                tracing::warn!(match_id = %id, error = %e, "matchmaker: backfill slot not updated");
                if let Some(seat) = self.lock().get_mut(&id) {
                    seat.offered = u32::MAX;
                }
            }
        }
    }

    fn changes(&self, matches: &Matches, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut map = self.lock();
        map.retain(|id, seat| {
            let Some(entry) = matches.get(id).filter(|e| e.handle.status().is_running()) else {
                if seat.offered > 0 {
                    changes.push(Change::Withdraw(id.clone()));
                }
                return false;
            };
            seat.holds.retain(|(at, _)| now.saturating_duration_since(*at) < self.hold);
            let held: u32 = seat.holds.iter().map(|(_, n)| *n).sum();
            let taken = entry.handle.status().subscribers().saturating_add(held);
            let free = seat.size.min(entry.capacity).saturating_sub(taken);
            if free != seat.offered {
                seat.offered = free;
                changes.push(if free == 0 {
                    Change::Withdraw(id.clone())
                } else {
                    Change::Offer(OpenSlot {
                        match_id: id.clone(),
                        region: seat.key.region.clone(),
                        game: seat.key.game.clone(),
                        mode: seat.key.mode.clone(),
                        free,
                        average_skill: seat.average_skill,
                    })
                });
            }
            true
        });
        changes
    }

    /// Withdraws every slot this process offered (shutdown: its matches stop).
    pub async fn withdraw_all(&self, queue: &Queue) {
        let ids: Vec<String> = self.lock().drain().map(|(id, _)| id).collect();
        for id in ids {
            if let Err(e) = queue.remove_slot(&id).await {
                tracing::warn!(match_id = %id, error = %e, "matchmaker: backfill slot not withdrawn");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use pylon_shard::{GameRegistry, StopReason};
    use pylon_sync::matchmaker::TicketId;
    use pylon_tick::{MonotonicClock, TickConfig, TickPool};

    use super::*;

    fn arena_assignment(players: usize, backfill: bool) -> Assignment {
        Assignment {
            match_key: String::new(),
            region: "eu".into(),
            game: "arena".into(),
            mode: None,
            tickets: (0..players).map(|i| TicketId::from(format!("eu-t{i}"))).collect(),
            players: (0..players).map(|i| format!("u{i}")).collect(),
            backfill,
            average_skill: Some(1_000.0),
            matched_at: 0,
            created_at: vec![0; players],
            party_sizes: vec![1; players],
            params: None,
        }
    }

    fn offers(changes: &[Change]) -> Vec<(String, u32)> {
        changes
            .iter()
            .map(|c| match c {
                Change::Offer(slot) => (slot.match_id.clone(), slot.free),
                Change::Withdraw(id) => (id.clone(), 0),
            })
            .collect()
    }

    /// A new arena match is offered nothing while its 8 players' seats are held; once
    /// the hold passes with nobody connected, all 8 seats are offered; a backfill of 2
    /// holds theirs (no new offer); a stopped match is withdrawn and forgotten.
    #[test]
    fn seats_follow_holds_and_the_match_table() {
        let games = GameRegistry::builtin();
        let rules = crate::matchmaking::rules_from(&games, &[], Duration::from_secs(120)).unwrap();
        let config = TickConfig { threads: 1, ..TickConfig::default() };
        let pool = TickPool::start(&config, Arc::new(MonotonicClock::new())).unwrap();
        let matches = Matches::new(pool, games, "eu".into());
        let entry = matches.create("arena", serde_json::Value::Null, None, None, false).unwrap();
        let id = entry.id.to_string();
        let seats = Seats::new(rules, Duration::from_secs(20));
        let t0 = Instant::now();
        seats.made(&id, &arena_assignment(8, false));
        assert!(seats.changes(&matches, t0 + Duration::from_secs(1)).is_empty());
        let later = t0 + Duration::from_secs(21);
        assert_eq!(offers(&seats.changes(&matches, later)), [(id.clone(), 8)]);
        assert_eq!(seats.offered(), (1, 8));
        seats.backfilled(&Assignment { match_key: id.clone(), ..arena_assignment(2, true) });
        assert_eq!(seats.offered(), (1, 6));
        assert!(seats.changes(&matches, Instant::now() + Duration::from_secs(1)).is_empty());
        entry.handle.stop(StopReason::Stopped).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while entry.handle.status().is_running() {
            assert!(Instant::now() < deadline, "the match did not stop");
            std::thread::yield_now();
        }
        assert_eq!(offers(&seats.changes(&matches, Instant::now())), [(id, 0)]);
        assert_eq!(seats.offered(), (0, 0));
        matches.pool().shutdown(Duration::from_secs(1));
    }
}
