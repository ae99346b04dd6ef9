//! The in-memory queue: one process owns every queue (no cluster bus). All state sits in
//! one struct behind a mutex that is held only for short bookkeeping; a pass copies the
//! queued tickets out, matches without the lock, and commits each assignment only if
//! all its tickets are still queued (a cancel may have come in between).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::clock::{Clock, secs_between};
use super::error::MatchmakerError;
use super::plan::Plan;
use super::queue::{
    AssignmentCursor, MatchHost, PassReport, QueueInput, QueueOptions, hosted, plan_all,
};
use super::rules::Rules;
use super::ticket::{
    Assignment, NewTicket, OpenSlot, QueueKey, Ticket, TicketId, TicketState, TicketStatus,
    check_name,
};

/// A ticket and where it is in its life.
#[derive(Debug)]
struct Entry {
    ticket: Arc<Ticket>,
    status: Closed,
}

/// `None` while queued.
type Closed = Option<TicketStatus>;

#[derive(Debug, Default)]
struct State {
    tickets: HashMap<TicketId, Entry>,
    queues: BTreeMap<QueueKey, BTreeSet<(u64, TicketId)>>,
    players: HashMap<String, TicketId>,
    slots: BTreeMap<String, OpenSlot>,
    log: VecDeque<(u64, Arc<Assignment>)>,
    log_next: u64,
    closed: VecDeque<(u64, TicketId)>,
}

/// Matchmaking queues held in this process's memory.
#[derive(Debug)]
pub struct MemoryQueue {
    rules: Arc<Rules>,
    clock: Arc<dyn Clock>,
    options: QueueOptions,
    state: Mutex<State>,
}

impl MemoryQueue {
    /// Empty queues for the games in `rules`, timed by `clock`.
    #[must_use]
    pub fn new(rules: Arc<Rules>, clock: Arc<dyn Clock>, options: QueueOptions) -> Self {
        Self { rules, clock, options, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a ticket. See [`super::Queue::submit`].
    ///
    /// # Errors
    /// Validation errors and [`MatchmakerError::AlreadyQueued`].
    pub fn submit(&self, new: NewTicket) -> Result<Arc<Ticket>, MatchmakerError> {
        let id = TicketId::random_in(&new.region)?;
        let ticket = Arc::new(new.into_ticket(&self.rules, id, self.clock.now_ms())?);
        let mut state = self.state();
        for user in &ticket.party {
            if let Some(open) = state.players.get(user) {
                return Err(MatchmakerError::AlreadyQueued {
                    user: user.clone(),
                    ticket: open.clone(),
                });
            }
        }
        for user in &ticket.party {
            state.players.insert(user.clone(), ticket.id.clone());
        }
        let key = ticket.queue_key();
        state.queues.entry(key).or_default().insert((ticket.created_at, ticket.id.clone()));
        state.tickets.insert(ticket.id.clone(), Entry { ticket: ticket.clone(), status: None });
        Ok(ticket)
    }

    /// A ticket and its status. See [`super::Queue::status`].
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`].
    pub fn status(&self, id: &TicketId) -> Result<TicketState, MatchmakerError> {
        let now = self.clock.now_ms();
        let state = self.state();
        let entry = state.tickets.get(id).ok_or_else(|| MatchmakerError::NotFound(id.clone()))?;
        let t = &entry.ticket;
        let status = match &entry.status {
            Some(closed) => closed.clone(),
            None => {
                let ahead = state
                    .queues
                    .get(&t.queue_key())
                    .map_or(0, |q| q.range(..(t.created_at, t.id.clone())).count());
                TicketStatus::Queued {
                    position: u64::try_from(ahead).unwrap_or(u64::MAX) + 1,
                    waiting_secs: secs_between(t.created_at, now),
                }
            }
        };
        Ok(TicketState { ticket: t.clone(), status })
    }

    /// Cancels a queued ticket. See [`super::Queue::cancel`].
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`], or the closed status as an error.
    pub fn cancel(&self, id: &TicketId) -> Result<(), MatchmakerError> {
        let now = self.clock.now_ms();
        let mut state = self.state();
        let entry = state.tickets.get(id).ok_or_else(|| MatchmakerError::NotFound(id.clone()))?;
        match &entry.status {
            None => {}
            Some(TicketStatus::Matched(_)) => {
                return Err(MatchmakerError::AlreadyMatched(id.clone()));
            }
            Some(TicketStatus::Expired) => return Err(MatchmakerError::Expired(id.clone())),
            Some(_) => return Err(MatchmakerError::Cancelled(id.clone())),
        }
        state.close(id, TicketStatus::Cancelled, now);
        Ok(())
    }

    /// Offers (or updates) a running match's free slots. See [`super::Queue::set_slot`].
    ///
    /// # Errors
    /// Unknown game or mode, a bad name, [`MatchmakerError::BackfillDisabled`].
    pub fn set_slot(&self, slot: OpenSlot) -> Result<(), MatchmakerError> {
        let slot = resolve_slot(&self.rules, slot)?;
        let mut state = self.state();
        if slot.free == 0 {
            state.slots.remove(&slot.match_id);
        } else {
            state.slots.insert(slot.match_id.clone(), slot);
        }
        Ok(())
    }

    /// Withdraws a running match's open slots (no-op when none are offered).
    pub fn remove_slot(&self, match_id: &str) {
        self.state().slots.remove(match_id);
    }

    /// One matching pass over every queue. See [`super::Queue::run_pass_with`]: the
    /// assignments whose tickets are still queued are hosted outside the lock, then
    /// committed under it; a refused commit is abandoned.
    pub async fn run_pass_with(&self, host: &dyn MatchHost) -> PassReport {
        let now = self.clock.now_ms();
        let plans = plan_all(self.rules.clone(), self.snapshot(), now).await;
        let mut report = PassReport::default();
        for (key, Plan { expired, assignments }) in plans {
            let open: Vec<Assignment> = {
                let state = self.state();
                assignments
                    .into_iter()
                    .filter(|a| a.tickets.iter().all(|id| state.is_queued(id)))
                    .collect()
            };
            let accepted = open.into_iter().filter_map(|a| hosted(host, a)).collect();
            let mut state = self.state();
            let refused = state.commit(Plan { expired, assignments: accepted }, now, &mut report);
            report.queued.insert(key.clone(), state.queues.get(&key).map_or(0, BTreeSet::len));
            drop(state);
            for a in &refused {
                host.abandon(a);
            }
        }
        let mut state = self.state();
        state.queues.retain(|_, q| !q.is_empty());
        state.prune(now.saturating_sub(millis(self.options.closed_retention)));
        state.trim_log(self.options.log_capacity);
        report
    }

    /// The rules tickets are validated and matched with.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn snapshot(&self) -> Vec<QueueInput> {
        let state = self.state();
        let mut out = Vec::with_capacity(state.queues.len());
        for (key, queue) in &state.queues {
            let tickets = queue
                .iter()
                .filter_map(|(_, id)| state.tickets.get(id).map(|e| e.ticket.clone()))
                .collect();
            let slots = state.slots.values().filter(|s| slot_key(s) == *key).cloned().collect();
            out.push(QueueInput { key: key.clone(), tickets, slots });
        }
        out
    }

