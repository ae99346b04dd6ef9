//! [`Sequencer`]: puts the committed changes of every process into `seq` order before
//! they reach this process's hub.
//!
//! Changes arrive from two places: this process's own writes ([`crate::Feeds::publish`],
//! after the store answers) and the other processes' writes (the cluster bus). Neither
//! arrives in order: two requests committing at once publish in either order, and a
//! change from the bus may land after a later local one. The change log has one dense
//! order (`seq`), so the sequencer releases a change only when every change before it was
//! released, and holds the others ([`MAX_PENDING`] at most). A gap that stays open
//! [`GAP_WAIT`] is filled from the durable log by the relay task
//! ([`crate::relay`]), once for the whole process, so live feeds see an ordered stream
//! and rarely read the log themselves (they still do after a gap they see: the last
//! line of defence).
//!
//! Must never: wait, do I/O, or release a `seq` twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::published::Published;

/// How long a gap in `seq` may stay open before the relay fills it from the log. Commits
/// published out of order close their gap within microseconds; a change from another
/// process within the bus's latency (about a millisecond on one network).
pub const GAP_WAIT: Duration = Duration::from_millis(25);

/// Changes held back behind a gap, at most; past this they are released as they are
/// (feeds then fill the gap from the log themselves).
pub const MAX_PENDING: usize = 4096;

/// Orders changes by `seq` (see the module doc).
#[derive(Debug, Default)]
pub struct Sequencer {
    /// The next `seq` to release; `None` until the first change or the relay's start.
    next: Option<u64>,
    /// Changes after a gap, by `seq`.
    pending: BTreeMap<u64, Arc<Published>>,
    /// When the current gap opened.
    since: Option<Instant>,
}

impl Sequencer {
    /// Takes one change at `now`; returns the changes now releasable, in order (empty
    /// when it waits behind a gap or was released before).
    pub fn offer(&mut self, change: Arc<Published>, now: Instant) -> Vec<Arc<Published>> {
        let seq = change.event.seq;
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            return Vec::new();
        }
        if seq > next {
            self.pending.entry(seq).or_insert(change);
            self.since.get_or_insert(now);
            if self.pending.len() > MAX_PENDING {
                return self.release();
            }
            return Vec::new();
        }
        let mut out = vec![change];
        self.next = Some(seq + 1);
        self.drain(&mut out, now);
        out
    }

    /// Moves the pending changes that follow `next` without a gap into `out`.
    fn drain(&mut self, out: &mut Vec<Arc<Published>>, now: Instant) {
        let Some(mut next) = self.next else { return };
        let before = self.pending.len();
        while let Some(change) = self.pending.remove(&next) {
            out.push(change);
            next += 1;
        }
        self.next = Some(next);
        if self.pending.is_empty() {
            self.since = None;
        } else if self.pending.len() != before {
            self.since = Some(now); // the old gap closed; a new one opens here
        }
    }

    /// Releases every pending change in order, giving up on the gap before them.
    pub fn release(&mut self) -> Vec<Arc<Published>> {
        let out: Vec<_> = std::mem::take(&mut self.pending).into_values().collect();
        if let Some(last) = out.last() {
            self.next = Some(last.event.seq + 1);
        }
        self.since = None;
        out
    }

    /// Starts releasing at `seq` at the earliest: pending changes before it are dropped
    /// (whoever needs them reads the log), and what then follows without a gap is
    /// returned.
    pub fn skip_to(&mut self, seq: u64, now: Instant) -> Vec<Arc<Published>> {
        let next = self.next.map_or(seq, |n| n.max(seq));
        self.next = Some(next);
        self.pending = self.pending.split_off(&next);
        let mut out = Vec::new();
        self.drain(&mut out, now);
        if self.pending.is_empty() {
            self.since = None;
        }
        out
    }

    /// The last `seq` released (`None` before any).
    #[must_use]
    pub fn released(&self) -> Option<u64> {
        self.next.map(|n| n.saturating_sub(1))
    }

    /// When the open gap, if any, should be filled from the log.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + GAP_WAIT)
    }

    /// Whether changes wait behind a gap.
    #[must_use]
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use pylon_storage::ChangeEvent;
    use pylon_storage::entity::ChangeKind;

    use super::*;

    fn change(seq: u64) -> Arc<Published> {
        Arc::new(Published::new(ChangeEvent {
            seq,
            entity: "E".into(),
            row_id: format!("r{seq}"),
            kind: ChangeKind::Insert,
            data: None,
            timestamp: String::new(),
            before: None,
        }))
    }

    fn seqs(out: &[Arc<Published>]) -> Vec<u64> {
        out.iter().map(|c| c.event.seq).collect()
    }

    /// Out-of-order changes come out in order, each once; a change already released is
    /// dropped; the gap's deadline exists only while something waits.
    #[test]
    fn orders_and_deduplicates() {
        let t = Instant::now();
        let mut s = Sequencer::default();
        assert_eq!(seqs(&s.offer(change(10), t)), [10]);
        assert!(s.offer(change(12), t).is_empty());
        assert!(s.offer(change(13), t).is_empty());
        assert_eq!(s.deadline(), Some(t + GAP_WAIT));
        assert_eq!(seqs(&s.offer(change(11), t)), [11, 12, 13]);
        assert!(s.offer(change(12), t).is_empty(), "released before");
        assert!(s.deadline().is_none() && !s.waiting());
        assert_eq!(s.released(), Some(13));
    }

    /// A gap given up on releases what waits, in order; skipping ahead drops what the
    /// log will provide and releases what follows without a gap.
    #[test]
    fn release_and_skip() {
        let t = Instant::now();
        let mut s = Sequencer::default();
        s.offer(change(1), t);
        s.offer(change(4), t);
        s.offer(change(3), t);
        assert_eq!(seqs(&s.release()), [3, 4]);
        assert_eq!(s.released(), Some(4));
        s.offer(change(7), t);
        s.offer(change(9), t);
        assert_eq!(seqs(&s.skip_to(7, t)), [7]);
        assert!(s.waiting(), "9 still waits for 8");
        assert!(s.skip_to(20, t).is_empty());
        assert!(!s.waiting());
        assert_eq!(s.released(), Some(19));
    }

    /// More than [`MAX_PENDING`] waiting changes are released rather than held.
    #[test]
    fn pending_is_bounded() {
        let t = Instant::now();
        let mut s = Sequencer::default();
        s.offer(change(0), t);
        let mut released = Vec::new();
        for seq in 2..(MAX_PENDING as u64 + 3) {
            released.extend(s.offer(change(seq), t));
        }
        assert_eq!(released.len(), MAX_PENDING + 1);
        assert!(!s.waiting());
    }
}
