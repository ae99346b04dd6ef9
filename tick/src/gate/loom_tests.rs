//! loom model of the gate: a poll racing the branch's event (run with
//! `RUSTFLAGS="--cfg loom" cargo test -p pylon-tick --release loom`).

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use super::Gates;
use crate::waker::AtomicWaker;

/// The branch's source: an event flag and the waker the branch registered.
struct Source {
    fired: AtomicBool,
    waker: AtomicWaker,
}

/// The outer task's waker: records that it was woken.
struct Outer(AtomicBool);

impl Wake for Outer {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// However the event and the polls interleave, the wake is never lost: either a poll
/// sees the event, or the outer task was woken and its next poll sees it.
#[test]
fn loom_gate_never_loses_a_wake() {
    loom::model(|| {
        let gate = Gates::<2>::new();
        let source = Arc::new(Source { fired: AtomicBool::new(false), waker: AtomicWaker::new() });
        let outer = Arc::new(Outer(AtomicBool::new(false)));
        let outer_waker = Waker::from(Arc::clone(&outer));
        let cx = Context::from_waker(&outer_waker);
        let branch = |cx: &mut Context<'_>| {
            source.waker.register(cx.waker());
            if source.fired.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
        };

        let firing = Arc::clone(&source);
        let event = thread::spawn(move || {
            firing.fired.store(true, Ordering::Release);
            firing.waker.wake();
        });
        // Branch 1 is the one watched; branch 0 (never woken) shares the registration.
        gate.register(&cx);
        let _ = gate.poll(0, |_| Poll::<()>::Pending);
        let mut ready = gate.poll(1, branch).is_ready();
        if !ready {
            // A second poll, racing the event: skipped or not, it must not lose it.
            gate.register(&cx);
            let _ = gate.poll(0, |_| Poll::<()>::Pending);
            ready = gate.poll(1, branch).is_ready();
        }
        event.join().unwrap();
        if !ready {
            assert!(outer.0.swap(false, Ordering::AcqRel), "the event woke the outer task");
            gate.register(&cx);
            assert!(gate.poll(1, branch).is_ready(), "and the next poll sees it");
        }
    });
}
