//! The limits on every door, as small types that take time as an argument so their tests
//! are exact:
//! - [`ConnLimiter`]: open connections per client address (one instance for long-lived
//!   sockets, one for every HTTP connection);
//! - [`Rate`], [`InputBucket`]: a token bucket (one per socket for its inputs);
//! - [`KeyedLimiter`]: token buckets by key (guest sessions per address, match creations
//!   per user, HTTP inputs per subscriber, matchmaker tickets per address), in a bounded
//!   map with a sweep;
//! - [`Backoff`]: the accept loop's exponential back-off;
//! - [`client_addr`], [`addr_key`]: which address a limit counts (forwarded by a trusted
//!   proxy, IPv6 by /64).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// The address a per-address limit counts: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4 address), IPv6 by its /64 prefix, since one subscriber commonly holds a whole /64
/// and could otherwise take a fresh address for every connection.
#[must_use]
pub fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// The client's address for per-address limits. A connection from one of `trusted` (the
/// reverse proxies in front of pylon) is counted as the right-most `X-Forwarded-For`
/// entry that is not itself a trusted proxy: each proxy appends the address it received
/// the request from, so everything left of that entry is what the client chose to send.
/// Without the header, or when an entry does not parse, the proxy's own address counts
/// (a misconfigured proxy shares one budget rather than letting clients pick theirs).
/// Any other peer is counted as itself: its headers are never read.
#[must_use]
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => {}
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// Counts open connections per client address ([`addr_key`]).
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
        let ip = addr_key(ip);
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot { limiter: Arc::clone(self), ip })
    }

    /// Open connections of `ip`.
    #[must_use]
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.lock().get(&addr_key(ip)).copied().unwrap_or(0)
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

/// A token bucket's shape: `tokens` every `period`, holding at most `burst`. Kept in
/// integers (a token is `period` in nanoseconds of credit, and every nanosecond adds
/// `tokens` of credit), so refills and waits are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per `period`.
    pub tokens: u64,
    /// The refill period.
    pub period: Duration,
    /// Most tokens held (what a client that was quiet may spend at once).
    pub burst: u64,
}

impl Rate {
    /// `n` a minute with a burst of `n`: after a burst, one every `60 / n` seconds.
    #[must_use]
    pub fn per_minute(n: u32) -> Self {
        let n = u64::from(n.max(1));
        Self { tokens: n, period: Duration::from_secs(60), burst: n }
    }

    /// `n` a second with a burst of `2 * n` (the sockets' input rate and its grace).
    #[must_use]
    pub fn per_second_with_grace(n: u32) -> Self {
        let n = u64::from(n.max(1));
        Self { tokens: n, period: Duration::from_secs(1), burst: 2 * n }
    }

    /// Credit of one token.
    fn unit(self) -> u128 {
        self.period.as_nanos().max(1)
    }

    fn capacity(self) -> u128 {
        u128::from(self.burst.max(1)) * self.unit()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    credit: u128,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self { credit: rate.capacity(), last: now }
    }

    fn credit_at(&self, rate: Rate, now: Instant) -> u128 {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.credit
            .saturating_add(elapsed.saturating_mul(u128::from(rate.tokens)))
            .min(rate.capacity())
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.credit = self.credit_at(rate, now);
        self.last = self.last.max(now);
        if self.credit >= rate.unit() {
            self.credit -= rate.unit();
            Ok(())
        } else {
            let missing = rate.unit() - self.credit;
            let per_ns = u128::from(rate.tokens.max(1));
            let wait = missing.div_ceil(per_ns);
            Err(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)))
        }
    }

    /// A full bucket is the same as no bucket: the sweep forgets it.
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.credit_at(rate, now) >= rate.capacity()
    }
}

/// A token bucket: `rate` tokens per second, holding at most `2 * rate` (the grace that
/// absorbs bursts and jitter). Taking from an empty bucket means the connection is over
/// its limit.
#[derive(Debug)]
pub struct InputBucket {
    rate: Rate,
    bucket: Bucket,
}

impl InputBucket {
    /// A full bucket at `now`.
    #[must_use]
    pub fn new(rate_per_sec: u32, now: Instant) -> Self {
        let rate = Rate::per_second_with_grace(rate_per_sec);
        Self { rate, bucket: Bucket::full(rate, now) }
    }

    /// Takes one token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        self.bucket.take(self.rate, now).is_ok()
    }
}

/// Why a [`KeyedLimiter`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This key's bucket is empty; a token is back after `retry_after`.
    Empty {
        /// Time until the next token.
        retry_after: Duration,
    },
    /// The map holds `max_keys` keys that are all in use (none is back to full), so a new
    /// key is refused rather than letting the map grow without bound.
    Crowded,
}

impl Refusal {
    /// Whole seconds for a `Retry-After` header (at least 1).
    #[must_use]
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Self::Empty { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                secs.max(1)
            }
            Self::Crowded => 1,
        }
    }
}

