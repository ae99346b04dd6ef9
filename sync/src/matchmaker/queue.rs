//! [`Queue`]: one interface over the in-memory and the Redis backends, with the same
//! semantics (one test suite, `sync/tests/matchmaker_suite.rs`, runs against both).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use super::error::MatchmakerError;
use super::memory::MemoryQueue;
use super::plan::{Plan, plan_queue};
use super::redis_queue::RedisQueue;
use super::rules::Rules;
use super::ticket::{Assignment, NewTicket, OpenSlot, QueueKey, Ticket, TicketId, TicketState};

/// Default [`QueueOptions::closed_retention`]: a closed ticket's status stays readable
/// for 10 minutes.
pub const DEFAULT_CLOSED_RETENTION: Duration = Duration::from_secs(600);
/// Default [`QueueOptions::log_capacity`]: assignments kept for [`Queue::poll_assignments`].
pub const DEFAULT_LOG_CAPACITY: usize = 65_536;
/// Queues with more tickets than this are matched on tokio's blocking pool, so a large
/// pass never occupies an I/O worker.
const INLINE_PLAN_LIMIT: usize = 512;

/// Settings shared by both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// How long matched, expired and cancelled tickets stay readable by id
    /// ([`DEFAULT_CLOSED_RETENTION`]).
    pub closed_retention: Duration,
    /// How many recent assignments are kept for polling ([`DEFAULT_LOG_CAPACITY`]; Redis
    /// trims approximately).
    pub log_capacity: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self { closed_retention: DEFAULT_CLOSED_RETENTION, log_capacity: DEFAULT_LOG_CAPACITY }
    }
}

/// What one [`Queue::run_pass`] committed.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// New assignments, each committed exactly once across all processes.
    pub assignments: Vec<Arc<Assignment>>,
    /// Tickets that expired in this pass.
    pub expired: Vec<TicketId>,
    /// Tickets still queued after the pass, per queue this process matched.
    pub queued: BTreeMap<QueueKey, usize>,
}

/// Where the matches a pass decides are made, asked before each assignment is committed,
/// so that a ticket's status never names a match that does not exist yet.
///
/// A pass calls [`MatchHost::host`] for every assignment whose tickets are still queued,
/// then commits the ones it accepted (each only if its tickets are still queued and, with
/// Redis, this process still holds the queue's lease), then calls [`MatchHost::abandon`]
/// for every accepted assignment whose commit was refused.
pub trait MatchHost: Send + Sync + Debug {
    /// Prepares `assignment`. A new match: create it and return its id, which replaces
    /// the assignment's `match_key` (so the committed status names the real match). A
    /// backfill: `Some` when the running match may still take the players (the id
    /// returned is ignored). `None` skips the assignment this pass: its tickets stay
    /// queued.
    fn host(&self, assignment: &Assignment) -> Option<String>;

    /// The commit of an assignment [`MatchHost::host`] accepted was refused: undo what
    /// it did (stop the match it created).
    fn abandon(&self, assignment: &Assignment);
}

/// The [`MatchHost`] of a queue whose caller makes the matches after the commit, under
/// the planned `match_key` (what [`Queue::run_pass`] uses: tests, benches).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepKeys;

impl MatchHost for KeepKeys {
    fn host(&self, assignment: &Assignment) -> Option<String> {
        Some(assignment.match_key.clone())
    }

    fn abandon(&self, _assignment: &Assignment) {}
}

/// Asks `host` about `assignment`; the assignment to commit (with the new match's id as
/// its key), or `None` to skip it.
pub(super) fn hosted(host: &dyn MatchHost, mut assignment: Assignment) -> Option<Assignment> {
    let id = host.host(&assignment)?;
    if !assignment.backfill {
        assignment.match_key = id;
    }
    Some(assignment)
}

/// A position in the assignment log; `Default` starts at the oldest one kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentCursor(pub(super) String);

/// The matchmaking queues of this process: in memory, or shared through Redis.
#[derive(Debug)]
#[non_exhaustive]
pub enum Queue {
    /// Every queue in this process ([`MemoryQueue`]).
    Memory(Box<MemoryQueue>),
    /// Queues shared by every process of the namespace ([`RedisQueue`]).
    Redis(Box<RedisQueue>),
}

impl From<MemoryQueue> for Queue {
    fn from(q: MemoryQueue) -> Self {
        Self::Memory(Box::new(q))
    }
}

impl From<RedisQueue> for Queue {
    fn from(q: RedisQueue) -> Self {
        Self::Redis(Box::new(q))
    }
}

impl Queue {
    /// Validates and queues a ticket: `{game, mode?, region, party, skill?, params?}`,
    /// stamped with the clock's time and a fresh random id.
    ///
    /// # Errors
    /// [`MatchmakerError::UnknownGame`], [`MatchmakerError::UnknownMode`],
    /// [`MatchmakerError::InvalidName`], [`MatchmakerError::EmptyParty`],
    /// [`MatchmakerError::DuplicateMember`], [`MatchmakerError::PartyTooLarge`],
    /// [`MatchmakerError::InvalidSkill`]; [`MatchmakerError::AlreadyQueued`] naming the
    /// open ticket of the first party member who has one; backend failures.
    pub async fn submit(&self, ticket: NewTicket) -> Result<Arc<Ticket>, MatchmakerError> {
        match self {
            Self::Memory(q) => q.submit(ticket),
            Self::Redis(q) => q.submit(ticket).await,
        }
    }

