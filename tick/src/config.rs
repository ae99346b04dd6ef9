//! Typed configuration of the tick pool. Built by the binary's `src/config.rs` from the
//! environment; every field has a documented default.

use std::time::Duration;

/// Tick pool settings.
#[derive(Debug, Clone)]
pub struct TickConfig {
    /// Tick threads (`PYLON_TICK_THREADS`). Default: available cores. Each is one OS thread.
    pub threads: usize,
    /// Commands queued per tick thread before senders are refused. Default 65,536 (about
    /// 7 MiB per thread, allocated up front by the bounded channel; 160 ms of input at
    /// 400,000 inputs/s per thread).
    pub command_capacity: usize,
    /// Commands handled between two passes over due shards. Bounds how long a flood of
    /// commands can delay ticks: under overload, ticks stay on time and the channel fills
    /// up and refuses inputs instead. Default 1,024.
    pub command_batch: usize,
    /// Ticks a late shard may run back to back before it skips the rest. Default 3.
    pub max_catch_up_ticks: u32,
    /// A shard with no subscribers and no input for this long is stopped and removed.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Longest a tick thread sleeps with nothing due (idle sweep cadence). Default 100 ms.
    pub max_park: Duration,
    /// How long past the next deadline a sleeping tick thread may wake, so that one wake-up
    /// serves several shards instead of one (each wake costs a context switch). Adds up to
    /// this much tick lateness. Default 200 us.
    pub wake_slack: Duration,
}

impl Default for TickConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            command_capacity: 65_536,
            command_batch: 1_024,
            max_catch_up_ticks: 3,
            idle_timeout: Duration::from_secs(60),
            max_park: Duration::from_millis(100),
            wake_slack: Duration::from_micros(200),
        }
    }
}
