//! [`Gates`]: select branches polled only after their own wakers fired.
//!
//! A socket task waits on several things at once (its mailbox, the socket, timers,
//! shutdown, the session's end), and every time it wakes, a plain `select!` polls all of
//! them again: each poll re-registers a waker (a lock inside tokio's I/O driver for the
//! socket, one inside `Notify` for shutdown, shared by every socket of the process). The
//! common wake is a new frame in the mailbox, and then nothing else can be ready. A gate
//! gives a branch its own waker that records "something happened here" before passing
//! the wake on to the task, and skips the branch's poll while nothing did: the branch
//! costs one atomic swap instead of a registration. The `N` gates of one task share one
//! registration of the task's waker ([`Gates::register`], once per poll of the task).
//!
//! The branch's future or stream must keep its registration between polls (a pinned
//! future, a socket, timers held by the caller), since a skipped poll registers nothing
//! new.
//!
//! Lock-free: a flag per branch and one [`AtomicWaker`]; a wake is never lost (the loom
//! model in `gate/loom_tests.rs` checks every interleaving of a poll and a wake).

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::sync::{AtomicBool, Ordering};
use crate::waker::AtomicWaker;

struct Shared<const N: usize> {
    /// Per branch: set by its waker, cleared before each poll of the branch.
    woken: [AtomicBool; N],
    /// The task that polls the gates.
    outer: AtomicWaker,
}

/// One branch's waker.
struct Branch<const N: usize> {
    shared: Arc<Shared<N>>,
    index: usize,
}

impl<const N: usize> Wake for Branch<N> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(woken) = self.shared.woken.get(self.index) {
            // A swap, not a store: an RMW is ordered against the poll's swap (loom, with
            // a plain store, finds an execution where the poll misses it).
            woken.swap(true, Ordering::AcqRel);
        }
        self.shared.outer.wake();
    }
}

/// The gates of one task's `N` branches. Each starts open (its first poll always runs).
pub struct Gates<const N: usize> {
    shared: Arc<Shared<N>>,
    wakers: [Waker; N],
}

impl<const N: usize> Default for Gates<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for Gates<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates").field("branches", &N).finish_non_exhaustive()
    }
}

impl<const N: usize> Gates<N> {
    /// `N` open gates.
    #[must_use]
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            woken: std::array::from_fn(|_| AtomicBool::new(true)),
            outer: AtomicWaker::new(),
        });
        let wakers = std::array::from_fn(|index| {
            Waker::from(Arc::new(Branch { shared: Arc::clone(&shared), index }))
        });
        Self { shared, wakers }
    }

    /// Registers the polling task's waker: call it in every poll of the task, before the
    /// branches' [`Gates::poll`]s.
    pub fn register(&self, cx: &Context<'_>) {
        self.shared.outer.register(cx.waker());
    }

    /// Runs `poll` with branch `index`'s waker if that branch was woken since its last
    /// `Pending`, and answers `Pending` without running it otherwise. A `Ready` leaves the
    /// gate open (a stream may have more to give at once). An `index` of `N` or more is
    /// a caller's bug: that branch is never polled.
    pub fn poll<T>(&self, index: usize, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        debug_assert!(index < N, "gate {index} of {N}");
        let (Some(woken), Some(waker)) = (self.shared.woken.get(index), self.wakers.get(index))
        else {
            return Poll::Pending;
        };
        // Cleared before the poll: a wake during or after it sets it again, so none is lost.
        if !woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let ready = poll(&mut Context::from_waker(waker));
        if ready.is_ready() {
            woken.swap(true, Ordering::AcqRel);
        }
        ready
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    use super::*;

    /// A branch that stays pending is polled once, then skipped until its own waker fires;
    /// the fire wakes the outer task and lets the next poll through.
    #[test]
    fn skips_until_woken() {
        let gate = Gates::<2>::new();
        let polls = AtomicUsize::new(0);
        let saved: std::sync::Mutex<Option<Waker>> = std::sync::Mutex::new(None);
        let outer_woken = Arc::new(Flag(AtomicBool::new(false)));
        let outer = Waker::from(Arc::clone(&outer_woken));
        let cx = Context::from_waker(&outer);
        let branch = |cx: &mut Context<'_>| {
            polls.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut slot) = saved.lock() {
                *slot = Some(cx.waker().clone());
            }
            Poll::<()>::Pending
        };
        gate.register(&cx);
        assert!(gate.poll(1, branch).is_pending());
        gate.register(&cx);
        assert!(gate.poll(1, branch).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "the second poll was skipped");
        let waker = saved.lock().ok().and_then(|mut slot| slot.take());
        waker.expect("the branch registered the gate's waker").wake();
        assert!(outer_woken.0.load(Ordering::Acquire), "the outer task was woken");
        gate.register(&cx);
        assert!(gate.poll(1, branch).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2, "the wake let the poll through");
        // Branch 0 never had a wake after its first poll: still skipped after one.
        assert!(gate.poll(0, branch).is_pending());
        assert!(gate.poll(0, branch).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 3, "branch 0 ran once, then was skipped");
    }

    /// A ready branch stays open: it is polled again next time.
    #[test]
    fn ready_keeps_it_open() {
        let gate = Gates::<1>::new();
        let outer = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        gate.register(&Context::from_waker(&outer));
        assert_eq!(gate.poll(0, |_| Poll::Ready(1)), Poll::Ready(1));
        assert_eq!(gate.poll(0, |_| Poll::Ready(2)), Poll::Ready(2));
    }

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }
}
