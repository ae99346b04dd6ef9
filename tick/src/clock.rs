//! Time for the scheduler, injectable so scheduling tests are exact and never sleep.
//!
//! Time is a `u64` of nanoseconds since the clock's origin. [`MonotonicClock`] reads
//! `std::time::Instant`; [`ManualClock`] only moves when a test moves it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A monotonic time source.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin. Never decreases.
    fn now_ns(&self) -> u64;
}

/// The real clock: nanoseconds since the clock was created.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that stands still until told to move (tests and the `Stepper`).
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ns: AtomicU64,
}

impl ManualClock {
    /// A clock at `start_ns`.
    #[must_use]
    pub fn new(start_ns: u64) -> Self {
        Self { now_ns: AtomicU64::new(start_ns) }
    }

    /// Moves the clock to `ns`; a time in the past is ignored (the clock is monotonic).
    pub fn set(&self, ns: u64) {
        self.now_ns.fetch_max(ns, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }
}
