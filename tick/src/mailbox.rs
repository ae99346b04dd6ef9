//! The subscriber mailbox: the only channel from a tick thread to a subscriber's writer.
//!
//! One producer (the tick thread) and one consumer (the writer task). Two parts:
//! - a **latest slot** (`AtomicPtr`) for snapshots: a newer snapshot replaces an unsent
//!   one, so a slow reader holds one frame and never slows the match. Both sides `swap`
//!   the pointer, so whoever swaps a frame out owns it: no use-after-free, no double free.
//! - a **reliable ring** (bounded SPSC) for frames that must not be lost (joined, match
//!   end, stopped). A full ring marks the mailbox overflowed and closed: the I/O side then
//!   closes that socket.
//!
//! Order is kept: pushing a reliable frame first moves an unsent snapshot into the ring,
//! and each snapshot remembers the ring position at its publication, so the consumer
//! delivers ring frames pushed before a snapshot ahead of it. The consumer is woken
//! through an [`AtomicWaker`]. Nothing here blocks, and nothing allocates after
//! construction except the boxes that carry frames.

use std::ptr;
use std::task::{Context, Poll};

use crate::sync::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use crate::waker::AtomicWaker;

/// Reliable ring capacity per subscriber unless configured otherwise.
pub const DEFAULT_RELIABLE_CAPACITY: usize = 8;

const CLOSED: u8 = 0b001;
const OVERFLOWED: u8 = 0b010;
const CONSUMER_GONE: u8 = 0b100;

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
pub struct Mailbox<T> {
    latest: AtomicPtr<Node<T>>,
    ring: Box<[UnsafeCell<Option<Box<T>>>]>,
    head: AtomicUsize,
    tail: AtomicUsize,
    /// Consumer-only: a snapshot taken from `latest` that must wait for older ring frames.
    held: UnsafeCell<Option<Box<Node<T>>>>,
    flags: AtomicU8,
    replaced: AtomicU64,
    waker: AtomicWaker,
}

// SAFETY: frames move from the producer to the consumer through atomics with
// release/acquire ordering; each ring slot is written only by the producer while it is
// outside [head, tail) and read only by the consumer while inside it; `held` is touched
// only by the single consumer. So `T: Send` suffices.
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
            latest: AtomicPtr::new(ptr::null_mut()),
            ring: (0..capacity).map(|_| UnsafeCell::new(None)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            held: UnsafeCell::new(None),
            flags: AtomicU8::new(0),
            replaced: AtomicU64::new(0),
            waker: AtomicWaker::new(),
        }
    }

    // ----- producer side -----

    /// Publishes a snapshot, replacing an unsent older one. Producer side.
    pub fn publish_latest(&self, frame: T) -> Publish {
        if self.flags.load(Ordering::Acquire) & (CLOSED | CONSUMER_GONE) != 0 {
            return Publish::Closed;
        }
        let ring_tail = self.tail.load(Ordering::Relaxed);
        let node = Box::into_raw(Box::new(Node { frame, ring_tail }));
        let old = self.latest.swap(node, Ordering::AcqRel);
        let result = if old.is_null() {
            Publish::Stored
        } else {
            // SAFETY: a non-null pointer swapped out of `latest` came from Box::into_raw and
            // is owned by whoever swapped it out: us.
            drop(unsafe { Box::from_raw(old) });
            self.replaced.fetch_add(1, Ordering::Relaxed);
            Publish::Replaced
        };
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
        let old = self.latest.swap(ptr::null_mut(), Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: swapped out of `latest`, so owned here (see `publish_latest`).
            let node = unsafe { Box::from_raw(old) };
            if self.free_slots() >= 2 {
                self.push_ring(Box::new(node.frame));
            } else {
                self.replaced.fetch_add(1, Ordering::Relaxed);
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
        // SAFETY: `held` belongs to the single consumer.
        let held_tail = self.held.with_mut(|p| unsafe { (*p).as_ref().map(|n| n.ring_tail) });
        if let Some(ring_tail) = held_tail {
            if self.head.load(Ordering::Relaxed) < ring_tail
                && let Some(frame) = self.pop_ring()
            {
                return Some(frame);
            }
            // SAFETY: as above.
            return self.held.with_mut(|p| unsafe { (*p).take() }).map(|n| n.frame);
        }
        if let Some(frame) = self.pop_ring() {
            return Some(frame);
        }
        let taken = self.latest.swap(ptr::null_mut(), Ordering::AcqRel);
        if taken.is_null() {
            return None;
        }
        // SAFETY: swapped out of `latest`, so owned here.
        let node = unsafe { Box::from_raw(taken) };
        if self.head.load(Ordering::Relaxed) < node.ring_tail
            && let Some(frame) = self.pop_ring()
        {
            // Reliable frames pushed before this snapshot go first; keep it for later.
            // SAFETY: `held` belongs to the single consumer.
            self.held.with_mut(|p| unsafe { *p = Some(node) });
            return Some(frame);
        }
        Some(node.frame)
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
        let latest = self.latest.swap(ptr::null_mut(), Ordering::AcqRel);
        if !latest.is_null() {
            // SAFETY: `&mut self`: nobody else can hold or swap this pointer.
            drop(unsafe { Box::from_raw(latest) });
        }
        for slot in &self.ring {
            // SAFETY: `&mut self`: exclusive access.
            slot.with_mut(|p| unsafe { (*p).take() });
        }
        // SAFETY: `&mut self`: exclusive access.
        self.held.with_mut(|p| unsafe { (*p).take() });
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
