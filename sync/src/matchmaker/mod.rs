//! The matchmaker: tickets (a solo player or a whole party) wait in one queue per
//! (region, game, mode) until a matching pass groups them into matches.
//!
//! - [`Rules`]: per game and mode match size (fixed or `min..=max` with a fill timeout),
//!   skill window, ticket timeout, backfill; defaults documented on [`GameRules`] and
//!   [`SkillWindow`].
//! - [`plan_queue`]: the pure, deterministic algorithm (see `plan.rs`'s
//!   module doc): oldest ticket anchors, first-fit by age, parties whole, pairwise skill
//!   windows, backfill before new matches.
//! - [`Queue`]: the backends with one semantics: [`MemoryQueue`] (one process owns the
//!   queues) and [`RedisQueue`] (every process of a namespace shares them; one matcher per
//!   queue holds a Redis lease).
//! - [`spawn_matcher_with`]: the periodic pass on the tokio runtime, lease renewal, and a
//!   broadcast of [`MatchEvent`]s for the API's push paths; its [`MatchHost`] makes each
//!   match before the assignment is committed, so a matched status always names a match
//!   that exists.
//! - [`pick_region`]: a ticket's region from measured latencies.
//!
//! Time is injected ([`Clock`]); nothing here reads the wall clock except
//! [`SystemClock`].

mod clock;
mod error;
mod matcher;
mod memory;
mod plan;
mod queue;
mod redis_queue;
mod region;
mod rules;
mod ticket;

pub use self::clock::{Clock, FakeClock, SystemClock, secs_between};
pub use self::error::MatchmakerError;
pub use self::matcher::{
    DEFAULT_EVENT_CAPACITY, DEFAULT_PASS_INTERVAL, MatchEvent, MatcherConfig, MatcherHandle,
    QueueLengths, spawn_matcher, spawn_matcher_with,
};
pub use self::memory::MemoryQueue;
pub use self::plan::{Plan, plan_queue};
pub use self::queue::{
    AssignmentCursor, DEFAULT_CLOSED_RETENTION, DEFAULT_LOG_CAPACITY, KeepKeys, MatchHost,
    PassReport, Queue, QueueOptions,
};
pub use self::redis_queue::{DEFAULT_LEASE_TTL, RedisOptions, RedisQueue};
pub use self::region::{DEFAULT_LATENCY_THRESHOLD, pick_region};
pub use self::rules::{
    DEFAULT_FILL_TIMEOUT, DEFAULT_SKILL_START, DEFAULT_SKILL_UNBOUNDED_AFTER,
    DEFAULT_SKILL_WIDEN_PER_SEC, DEFAULT_TICKET_TIMEOUT, GameRules, Rules, SkillWindow,
};
pub use self::ticket::{
    Assignment, NewTicket, OpenSlot, QueueKey, Ticket, TicketId, TicketState, TicketStatus,
    check_name, new_match_key,
};
