//! The subscriber mailbox: the only channel from a tick thread to a subscriber's writer.
//!
//! One producer (the tick thread) and one consumer (the writer task). Two parts:
//! - a **latest slot** for snapshots: a newer snapshot replaces an unsent one, so a slow
//!   reader holds one frame and never slows the match. It is a triple buffer of three
//!   inline slots: one belongs to the producer, one to the consumer, and the third is
//!   shared, its index (with a "fresh" bit) in one atomic that both sides `swap`. A
//!   publish writes its own slot and swaps it in; a take swaps the consumer's (empty) slot
//!   for the shared one. Whoever holds a slot's index owns its contents, so nothing is
//!   shared by two threads at once, and publishing allocates nothing: the tick thread
//!   moves one frame (a shared payload and the subscriber's ack) into the slot it owns.
//! - a **reliable ring** (bounded SPSC) for frames that must not be lost (joined, match
//!   end, stopped). A full ring marks the mailbox overflowed and closed: the I/O side then
//!   closes that socket.
//!
//! Order is kept: pushing a reliable frame first moves an unsent snapshot into the ring,
//! and each snapshot remembers the ring position at its publication, so the consumer
//! delivers ring frames pushed before a snapshot ahead of it (the snapshot waits in the
//! consumer's slot meanwhile). The consumer is woken through an [`AtomicWaker`]. Nothing
//! here blocks, and nothing allocates after construction except the boxes that carry
//! reliable frames.

use std::task::{Context, Poll};

use crate::sync::{AtomicU8, AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use crate::waker::AtomicWaker;

/// Reliable ring capacity per subscriber unless configured otherwise.
pub const DEFAULT_RELIABLE_CAPACITY: usize = 8;

const CLOSED: u8 = 0b001;
const OVERFLOWED: u8 = 0b010;
const CONSUMER_GONE: u8 = 0b100;

/// In `shared`: the index of the shared slot (0, 1 or 2)...
const INDEX: u8 = 0b011;
/// ...and whether it holds a snapshot the consumer has not taken.
const FRESH: u8 = 0b100;

/// What [`Mailbox::publish_latest`] did with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Stored; nothing was waiting.
    Stored,
    /// Stored, replacing an unsent older snapshot (dropped).
    Replaced,
    /// The mailbox is closed or its consumer gone; the frame was dropped.
    Closed,
}

/// The reliable ring was full: the mailbox is now closed and overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

struct Node<T> {
    frame: T,
    /// The ring's tail when this snapshot was published: ring frames below it came first.
    ring_tail: usize,
}

/// A single-producer, single-consumer outbox for one subscriber.
///
/// Contract: at most one thread calls the producer methods (`publish_latest`,
/// `push_reliable`, `close`) at a time, and at most one calls the consumer methods
/// (`try_recv`, `poll_recv`, `close_consumer`). In pylon the tick thread owning the shard is
/// the producer and the subscriber's writer task the consumer.
///
/// Laid out in declaration order (`repr(C)`): everything a publish reads or writes comes
/// first, in one cache line (a tick thread publishes to thousands of cold mailboxes per
/// tick period), then the slots, then what only the consumer or a reliable push uses.
#[repr(C)]
pub struct Mailbox<T> {
    flags: AtomicU8,
    /// The shared slot's index | `FRESH`.
    shared: AtomicU8,
    /// Producer-only: the index of the producer's slot (empty between calls).
    back: UnsafeCell<u8>,
    /// Consumer-only: the index of the consumer's slot, which holds a snapshot only while
    /// it waits for older ring frames.
    front: UnsafeCell<u8>,
    tail: AtomicUsize,
    replaced: AtomicU64,
    waker: AtomicWaker,
    slots: [UnsafeCell<Option<Node<T>>>; 3],
    head: AtomicUsize,
    ring: Box<[UnsafeCell<Option<Box<T>>>]>,
}

// SAFETY: frames move from the producer to the consumer through atomics with
// release/acquire ordering; each ring slot is written only by the producer while it is
// outside [head, tail) and read only by the consumer while inside it; each of the three
// snapshot slots is touched only by the side whose index names it (`back`: producer,
// `front`: consumer, the shared one by nobody until a `swap` hands it over), and `back`
// and `front` themselves are touched by one side each. So `T: Send` suffices.
unsafe impl<T: Send> Send for Mailbox<T> {}
// SAFETY: see above; shared access follows the single-producer/single-consumer contract.
unsafe impl<T: Send> Sync for Mailbox<T> {}