/// Token buckets by key, all of one [`Rate`]. The map is bounded: a key whose bucket has
/// refilled is forgotten by [`KeyedLimiter::sweep`] (a full bucket and no bucket behave
/// the same), and when `max_keys` keys are in use a new key first triggers a sweep (at
/// most once a second, so a crowd of new keys cannot make every call scan the map) and is
/// refused ([`Refusal::Crowded`]) if that frees nothing. Failing closed is deliberate:
/// these limits protect the server, and a map that large means an attack.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: Rate,
    max_keys: usize,
    inner: Mutex<Keyed<K>>,
}

#[derive(Debug)]
struct Keyed<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

impl<K: Hash + Eq> KeyedLimiter<K> {
    /// Buckets of `rate` for at most `max_keys` keys at once.
    #[must_use]
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        let inner = Keyed { buckets: HashMap::new(), last_sweep: None };
        Self { rate, max_keys: max_keys.max(1), inner: Mutex::new(inner) }
    }

    /// Takes one token from `key`'s bucket at `now`.
    ///
    /// # Errors
    /// [`Refusal`]: the bucket is empty, or the map is full of keys in use.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Refusal> {
        let rate = self.rate;
        let mut inner = self.lock();
        if let Some(bucket) = inner.buckets.get_mut(&key) {
            return bucket.take(rate, now).map_err(|retry_after| Refusal::Empty { retry_after });
        }
        if inner.buckets.len() >= self.max_keys {
            let due =
                inner.last_sweep.is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1);
            if !due {
                return Err(Refusal::Crowded);
            }
            inner.last_sweep = Some(now);
            inner.buckets.retain(|_, b| !b.is_full(rate, now));
            if inner.buckets.len() >= self.max_keys {
                return Err(Refusal::Crowded);
            }
        }
        let mut bucket = Bucket::full(rate, now);
        let taken = bucket.take(rate, now);
        inner.buckets.insert(key, bucket);
        taken.map_err(|retry_after| Refusal::Empty { retry_after })
    }

    /// Forgets every key whose bucket is full again at `now`; how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let rate = self.rate;
        let mut inner = self.lock();
        let before = inner.buckets.len();
        inner.buckets.retain(|_, b| !b.is_full(rate, now));
        inner.last_sweep = Some(now);
        before - inner.buckets.len()
    }

    /// Keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().buckets.len()
    }

    /// Whether no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keyed<K>> {
        // Every critical section leaves the map consistent; poisoning changes nothing.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keys one [`KeyedLimiter`] holds at most (buckets in use at once).
pub const MAX_LIMITER_KEYS: usize = 100_000;

/// The keyed rate limits of the API, one limiter each.
#[derive(Debug)]
pub struct Rates {
    /// Guest sessions per client address ([`addr_key`]).
    pub guests: KeyedLimiter<IpAddr>,
    /// Match creations per user id.
    pub match_creates: KeyedLimiter<Arc<str>>,
    /// HTTP inputs per (match id, sid): the sockets' per-subscriber rate.
    pub http_inputs: KeyedLimiter<(Arc<str>, Arc<str>)>,
    /// Matchmaker tickets per client address ([`addr_key`]).
    pub tickets: KeyedLimiter<IpAddr>,
}

impl Rates {
    /// The limiters for `limits`.
    #[must_use]
    pub fn new(limits: &crate::Limits) -> Self {
        Self {
            guests: KeyedLimiter::new(
                Rate::per_minute(limits.guests_per_minute_per_ip),
                MAX_LIMITER_KEYS,
            ),
            match_creates: KeyedLimiter::new(
                Rate::per_minute(limits.matches_per_minute),
                MAX_LIMITER_KEYS,
            ),
            http_inputs: KeyedLimiter::new(
                Rate::per_second_with_grace(limits.max_inputs_per_sec),
                MAX_LIMITER_KEYS,
            ),
            tickets: KeyedLimiter::new(
                Rate::per_second_with_grace(limits.tickets_per_sec_per_ip),
                MAX_LIMITER_KEYS,
            ),
        }
    }

    /// Forgets every refilled bucket; how many.
    pub fn sweep(&self, now: Instant) -> usize {
        self.guests.sweep(now)
            + self.match_creates.sweep(now)
            + self.http_inputs.sweep(now)
            + self.tickets.sweep(now)
    }
}