    /// Assignments committed after `cursor`, at most `max`; advances the cursor.
    /// See [`super::Queue::poll_assignments`].
    pub fn poll_assignments(
        &self,
        cursor: &mut AssignmentCursor,
        max: usize,
    ) -> Vec<Arc<Assignment>> {
        let state = self.state();
        let from: u64 = cursor.0.parse().unwrap_or(0);
        let out: Vec<Arc<Assignment>> = state
            .log
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .take(max)
            .map(|(_, a)| a.clone())
            .collect();
        let next = state.log.iter().filter(|(seq, _)| *seq >= from).nth(out.len()).map(|(s, _)| *s);
        cursor.0 = next.unwrap_or(state.log_next.max(from)).to_string();
        out
    }

    /// A cursor after every assignment committed so far.
    #[must_use]
    pub fn assignment_cursor(&self) -> AssignmentCursor {
        AssignmentCursor(self.state().log_next.to_string())
    }
}

impl State {
    fn close(&mut self, id: &TicketId, status: TicketStatus, now: u64) {
        let Some(entry) = self.tickets.get_mut(id) else { return };
        entry.status = Some(status);
        let t = entry.ticket.clone();
        if let Some(queue) = self.queues.get_mut(&t.queue_key()) {
            queue.remove(&(t.created_at, t.id.clone()));
        }
        for user in &t.party {
            if self.players.get(user) == Some(id) {
                self.players.remove(user);
            }
        }
        self.closed.push_back((now, id.clone()));
    }

    fn is_queued(&self, id: &TicketId) -> bool {
        self.tickets.get(id).is_some_and(|e| e.status.is_none())
    }