    /// The ticket and its status: queued (1-based position by age, seconds waited),
    /// matched (the assignment), expired or cancelled.
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`] (also once a closed ticket's retention passed);
    /// backend failures.
    pub async fn status(&self, id: &TicketId) -> Result<TicketState, MatchmakerError> {
        match self {
            Self::Memory(q) => q.status(id),
            Self::Redis(q) => q.status(id).await,
        }
    }

    /// Cancels a queued ticket; its players may queue again at once.
    ///
    /// # Errors
    /// [`MatchmakerError::NotFound`], [`MatchmakerError::AlreadyMatched`],
    /// [`MatchmakerError::Expired`], [`MatchmakerError::Cancelled`]; backend failures.
    pub async fn cancel(&self, id: &TicketId) -> Result<(), MatchmakerError> {
        match self {
            Self::Memory(q) => q.cancel(id),
            Self::Redis(q) => q.cancel(id).await,
        }
    }

    /// Offers a running match's free slots for backfill, replacing any earlier offer for
    /// the same `match_id` (`free == 0` withdraws it). Each backfill assignment lowers
    /// `free` by the players it adds.
    ///
    /// # Errors
    /// Unknown game or mode, bad names, [`MatchmakerError::BackfillDisabled`]; backend
    /// failures.
    pub async fn set_slot(&self, slot: OpenSlot) -> Result<(), MatchmakerError> {
        match self {
            Self::Memory(q) => q.set_slot(slot),
            Self::Redis(q) => q.set_slot(slot).await,
        }
    }

    /// Withdraws a running match's open slots (when it fills up otherwise or ends).
    ///
    /// # Errors
    /// Backend failures.
    pub async fn remove_slot(&self, match_id: &str) -> Result<(), MatchmakerError> {
        match self {
            Self::Memory(q) => {
                q.remove_slot(match_id);
                Ok(())
            }
            Self::Redis(q) => q.remove_slot(match_id).await,
        }
    }

    /// One matching pass over every queue this process leads (memory: all; Redis: those
    /// whose lease it holds or can take now): expiries, backfills, new matches, committed
    /// atomically per assignment under their planned keys ([`KeepKeys`]). The caller
    /// creates each match and notifies its players.
    ///
    /// # Errors
    /// Backend failures (a queue whose lease was lost mid-pass is skipped, not an error).
    pub async fn run_pass(&self) -> Result<PassReport, MatchmakerError> {
        self.run_pass_with(&KeepKeys).await
    }

    /// [`Queue::run_pass`] with `host` making each match before its commit (see
    /// [`MatchHost`]): the committed assignments carry the ids `host` gave.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn run_pass_with(&self, host: &dyn MatchHost) -> Result<PassReport, MatchmakerError> {
        match self {
            Self::Memory(q) => Ok(q.run_pass_with(host).await),
            Self::Redis(q) => q.run_pass_with(host).await,
        }
    }

    /// Renews the Redis leases this process holds (compare-and-renew); the matcher calls
    /// it every third of the lease TTL. No-op in memory.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn renew_leases(&self) -> Result<(), MatchmakerError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(q) => q.renew_leases().await,
        }
    }

    /// Gives up every lease this process holds, so another process takes over at once
    /// (graceful shutdown). No-op in memory.
    ///
    /// # Errors
    /// Backend failures.
    pub async fn release_leases(&self) -> Result<(), MatchmakerError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Redis(q) => q.release_leases().await,
        }
    }

    /// The lease TTL (Redis) or `None` (memory).
    #[must_use]
    pub fn lease_ttl(&self) -> Option<Duration> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(q) => Some(q.lease_ttl()),
        }
    }

    /// Assignments committed (by any process) after `cursor`, oldest first, at most
    /// `max`; moves the cursor past them. Polling is cheap; a reader that falls behind
    /// the log's capacity misses the oldest ones ([`Queue::status`] stays exact).
    ///
    /// # Errors
    /// Backend failures.
    pub async fn poll_assignments(
        &self,
        cursor: &mut AssignmentCursor,
        max: usize,
    ) -> Result<Vec<Arc<Assignment>>, MatchmakerError> {
        match self {
            Self::Memory(q) => Ok(q.poll_assignments(cursor, max)),
            Self::Redis(q) => q.poll_assignments(cursor, max).await,
        }
    }

    /// A cursor after every assignment committed so far (to follow only new ones).
    ///
    /// # Errors
    /// Backend failures.
    pub async fn assignment_cursor(&self) -> Result<AssignmentCursor, MatchmakerError> {
        match self {
            Self::Memory(q) => Ok(q.assignment_cursor()),
            Self::Redis(q) => q.assignment_cursor().await,
        }
    }

    /// The rules this queue validates and matches with.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        match self {
            Self::Memory(q) => q.rules(),
            Self::Redis(q) => q.rules(),
        }
    }
}

/// One queue's input to a pass.
pub(super) struct QueueInput {
    pub key: QueueKey,
    pub tickets: Vec<Arc<Ticket>>,
    pub slots: Vec<OpenSlot>,
}

/// Plans every queue at `now_ms`: inline when small, else on tokio's blocking pool.
pub(super) async fn plan_all(
    rules: Arc<Rules>,
    inputs: Vec<QueueInput>,
    now_ms: u64,
) -> Vec<(QueueKey, Plan)> {
    let total: usize = inputs.iter().map(|q| q.tickets.len()).sum();
    let run = move || {
        inputs
            .into_iter()
            .filter_map(|q| {
                let game_rules = rules.for_queue(&q.key)?;
                let plan = plan_queue(&q.key, game_rules, &q.tickets, &q.slots, now_ms);
                Some((q.key, plan))
            })
            .collect::<Vec<_>>()
    };
    if total <= INLINE_PLAN_LIMIT {
        return run();
    }
    match tokio::task::spawn_blocking(run).await {
        Ok(plans) => plans,
        Err(e) => {
            tracing::error!(error = %e, "matchmaker: planning task failed");
            Vec::new()
        }
    }
}