/// Exponential back-off: `min`, doubling on every failure up to `max`, back to `min` after
/// a success. The accept loop sleeps this long after each accept error (out of file
/// descriptors, out of memory), so a persistent error costs a few wake-ups a second
/// instead of a spinning core.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starting at `min`, capped at `max`.
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max: max.max(min), next: min }
    }

    /// The delay to wait after this failure (the next one waits twice as long).
    pub fn fail(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// A success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The cap holds per address, and dropping a slot frees it.
    #[test]
    fn per_ip_cap() {
        let limiter = Arc::new(ConnLimiter::default());
        let (a, b) = (ip("127.0.0.1"), ip("127.0.0.2"));
        let s1 = limiter.acquire(a, 2).unwrap();
        let _s2 = limiter.acquire(a, 2).unwrap();
        assert!(limiter.acquire(a, 2).is_none());
        assert!(limiter.acquire(b, 2).is_some());
        drop(s1);
        assert_eq!(limiter.open(a), 1);
        assert!(limiter.acquire(a, 2).is_some());
    }

    /// IPv6 addresses of one /64 share a slot count; a v4-mapped address is its v4.
    #[test]
    fn ipv6_counts_by_prefix() {
        assert_eq!(addr_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(addr_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let limiter = Arc::new(ConnLimiter::default());
        let _s = limiter.acquire(ip("2001:db8::1"), 1).unwrap();
        assert!(limiter.acquire(ip("2001:db8::2"), 1).is_none(), "same /64");
        assert!(limiter.acquire(ip("2001:db8:0:1::1"), 1).is_some(), "another /64");
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

    /// 20 a minute: a burst of 20, the 21st refused with the exact wait (3 s for one
    /// token), one more after 3 s, and other keys are untouched by it.
    #[test]
    fn keyed_per_minute_burst_then_refill() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(Rate::per_minute(20), 100);
        for _ in 0..20 {
            limiter.check("a", t0).unwrap();
        }
        let refused = limiter.check("a", t0).unwrap_err();
        assert_eq!(refused, Refusal::Empty { retry_after: Duration::from_secs(3) });
        assert_eq!(refused.retry_after_secs(), 3);
        limiter.check("b", t0).unwrap();
        assert!(limiter.check("a", t0 + Duration::from_millis(2999)).is_err());
        limiter.check("a", t0 + Duration::from_secs(3)).unwrap();
        assert!(limiter.check("a", t0 + Duration::from_secs(3)).is_err());
        // A minute of quiet refills all 20.
        let later = t0 + Duration::from_secs(63);
        assert_eq!((0..25).filter(|_| limiter.check("a", later).is_ok()).count(), 20);
    }

    /// The sweep forgets exactly the keys whose buckets are full again.
    #[test]
    fn keyed_sweep_forgets_refilled_keys() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(Rate::per_second_with_grace(10), 100);
        limiter.check(1, t0).unwrap();
        for _ in 0..20 {
            let _ = limiter.check(2, t0 + Duration::from_millis(50));
        }
        assert_eq!(limiter.len(), 2);
        // Key 1 used one token: full again 0.1 s later; key 2 needs 2 s.
        assert_eq!(limiter.sweep(t0 + Duration::from_millis(100)), 1);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.sweep(t0 + Duration::from_millis(2049)), 0);
        assert_eq!(limiter.sweep(t0 + Duration::from_millis(2050)), 1);
        assert!(limiter.is_empty());
    }

    /// A full map refuses new keys while every key is in use (at most one sweep a
    /// second), and admits them again once keys refill; known keys keep working.
    #[test]
    fn keyed_map_is_bounded() {
        let t0 = Instant::now();
        let limiter = KeyedLimiter::new(Rate::per_minute(60), 2);
        limiter.check(1, t0).unwrap();
        limiter.check(2, t0).unwrap();
        assert_eq!(limiter.check(3, t0), Err(Refusal::Crowded), "swept, nothing freed");
        assert_eq!(limiter.check(3, t0 + Duration::from_millis(999)), Err(Refusal::Crowded));
        limiter.check(1, t0 + Duration::from_millis(999)).unwrap();
        // At 1 s key 2 (one token used at t0, one a second) is full again: swept out.
        limiter.check(3, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(limiter.len(), 2);
    }

    /// The back-off doubles from its minimum to its cap and starts over after a success.
    #[test]
    fn backoff_doubles_to_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
        let seen: Vec<u64> = (0..10).map(|_| b.fail().as_millis() as u64).collect();
        assert_eq!(seen, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.fail(), Duration::from_millis(5));
    }

    /// Forwarded addresses are believed only from a trusted proxy, and then the right-most
    /// untrusted entry counts; no header or a garbled one counts the proxy itself.
    #[test]
    fn client_address_behind_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let inner = ip("10.0.0.2");
        let trusted = [proxy, inner];
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 1.2.3.4"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        assert_eq!(client_addr(proxy, &h, &trusted), ip("1.2.3.4"), "spoofed 6.6.6.6 ignored");
        assert_eq!(client_addr(ip("5.5.5.5"), &h, &trusted), ip("5.5.5.5"), "untrusted peer");
        assert_eq!(client_addr(proxy, &h, &[]), proxy, "no trusted proxies");
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy, "no header");
        let mut garbled = HeaderMap::new();
        garbled.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, nonsense"));
        assert_eq!(client_addr(proxy, &garbled, &trusted), proxy);
        let mut only_proxies = HeaderMap::new();
        only_proxies.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        assert_eq!(client_addr(proxy, &only_proxies, &trusted), proxy);
    }
}