    /// Commits a plan; returns the assignments it refused (a ticket closed since the
    /// snapshot, a backfilled match's slots shrank).
    fn commit(&mut self, plan: Plan, now: u64, report: &mut PassReport) -> Vec<Assignment> {
        for id in plan.expired {
            if self.is_queued(&id) {
                self.close(&id, TicketStatus::Expired, now);
                report.expired.push(id);
            }
        }
        let mut refused = Vec::new();
        for assignment in plan.assignments {
            let open = assignment.tickets.iter().all(|id| self.is_queued(id));
            if !open || (assignment.backfill && !self.take_slot(&assignment)) {
                refused.push(assignment);
                continue;
            }
            let assignment = Arc::new(assignment);
            for id in &assignment.tickets {
                self.close(id, TicketStatus::Matched(assignment.clone()), now);
            }
            self.log.push_back((self.log_next, assignment.clone()));
            self.log_next += 1;
            report.assignments.push(assignment);
        }
        refused
    }

    /// Uses a backfilled match's slots; false when they shrank since the snapshot.
    fn take_slot(&mut self, assignment: &Assignment) -> bool {
        let taken = u32::try_from(assignment.players.len()).unwrap_or(u32::MAX);
        let Some(slot) = self.slots.get_mut(&assignment.match_key) else { return false };
        if slot.free < taken {
            return false;
        }
        slot.free -= taken;
        if slot.free == 0 {
            self.slots.remove(&assignment.match_key);
        }
        true
    }

    fn prune(&mut self, before: u64) {
        while self.closed.front().is_some_and(|(at, _)| *at < before) {
            if let Some((_, id)) = self.closed.pop_front() {
                self.tickets.remove(&id);
            }
        }
    }

    fn trim_log(&mut self, capacity: usize) {
        while self.log.len() > capacity {
            self.log.pop_front();
        }
    }
}

/// The queue of an open slot (its mode as given; [`resolve_slot`] fills the default).
pub(super) fn slot_key(slot: &OpenSlot) -> QueueKey {
    QueueKey { region: slot.region.clone(), game: slot.game.clone(), mode: slot.mode.clone() }
}

/// Validates an open slot against `rules` and resolves its default mode.
pub(super) fn resolve_slot(rules: &Rules, mut slot: OpenSlot) -> Result<OpenSlot, MatchmakerError> {
    check_name("region", &slot.region)?;
    check_name("match", &slot.match_id)?;
    let (mode, game_rules) = rules.resolve(&slot.game, slot.mode.as_deref())?;
    if !game_rules.backfill {
        return Err(MatchmakerError::BackfillDisabled { game: slot.game });
    }
    slot.mode = mode;
    Ok(slot)
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::matchmaker::clock::FakeClock;
    use crate::matchmaker::rules::GameRules;

    /// Cancels `victim` while the match of its assignment is being made (between plan
    /// and commit), as a player's `DELETE` racing the pass would.
    #[derive(Debug)]
    struct Racer {
        queue: Arc<MemoryQueue>,
        victim: Mutex<Option<TicketId>>,
        abandoned: Mutex<Vec<String>>,
    }

    impl MatchHost for Racer {
        fn host(&self, _a: &Assignment) -> Option<String> {
            if let Some(victim) = self.victim.lock().unwrap().take() {
                self.queue.cancel(&victim).unwrap();
            }
            Some("eu-racedmatch1".into())
        }

        fn abandon(&self, a: &Assignment) {
            self.abandoned.lock().unwrap().push(a.match_key.clone());
        }
    }

    fn solo(user: &str) -> NewTicket {
        NewTicket {
            game: "duel".into(),
            region: "eu".into(),
            party: vec![user.into()],
            ..NewTicket::default()
        }
    }

    /// A ticket cancelled after the plan but before the commit: the commit is refused,
    /// the host is told to abandon the match it made (by the host's id), the cancelled
    /// ticket stays cancelled and the other stays queued for the next match.
    #[tokio::test]
    async fn refused_commit_is_abandoned() {
        let mut rules = Rules::new();
        rules.register("duel", GameRules::fixed(2)).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(1_700_000_000_000));
        let queue = Arc::new(MemoryQueue::new(Arc::new(rules), clock, QueueOptions::default()));
        let a = queue.submit(solo("a")).unwrap().id.clone();
        let b = queue.submit(solo("b")).unwrap().id.clone();
        let racer = Racer {
            queue: Arc::clone(&queue),
            victim: Mutex::new(Some(a.clone())),
            abandoned: Mutex::new(Vec::new()),
        };
        let report = queue.run_pass_with(&racer).await;
        assert!(report.assignments.is_empty());
        assert_eq!(*racer.abandoned.lock().unwrap(), ["eu-racedmatch1"]);
        assert_eq!(queue.status(&a).unwrap().status, TicketStatus::Cancelled);
        assert!(matches!(queue.status(&b).unwrap().status, TicketStatus::Queued { .. }));
    }
}
