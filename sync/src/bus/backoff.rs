//! Reconnect pacing for the cluster bus: exponential backoff with jitter, and the few
//! random bits the bus needs (instance ids, jitter) drawn from the standard library's
//! OS-seeded hasher keys, so no random-number crate is needed.
//!
//! Must never: sleep or touch a clock other than the wall clock used as extra entropy;
//! the caller decides how to wait.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{BACKOFF_FIRST, BACKOFF_MAX};

/// 64 unpredictable bits: `RandomState` keys come from the OS once per thread and are
/// perturbed per call; a process-wide counter, the wall clock and the pid are mixed in so
/// two processes started in the same instant still differ.
pub(crate) fn random_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Delays between reconnect attempts: `BACKOFF_FIRST` doubling to `BACKOFF_MAX`, each
/// drawn uniformly from the upper half of its step (`[d/2, d]`) so that a fleet that lost
/// Redis at the same instant does not come back in lock step.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
    state: u64,
}

impl Backoff {
    /// A backoff at its first step.
    pub(crate) fn new() -> Self {
        Self { step: BACKOFF_FIRST, state: random_u64() | 1 }
    }

    /// The delay before the next attempt; the step after it doubles (up to the cap).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(BACKOFF_MAX);
        let half = step / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let extra = if span == 0 { 0 } else { self.next_random() % (span + 1) };
        half + Duration::from_micros(extra)
    }

    /// Back to the first step (after a successful connection).
    pub(crate) fn reset(&mut self) {
        self.step = BACKOFF_FIRST;
    }

    /// xorshift64*: plenty for jitter.
    fn next_random(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from 100 ms to the 5 s cap, each jittered within the upper half of
    /// its step, and a reset starts over.
    #[test]
    fn doubles_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let mut step = BACKOFF_FIRST;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(delay >= step / 2 && delay <= step, "{delay:?} outside step {step:?}");
            step = (step * 2).min(BACKOFF_MAX);
        }
        assert_eq!(step, BACKOFF_MAX);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_FIRST);
    }

    /// Two draws in a row differ (ids minted back to back are distinct).
    #[test]
    fn random_bits_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
