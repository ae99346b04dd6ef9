//! [`Gate`]: a poll that runs only after its own waker fired.
//!
//! A socket task waits on several things at once (its mailbox, the socket, timers,
//! shutdown, the session's end), and every time it wakes, a plain `select!` polls all of
//! them again: each poll re-registers a waker (a lock inside tokio's I/O driver for the
//! socket, one inside `Notify` for shutdown, shared by every socket of the process). The
//! common wake is a new frame in the mailbox, and then nothing else can be ready. A gate
//! gives a branch its own waker that records "something happened here" before passing
//! the wake on, and skips the branch's poll while nothing did: the branch costs one atomic
//! swap instead of a registration.
//!
//! The branch's future or stream must keep its registration between polls (a pinned
//! future, a socket, timers held by the caller), since a skipped poll registers nothing
//! new.
//!
//! Lock-free: a flag and an [`AtomicWaker`]; a wake is never lost (the loom model in
//! `gate/loom_tests.rs` checks every interleaving of a poll and a wake).

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::sync::{AtomicBool, Ordering};
use crate::waker::AtomicWaker;

struct Signal {
    /// Set by the gate's waker, cleared before each poll of the branch.
    woken: AtomicBool,
    /// The task that polls the gate.
    outer: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A swap, not a store: an RMW is ordered against the poll's swap (loom, with a
        // plain store, finds an execution where the poll misses it).
        self.woken.swap(true, Ordering::AcqRel);
        self.outer.wake();
    }
}

/// One branch's gate. Starts open (the first poll always runs).
pub struct Gate {
    signal: Arc<Signal>,
    waker: Waker,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Gate {
    /// An open gate.
    #[must_use]
    pub fn new() -> Self {
        let signal = Arc::new(Signal { woken: AtomicBool::new(true), outer: AtomicWaker::new() });
        let waker = Waker::from(Arc::clone(&signal));
        Self { signal, waker }
    }

    /// Runs `poll` with the gate's waker if the branch was woken since its last
    /// `Pending`, and answers `Pending` without running it otherwise. A `Ready` leaves
    /// the gate open (a stream may have more to give at once).
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.signal.outer.register(cx.waker());
        // Cleared before the poll: a wake during or after it sets it again, so none is lost.
        if !self.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let ready = poll(&mut Context::from_waker(&self.waker));
        if ready.is_ready() {
            self.signal.woken.store(true, Ordering::Release);
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
        let gate = Gate::new();
        let polls = AtomicUsize::new(0);
        let saved: std::sync::Mutex<Option<Waker>> = std::sync::Mutex::new(None);
        let outer_woken = Arc::new(Flag(AtomicBool::new(false)));
        let outer = Waker::from(Arc::clone(&outer_woken));
        let mut cx = Context::from_waker(&outer);
        let branch = |cx: &mut Context<'_>| {
            polls.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut slot) = saved.lock() {
                *slot = Some(cx.waker().clone());
            }
            Poll::<()>::Pending
        };
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "the second poll was skipped");
        let waker = saved.lock().ok().and_then(|mut slot| slot.take());
        waker.expect("the branch registered the gate's waker").wake();
        assert!(outer_woken.0.load(Ordering::Acquire), "the outer task was woken");
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2, "the wake let the poll through");
    }

    /// A ready branch stays open: it is polled again next time.
    #[test]
    fn ready_keeps_it_open() {
        let gate = Gate::new();
        let outer = Waker::from(Arc::new(Flag(AtomicBool::new(false))));
        let mut cx = Context::from_waker(&outer);
        assert_eq!(gate.poll(&mut cx, |_| Poll::Ready(1)), Poll::Ready(1));
        assert_eq!(gate.poll(&mut cx, |_| Poll::Ready(2)), Poll::Ready(2));
    }

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }
}
