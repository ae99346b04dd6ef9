//! Per-thread tick metrics, lock-free: the tick thread records with relaxed atomic adds,
//! and the server exports them (Prometheus) or the density benchmark summarizes them.

use std::sync::atomic::{AtomicU64, Ordering};

use pylon_shard::InputRejected;

/// Sub-buckets per power of two: bucket bounds are within 12.5% of any value.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Buckets cover 0 to 2^41 microseconds (25 days).
const BUCKETS: usize = SUB + (41 - SUB_BITS as usize) * SUB;

/// A log-linear histogram of microsecond values with atomic buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return usize::try_from(value).unwrap_or(0);
    }
    let exp = 63 - value.leading_zeros();
    let sub = (value >> (exp - SUB_BITS)) as usize & (SUB - 1);
    (SUB + (exp - SUB_BITS) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The largest value that falls in bucket `index`.
#[must_use]
pub fn bucket_upper_bound(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index - SUB) / SUB + SUB_BITS as usize;
    let sub = ((index - SUB) % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS as usize)) - 1
}

impl Histogram {
    /// Records one value (microseconds).
    pub fn record(&self, value_us: u64) {
        self.buckets[bucket_of(value_us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value_us, Ordering::Relaxed);
        self.max.fetch_max(value_us, Ordering::Relaxed);
    }

    /// Returns the max so far and starts a new max from zero.
    pub fn take_max(&self) -> u64 {
        self.max.swap(0, Ordering::Relaxed)
    }

    /// A point-in-time copy.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`Histogram`], mergeable across threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Count per bucket; bucket `i` holds values up to [`bucket_upper_bound`]`(i)`.
    pub buckets: Vec<u64>,
    /// Values recorded.
    pub count: u64,
    /// Sum of values.
    pub sum: u64,
    /// Largest value.
    pub max: u64,
}

impl HistogramSnapshot {
    /// Adds another snapshot's counts into this one.
    pub fn merge(&mut self, other: &Self) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The counts recorded after `earlier` was taken. `max` is this snapshot's: reset it
    /// with [`Histogram::take_max`] when `earlier` is taken to get the window's max.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        Self {
            buckets,
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            max: self.max,
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0.0 to 1.0), capped at `max`;
    /// 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_upper_bound(index).min(self.max);
            }
        }
        self.max
    }
}

/// Counters and histograms of one tick thread.
#[derive(Debug, Default)]
pub struct ThreadMetrics {
    /// Shard steps run.
    pub ticks: AtomicU64,
    /// Duration of one shard step, microseconds.
    pub tick_duration_us: Histogram,
    /// How late a step started after its deadline, microseconds.
    pub lateness_us: Histogram,
    /// From an input's hand-off by the I/O side to its application, microseconds.
    pub input_latency_us: Histogram,
    /// Steps that took longer than their shard's tick period.
    pub overruns: AtomicU64,
    /// Ticks skipped after a stall (beyond the catch-up limit).
    pub skipped_ticks: AtomicU64,
    /// Shards currently owned by this thread.
    pub shards: AtomicU64,
    /// Load units (sum of tick rates, event-driven shards count 1) for placement.
    pub load: AtomicU64,
    /// Commands refused because this thread's channel was full.
    pub commands_rejected: AtomicU64,
    /// Inputs applied.
    pub inputs_applied: AtomicU64,
    /// Inputs refused, by reason: unknown subscriber, queue full, decode, finished.
    pub inputs_rejected: [AtomicU64; 4],
    /// Inputs refused by the game's `authorize_input`.
    pub inputs_unauthorized: AtomicU64,
    /// Shards stopped because a game system panicked.
    pub panics: AtomicU64,
    /// Shards removed: finished, stopped, idle.
    pub shards_removed: AtomicU64,
    /// Subscribers dropped because their reliable queue overflowed.
    pub mailbox_overflows: AtomicU64,
    /// Persistence records handed over (saved states, outcomes, drops).
    pub persisted: AtomicU64,
    /// Persistence records skipped because the persistence channel was full.
    pub persist_skipped: AtomicU64,
}

impl ThreadMetrics {
    /// Counts one rejected input.
    pub fn count_rejected(&self, reason: InputRejected) {
        self.count_rejected_many(reason, 1);
    }

    /// Counts `n` rejected inputs.
    pub fn count_rejected_many(&self, reason: InputRejected, n: u64) {
        let index = match reason {
            InputRejected::UnknownSubscriber => 0,
            InputRejected::QueueFull => 1,
            InputRejected::Decode => 2,
            _ => 3,
        };
        self.inputs_rejected[index].fetch_add(n, Ordering::Relaxed);
    }

    /// Labels of [`ThreadMetrics::inputs_rejected`], in order.
    pub const REJECT_REASONS: [&'static str; 4] =
        ["unknown_subscriber", "queue_full", "decode", "finished"];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value lands in a bucket whose upper bound is at least the value and within 12.5%.
    #[test]
    fn buckets_bound_values() {
        for v in (0..5_000).chain([1 << 20, (1 << 30) + 7, u64::from(u32::MAX)]) {
            let upper = bucket_upper_bound(bucket_of(v));
            assert!(upper >= v, "{v} -> {upper}");
            assert!(upper - v <= v / 8 + 1, "{v} -> {upper}");
        }
    }

    /// Quantiles come out of the right buckets and merge adds counts.
    #[test]
    fn quantiles_and_merge() {
        let h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        let mut snap = h.snapshot();
        assert_eq!(snap.quantile(0.5), 51);
        assert!(snap.quantile(0.99) >= 99 && snap.quantile(0.99) <= 100);
        assert_eq!(snap.quantile(1.0), 100);
        snap.merge(&h.snapshot());
        assert_eq!(snap.count, 200);
    }
}
