//! A shard's public status, readable by the I/O side without a round trip: the tick
//! thread updates a few relaxed atomics after every step and membership change.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Lifecycle of a shard as the I/O side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardState {
    /// Handed to a tick thread, not yet placed.
    Starting,
    /// Ticking.
    Running,
    /// Finished normally (match end).
    Finished,
    /// Stopped (operator, idle, shutdown).
    Stopped,
    /// A game system panicked; the match was stopped.
    Panicked,
    /// Stopped for having no subscribers and no input for the idle timeout.
    Idle,
}

/// Atomics shared between a shard's tick thread (writer) and its handles (readers).
#[derive(Debug)]
pub struct ShardStatus {
    game: &'static str,
    tick_rate_hz: u32,
    tick: AtomicU64,
    subscribers: AtomicU32,
    queued_inputs: AtomicU32,
    state: AtomicU8,
}

impl ShardStatus {
    pub(crate) fn new(game: &'static str, tick_rate_hz: u32) -> Self {
        Self {
            game,
            tick_rate_hz,
            tick: AtomicU64::new(0),
            subscribers: AtomicU32::new(0),
            queued_inputs: AtomicU32::new(0),
            state: AtomicU8::new(ShardState::Starting as u8),
        }
    }

    pub(crate) fn update(&self, tick: u64, subscribers: usize, queued_inputs: usize) {
        self.tick.store(tick, Ordering::Relaxed);
        self.subscribers.store(u32::try_from(subscribers).unwrap_or(u32::MAX), Ordering::Relaxed);
        self.queued_inputs
            .store(u32::try_from(queued_inputs).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    pub(crate) fn set_state(&self, state: ShardState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// The game type.
    #[must_use]
    pub fn game(&self) -> &'static str {
        self.game
    }

    /// Ticks per second (0 = event-driven).
    #[must_use]
    pub fn tick_rate_hz(&self) -> u32 {
        self.tick_rate_hz
    }

    /// The last tick stepped.
    #[must_use]
    pub fn tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    /// Current subscribers.
    #[must_use]
    pub fn subscribers(&self) -> u32 {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Inputs waiting for the next tick.
    #[must_use]
    pub fn queued_inputs(&self) -> u32 {
        self.queued_inputs.load(Ordering::Relaxed)
    }

    /// The lifecycle state.
    #[must_use]
    pub fn state(&self) -> ShardState {
        match self.state.load(Ordering::Acquire) {
            0 => ShardState::Starting,
            1 => ShardState::Running,
            2 => ShardState::Finished,
            3 => ShardState::Stopped,
            5 => ShardState::Idle,
            _ => ShardState::Panicked,
        }
    }

    /// Starting or running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self.state(), ShardState::Starting | ShardState::Running)
    }
}
