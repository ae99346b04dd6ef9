//! Per-address socket caps and per-connection input rate limiting. Both take time or
//! state as arguments so their tests are exact.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Counts open long-lived sockets per client address: shard sockets, sync (feed)
/// WebSockets and SSE streams share one cap.
#[derive(Debug, Default)]
pub struct ConnLimiter {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    /// Takes a slot for `ip`, or `None` when it already has `max` open.
    #[must_use]
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnSlot> {
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot { limiter: Arc::clone(self), ip })
    }

    /// Open sockets of `ip`.
    #[must_use]
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.lock().get(&ip).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Every critical section is one map update; a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a socket over the per-address cap of `max` is refused.
#[must_use]
pub fn over_cap(max: u32) -> String {
    format!("too many connections from this address (limit {max})")
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `2 * rate` (the grace that
/// absorbs bursts and jitter). Taking from an empty bucket means the connection is over
/// its limit.
#[derive(Debug)]
pub struct InputBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl InputBucket {
    /// A full bucket at `now`.
    #[must_use]
    pub fn new(rate_per_sec: u32, now: Instant) -> Self {
        let rate = f64::from(rate_per_sec.max(1));
        Self { rate, capacity: rate * 2.0, tokens: rate * 2.0, last: now }
    }

    /// Takes one token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The cap holds per address, and dropping a slot frees it.
    #[test]
    fn per_ip_cap() {
        let limiter = Arc::new(ConnLimiter::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limiter.acquire(a, 2).unwrap();
        let _s2 = limiter.acquire(a, 2).unwrap();
        assert!(limiter.acquire(a, 2).is_none());
        assert!(limiter.acquire(b, 2).is_some());
        drop(s1);
        assert_eq!(limiter.open(a), 1);
        assert!(limiter.acquire(a, 2).is_some());
    }

    /// A client at its rate never runs dry; a flood gets `2 * rate` through, then is
    /// refused until time refills the bucket.
    #[test]
    fn bucket_allows_rate_and_grace_then_refuses() {
        let t0 = Instant::now();
        let mut bucket = InputBucket::new(10, t0);
        for i in 0..1000u32 {
            assert!(bucket.take(t0 + Duration::from_millis(u64::from(i) * 100)), "at rate");
        }
        let t1 = t0 + Duration::from_secs(1000);
        let mut bucket = InputBucket::new(10, t1);
        let passed = (0..100).filter(|_| bucket.take(t1)).count();
        assert_eq!(passed, 20);
        assert!(bucket.take(t1 + Duration::from_millis(100)));
        assert!(!bucket.take(t1 + Duration::from_millis(100)));
    }
}
