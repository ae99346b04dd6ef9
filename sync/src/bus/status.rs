//! What the cluster bus reports about itself: [`BusStatus`] (for `/readyz` and
//! `/metrics`), [`BusMode`], [`PublishOutcome`], and the atomic counters behind them.
//!
//! Must never: block or allocate on the publish path; every counter is a relaxed atomic.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which bus a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusMode {
    /// No bus: a single process, nobody else to hear.
    Noop,
    /// Redis PUB/SUB.
    Redis,
}

impl BusMode {
    /// `"noop"` or `"redis"` (for the start-up log and metric labels).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::Redis => "redis",
        }
    }
}

impl fmt::Display for BusMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one `publish` call (it never waits to find out more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishOutcome {
    /// On the queue; the publisher task sends it to Redis shortly.
    Queued,
    /// The no-op bus: there is nobody else to hear, so nothing was done.
    Skipped,
    /// Dropped because the queue was full (counted in `dropped_full`).
    DroppedFull,
    /// Dropped because the bus is down or closed (counted in `dropped_down`).
    DroppedDown,
}

/// A snapshot of the bus's state and counters. Counters only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStatus {
    /// Which bus this is.
    pub mode: BusMode,
    /// Publishing and subscription both connected (always true for the no-op bus); the
    /// `pylon_cluster_bus_up` gauge, and `/readyz` names `cluster_bus` when false.
    pub up: bool,
    /// The publisher connection is up (PINGed within the last heartbeat).
    pub publisher_up: bool,
    /// The subscription is established.
    pub subscriber_up: bool,
    /// How many times the subscription has been established (1 after connect, +1 on
    /// every reconnect; 0 for the no-op bus). A feed that saw it advance catches up from
    /// the durable log: whatever was published while it was down never arrives.
    pub generation: u64,
    /// Envelopes sent to Redis.
    pub published: u64,
    /// Envelopes from other instances handed to in-process receivers.
    pub received: u64,
    /// Envelopes dropped because the publish queue was full.
    pub dropped_full: u64,
    /// Envelopes dropped because the bus was down or closed.
    pub dropped_down: u64,
    /// Messages from Redis that were not a valid envelope of their channel (dropped).
    pub malformed: u64,
    /// This process's own envelopes, dropped on receipt.
    pub own_dropped: u64,
    /// Envelopes waiting in the publish queue right now.
    pub queued: usize,
}

impl BusStatus {
    /// The status of the no-op bus: up, nothing counted.
    pub(crate) const fn noop() -> Self {
        Self {
            mode: BusMode::Noop,
            up: true,
            publisher_up: true,
            subscriber_up: true,
            generation: 0,
            published: 0,
            received: 0,
            dropped_full: 0,
            dropped_down: 0,
            malformed: 0,
            own_dropped: 0,
            queued: 0,
        }
    }
}

/// The counters behind [`BusStatus`], shared by the handle and the two tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) dropped_down: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) own_dropped: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
