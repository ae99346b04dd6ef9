//! loom models of the mailbox: every interleaving of one producer and one consumer (run
//! with `RUSTFLAGS="--cfg loom" cargo test -p pylon-tick --release loom`).

use std::task::{Context, Poll};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use super::*;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum F {
    Snap(u32),
    Rel(u32),
}

fn n(f: F) -> u32 {
    match f {
        F::Snap(i) | F::Rel(i) => i,
    }
}

/// Two snapshots published while the consumer takes: the consumer never sees an older
/// snapshot after a newer one, and every frame is freed exactly once (loom checks leaks
/// and double frees of the boxes).
#[test]
fn loom_latest_replace_vs_take() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(2));
        let p = m.clone();
        let producer = thread::spawn(move || {
            p.publish_latest(F::Snap(1));
            p.publish_latest(F::Snap(2));
        });
        let first = m.try_recv();
        let second = m.try_recv();
        producer.join().unwrap();
        let third = m.try_recv();
        let seen: Vec<u32> = [first, second, third].into_iter().flatten().map(n).collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&2), "the newest snapshot is always delivered");
    });
}

/// The triple buffer cycling: three publishes against two takes, so every slot index
/// passes through both sides: snapshots come out in order, the newest always arrives, and
/// no slot is ever touched by both threads at once (loom checks the cells).
#[test]
fn loom_triple_buffer_cycles() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(2));
        let p = m.clone();
        let producer = thread::spawn(move || {
            for i in 1..=3 {
                p.publish_latest(F::Snap(i));
            }
        });
        let first = m.try_recv();
        let second = m.try_recv();
        producer.join().unwrap();
        let third = m.try_recv();
        let seen: Vec<u32> = [first, second, third].into_iter().flatten().map(n).collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&3), "the newest snapshot is always delivered");
    });
}

/// A reliable push takes an unsent snapshot back into the ring while the consumer may be
/// taking it: the snapshot is delivered exactly once, before the reliable frame, and
/// every frame is dropped exactly once (loom's `Arc` reports leaks).
#[test]
fn loom_reliable_reclaims_snapshot_under_take() {
    loom::model(|| {
        let probe = Arc::new(());
        let m = Arc::new(Mailbox::new(4));
        let p = m.clone();
        let q = probe.clone();
        let producer = thread::spawn(move || {
            p.publish_latest((F::Snap(1), q.clone()));
            p.push_reliable((F::Rel(2), q.clone())).unwrap();
            p.publish_latest((F::Snap(3), q));
        });
        let mut seen = Vec::new();
        seen.extend(m.try_recv().map(|(f, _)| f));
        producer.join().unwrap();
        while let Some((f, _)) = m.try_recv() {
            seen.push(f);
        }
        assert_eq!(seen, vec![F::Snap(1), F::Rel(2), F::Snap(3)]);
        drop(m);
        assert_eq!(Arc::strong_count(&probe), 1, "every frame dropped");
    });
}

/// Two publishes then a reliable push, against a take: the replaced snapshot never comes
/// out after the newer one, the newest one always does, and every frame is dropped
/// exactly once.
#[test]
fn loom_replaced_snapshot_never_resurfaces() {
    loom::model(|| {
        let probe = Arc::new(());
        let m = Arc::new(Mailbox::new(4));
        let p = m.clone();
        let q = probe.clone();
        let producer = thread::spawn(move || {
            p.publish_latest((F::Snap(1), q.clone()));
            p.publish_latest((F::Snap(2), q.clone()));
            p.push_reliable((F::Rel(3), q)).unwrap();
        });
        let mut seen = Vec::new();
        seen.extend(m.try_recv().map(|(f, _)| f));
        producer.join().unwrap();
        while let Some((f, _)) = m.try_recv() {
            seen.push(f);
        }
        let order: Vec<u32> = seen.iter().copied().map(n).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&F::Rel(3)), "{seen:?}");
        assert!(seen.contains(&F::Snap(2)), "the newest snapshot is delivered: {seen:?}");
        drop(m);
        assert_eq!(Arc::strong_count(&probe), 1, "every frame dropped");
    });
}

/// The ordering rule under concurrency: publish S1 then push R2, against a consumer
/// taking twice and then draining: the order seen is always S1 (if delivered) then R2.
#[test]
fn loom_order_snapshot_then_reliable() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(4));
        let p = m.clone();
        let producer = thread::spawn(move || {
            p.push_reliable(F::Rel(1)).unwrap();
            p.publish_latest(F::Snap(2));
            p.push_reliable(F::Rel(3)).unwrap();
        });
        let mut seen = Vec::new();
        seen.extend(m.try_recv());
        seen.extend(m.try_recv());
        producer.join().unwrap();
        while let Some(f) = m.try_recv() {
            seen.push(f);
        }
        let order: Vec<u32> = seen.iter().copied().map(n).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert!(seen.contains(&F::Rel(1)) && seen.contains(&F::Rel(3)), "{seen:?}");
    });
}

struct Flag(AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// No lost wake-up: if `poll_recv` returns Pending, the producer's publish wakes it.
#[test]
fn loom_no_lost_wakeup() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(2));
        let p = m.clone();
        let producer = thread::spawn(move || {
            p.publish_latest(F::Snap(1));
        });
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let polled = m.poll_recv(&mut cx);
        producer.join().unwrap();
        match polled {
            Poll::Ready(frame) => assert_eq!(frame, Some(F::Snap(1))),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "pending but never woken");
                assert_eq!(m.try_recv(), Some(F::Snap(1)));
            }
        }
    });
}

/// Close races a receive: the consumer drains every reliable frame and then sees the end.
#[test]
fn loom_close_after_drain() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(2));
        let p = m.clone();
        let producer = thread::spawn(move || {
            p.push_reliable(F::Rel(1)).unwrap();
            p.close();
        });
        let mut got = Vec::new();
        loop {
            let closed = m.is_closed();
            match m.try_recv() {
                Some(f) => got.push(f),
                None if closed => break,
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, vec![F::Rel(1)]);
    });
}

/// The input receipt pattern (a one-slot mailbox: the tick thread pushes one verdict and
/// closes; the sender polls): a poll never misses the wake-up, and the verdict is always
/// seen before the end, never lost to the close.
#[test]
fn loom_receipt_verdict_then_close() {
    loom::model(|| {
        let m = Arc::new(Mailbox::new(1));
        let p = m.clone();
        let producer = thread::spawn(move || {
            p.push_reliable(F::Rel(7)).unwrap();
            p.close();
        });
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = std::task::Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let polled = m.poll_recv(&mut cx);
        producer.join().unwrap();
        match polled {
            Poll::Ready(frame) => assert_eq!(frame, Some(F::Rel(7)), "the verdict, not the end"),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "pending but never woken");
                assert_eq!(m.try_recv(), Some(F::Rel(7)));
            }
        }
        assert_eq!(m.try_recv(), None);
        assert!(m.is_closed());
    });
}
