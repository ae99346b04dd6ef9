//! Where in its period a fixed-rate shard ticks: [`Phases`] puts shards of one rate on a
//! few shared phase slots, so that one wake of a tick thread steps a batch of shards and
//! hands the I/O side one burst of frames, instead of one wake per shard.
//!
//! Each wake costs a context switch on the tick thread and usually one on an I/O worker
//! (the frames it hands over wake a parked worker). With every shard on a phase of its
//! own, 150 arena matches at 20 Hz woke each side about 3,000 times a second. Shards in one
//! slot have the same deadlines to the nanosecond (their grids start a whole number of
//! periods apart), so they fall due together and run back to back.
//!
//! A slot should not hold so many shards that the last of a burst starts late: a thread
//! opens one more slot per [`BURST`] shards of a rate, up to one slot per [`MIN_SLOT_NS`]
//! of the period, and a new shard joins the least full open slot. The open slots are
//! spread over the period (bit-reversed order: the first two are half a period apart, the
//! first four a quarter, …), so the work of a thread stays spread in time.

use std::collections::BTreeMap;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Shards per slot before a thread opens another slot for that rate.
pub const BURST: u32 = 16;
/// The smallest distance between two slots of one rate.
pub const MIN_SLOT_NS: u64 = 1_000_000;
/// The most slots a rate can have (a power of two).
const MAX_SLOTS: u64 = 64;

/// The phase slots of one tick thread, by tick rate.
#[derive(Debug, Default)]
pub struct Phases {
    /// Shards per slot, by rate; the vector's length is the rate's slot count.
    by_rate: BTreeMap<u32, Vec<u32>>,
}

impl Phases {
    /// Places a new shard of `hz` created at `now`: its grid start (the first tick falls one
    /// period later) and its slot. The start lies in `[now, now + period)`. Event-driven
    /// shards (`hz == 0`) start at `now` and take no slot.
    pub fn place(&mut self, hz: u32, now: u64) -> (u64, u16) {
        if hz == 0 {
            return (now, 0);
        }
        let period = NS_PER_SEC / u64::from(hz);
        let slots = slot_count(period);
        let counts = self.by_rate.entry(hz).or_insert_with(|| vec![0; slots as usize]);
        let total: u32 = counts.iter().sum();
        let open = (total / BURST + 1).min(slots);
        // The least full open slot (the earliest opened on a tie).
        let slot =
            (0..open).min_by_key(|&s| counts.get(s as usize).copied().unwrap_or(0)).unwrap_or(0);
        if let Some(count) = counts.get_mut(slot as usize) {
            *count += 1;
        }
        let offset = u64::from(reverse_bits(slot, slots)) * (period / u64::from(slots));
        // The first instant at or after `now` that lies `offset` past a whole number of
        // periods (counted from the clock's zero, the same for every shard of this thread).
        let base = now - now % period + offset;
        let start = if base < now { base + period } else { base };
        // `slots` is at most 64: the slot fits in a u16.
        (start, u16::try_from(slot).unwrap_or(0))
    }

    /// A shard placed by [`Phases::place`] is gone.
    pub fn release(&mut self, hz: u32, slot: u16) {
        if hz == 0 {
            return;
        }
        if let Some(count) = self.by_rate.get_mut(&hz).and_then(|c| c.get_mut(usize::from(slot))) {
            *count = count.saturating_sub(1);
        }
    }
}

/// The rate's slot count: a power of two, at most one slot per `MIN_SLOT_NS`.
fn slot_count(period: u64) -> u32 {
    let fit = (period / MIN_SLOT_NS).clamp(1, MAX_SLOTS);
    // The largest power of two not above `fit` (fit >= 1); at most 64.
    let pow = 1u64 << (63 - fit.leading_zeros());
    u32::try_from(pow).unwrap_or(1)
}

/// `index` with its low `log2(slots)` bits reversed (`slots` a power of two).
fn reverse_bits(index: u32, slots: u32) -> u32 {
    let bits = slots.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    index.reverse_bits() >> (32 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Shards of one rate share slots: the first 16 at 20 Hz all get the same deadlines,
    /// the 17th opens a second slot half a period away.
    #[test]
    fn shards_share_slots_until_a_burst_is_full() {
        let mut phases = Phases::default();
        let now = 1_234 * MS + 17;
        let starts: Vec<u64> = (0..16).map(|i| phases.place(20, now + i * 3 * MS).0).collect();
        let period = 50 * MS;
        for s in &starts {
            assert_eq!(s % period, starts[0] % period, "one phase for the first 16");
        }
        let (start, slot) = phases.place(20, now);
        assert_eq!(slot, 1);
        let apart = (start % period + period - starts[0] % period) % period;
        assert_eq!(apart, period / 2, "the second slot is half a period away");
    }

    /// A start is never before `now` and less than a period after it.
    #[test]
    fn start_is_within_one_period() {
        let mut phases = Phases::default();
        for hz in [1, 20, 30, 60, 128] {
            let period = NS_PER_SEC / u64::from(hz);
            for i in 0..200u64 {
                let now = 5 * NS_PER_SEC + i * 7_919_113;
                let (start, _) = phases.place(hz, now);
                assert!(start >= now && start < now + period, "{hz} Hz at {now}: {start}");
            }
        }
    }

    /// Releasing frees the slot for the next shard; slots never exceed one per ms.
    #[test]
    fn release_and_bounds() {
        let mut phases = Phases::default();
        let placed: Vec<u16> = (0..40).map(|_| phases.place(20, 0).1).collect();
        assert_eq!(placed.iter().filter(|&&s| s == 0).count(), 16);
        assert!(placed.iter().all(|&s| s < 3));
        for &slot in &placed {
            phases.release(20, slot);
        }
        assert_eq!(phases.place(20, 0).1, 0, "empty again: the first slot");
        assert_eq!(slot_count(50 * MS), 32);
        assert_eq!(slot_count(NS_PER_SEC / 128), 4);
        assert_eq!(slot_count(NS_PER_SEC), 64);
        assert_eq!(slot_count(MS / 2), 1);
        assert_eq!(phases.place(0, 99), (99, 0), "event-driven shards take no slot");
    }
}