impl<T> std::fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("capacity", &self.ring.len())
            .field("flags", &self.flags.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T: Send> Mailbox<T> {
    /// A mailbox whose reliable ring holds `reliable_capacity` frames (clamped to 1..=1024).
    #[must_use]
    pub fn new(reliable_capacity: usize) -> Self {
        let capacity = reliable_capacity.clamp(1, 1024);
        Self {
            flags: AtomicU8::new(0),
            shared: AtomicU8::new(1),
            back: UnsafeCell::new(0),
            front: UnsafeCell::new(2),
            tail: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            slots: [UnsafeCell::new(None), UnsafeCell::new(None), UnsafeCell::new(None)],
            head: AtomicUsize::new(0),
            ring: (0..capacity).map(|_| UnsafeCell::new(None)).collect(),
        }
    }

    // ----- producer side -----

    /// Publishes a snapshot, replacing an unsent older one. Producer side.
    pub fn publish_latest(&self, frame: T) -> Publish {
        if self.flags.load(Ordering::Acquire) & (CLOSED | CONSUMER_GONE) != 0 {
            return Publish::Closed;
        }
        let ring_tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: `back` is producer-only.
        let back = self.back.with_mut(|b| unsafe { *b });
        // SAFETY: slot `back` belongs to the producer until it is swapped in below.
        self.slots[usize::from(back)]
            .with_mut(|slot| unsafe { *slot = Some(Node { frame, ring_tail }) });
        let old = self.shared.swap(back | FRESH, Ordering::AcqRel);
        let result = if old & FRESH != 0 {
            // The consumer never took it: the slot is ours again, and the snapshot in it is
            // dropped at once, so that its payload can be reused for the next tick.
            drop(self.take_slot(old & INDEX));
            self.replaced.fetch_add(1, Ordering::Relaxed);
            Publish::Replaced
        } else {
            Publish::Stored
        };
        // SAFETY: `back` is producer-only.
        self.back.with_mut(|b| unsafe { *b = old & INDEX });
        self.waker.wake();
        result
    }

    /// Queues a frame that must be delivered. An unsent snapshot goes into the ring first
    /// (order is kept). Producer side.
    ///
    /// # Errors
    /// [`Overflow`] when the ring is full: the mailbox is closed and marked overflowed.
    /// After `close` or `close_consumer` the frame is dropped and `Ok` returned.
    pub fn push_reliable(&self, frame: T) -> Result<(), Overflow> {
        if self.flags.load(Ordering::Acquire) & (CLOSED | CONSUMER_GONE) != 0 {
            return Ok(());
        }
        if self.shared.load(Ordering::Acquire) & FRESH != 0 {
            // Take the unsent snapshot back: swap in our (empty) slot, not fresh.
            // SAFETY: `back` is producer-only.
            let back = self.back.with_mut(|b| unsafe { *b });
            let old = self.shared.swap(back, Ordering::AcqRel);
            // SAFETY: `back` is producer-only.
            self.back.with_mut(|b| unsafe { *b = old & INDEX });
            if let Some(node) = self.take_slot(old & INDEX) {
                if self.free_slots() >= 2 {
                    self.push_ring(Box::new(node.frame));
                } else {
                    self.replaced.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if self.free_slots() == 0 {
            self.flags.fetch_or(OVERFLOWED | CLOSED, Ordering::AcqRel);
            self.waker.wake();
            return Err(Overflow);
        }
        self.push_ring(Box::new(frame));
        self.waker.wake();
        Ok(())
    }

    /// Empties slot `index`, which the caller owns (its index is the caller's `back` or
    /// `front`, or was just swapped out of `shared` by the caller).
    fn take_slot(&self, index: u8) -> Option<Node<T>> {
        // SAFETY: the caller owns the slot (see above).
        self.slots[usize::from(index)].with_mut(|slot| unsafe { (*slot).take() })
    }

    /// No more frames: the consumer drains what is queued, then sees the end. Producer side.
    pub fn close(&self) {
        self.flags.fetch_or(CLOSED, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Whether the consumer has gone away ([`Mailbox::close_consumer`]).
    #[must_use]
    pub fn is_consumer_gone(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CONSUMER_GONE != 0
    }

    fn free_slots(&self) -> usize {
        let used =
            self.tail.load(Ordering::Relaxed).wrapping_sub(self.head.load(Ordering::Acquire));
        self.ring.len().saturating_sub(used)
    }

    /// Producer only, with a free slot checked by the caller.
    fn push_ring(&self, frame: Box<T>) {
        let tail = self.tail.load(Ordering::Relaxed);
        let slot = &self.ring[tail % self.ring.len()];
        // SAFETY: the slot at `tail` is outside [head, tail): the consumer does not touch it.
        slot.with_mut(|p| unsafe { *p = Some(frame) });
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
    }

    // ----- consumer side -----

    /// The next frame, if one is waiting: reliable frames and snapshots in production
    /// order. Consumer side.
    pub fn try_recv(&self) -> Option<T> {
        // SAFETY: `front` is consumer-only.
        let front = self.front.with_mut(|f| unsafe { *f });
        // SAFETY: slot `front` belongs to the consumer.
        let held = self.slots[usize::from(front)]
            .with_mut(|slot| unsafe { (*slot).as_ref().map(|n| n.ring_tail) });
        if let Some(ring_tail) = held {
            // A snapshot taken earlier waits for the ring frames pushed before it.
            if self.head.load(Ordering::Relaxed) < ring_tail
                && let Some(frame) = self.pop_ring()
            {
                return Some(frame);
            }
            return self.take_slot(front).map(|n| n.frame);
        }
        if let Some(frame) = self.pop_ring() {
            return Some(frame);
        }
        if self.shared.load(Ordering::Acquire) & FRESH == 0 {
            return None;
        }
        // Our slot is empty: hand it over for the fresh one.
        let old = self.shared.swap(front, Ordering::AcqRel);
        let front = old & INDEX;
        // SAFETY: `front` is consumer-only.
        self.front.with_mut(|f| unsafe { *f = front });
        if old & FRESH == 0 {
            // The producer took the snapshot back into the ring meanwhile.
            return self.pop_ring();
        }
        // SAFETY: slot `front` is the consumer's now.
        let ring_tail = self.slots[usize::from(front)]
            .with_mut(|slot| unsafe { (*slot).as_ref().map(|n| n.ring_tail) })?;
        if self.head.load(Ordering::Relaxed) < ring_tail
            && let Some(frame) = self.pop_ring()
        {
            // Reliable frames pushed before this snapshot go first; it waits in our slot.
            return Some(frame);
        }
        self.take_slot(front).map(|n| n.frame)
    }

    /// Async receive: `Ready(Some(frame))`, `Ready(None)` once closed and drained, else
    /// `Pending` with the waker registered. Consumer side.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(frame) = self.try_recv() {
            return Poll::Ready(Some(frame));
        }
        if self.is_closed() {
            return Poll::Ready(self.try_recv());
        }
        self.waker.register(cx.waker());
        if let Some(frame) = self.try_recv() {
            return Poll::Ready(Some(frame));
        }
        if self.is_closed() {
            return Poll::Ready(self.try_recv());
        }
        Poll::Pending
    }

    /// The writer is gone: the producer will see [`Mailbox::is_consumer_gone`] and drop the
    /// subscriber. Consumer side.
    pub fn close_consumer(&self) {
        self.flags.fetch_or(CONSUMER_GONE, Ordering::AcqRel);
    }

    fn pop_ring(&self) -> Option<T> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let slot = &self.ring[head % self.ring.len()];
        // SAFETY: `head` is inside [head, tail): the producer published it (release on
        // tail, acquire above) and will not touch it until we advance head.
        let frame = slot.with_mut(|p| unsafe { (*p).take() });
        self.head.store(head.wrapping_add(1), Ordering::Release);
        frame.map(|b| *b)
    }

    // ----- either side -----

    /// Closed by the producer (or by overflow).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Closed because the reliable ring overflowed.
    #[must_use]
    pub fn is_overflowed(&self) -> bool {
        self.flags.load(Ordering::Acquire) & OVERFLOWED != 0
    }

    /// Snapshots replaced before they were sent.
    #[must_use]
    pub fn replaced_count(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }
}

impl<T> Drop for Mailbox<T> {
    fn drop(&mut self) {
        for slot in &self.ring {
            // SAFETY: `&mut self`: exclusive access.
            slot.with_mut(|p| unsafe { (*p).take() });
        }
        for slot in &self.slots {
            // SAFETY: `&mut self`: exclusive access.
            slot.with_mut(|p| unsafe { (*p).take() });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
