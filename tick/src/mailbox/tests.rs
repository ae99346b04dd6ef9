//! Unit tests of the mailbox on std threads (the loom models are in `loom_tests.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::*;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum F {
    Snap(u32),
    Rel(u32),
}

/// A newer snapshot replaces an unsent one, and the replacement is counted.
#[test]
fn latest_replaces_unsent() {
    let m = Mailbox::new(4);
    assert_eq!(m.publish_latest(F::Snap(1)), Publish::Stored);
    assert_eq!(m.publish_latest(F::Snap(2)), Publish::Replaced);
    assert_eq!(m.replaced_count(), 1);
    assert_eq!(m.try_recv(), Some(F::Snap(2)));
    assert_eq!(m.try_recv(), None);
}

/// Reliable frames come out in order, ahead of a later snapshot, and an earlier unsent
/// snapshot comes out ahead of a later reliable frame.
#[test]
fn production_order_is_kept() {
    let m = Mailbox::new(8);
    m.push_reliable(F::Rel(1)).unwrap();
    m.push_reliable(F::Rel(2)).unwrap();
    m.publish_latest(F::Snap(3));
    m.push_reliable(F::Rel(4)).unwrap();
    m.publish_latest(F::Snap(5));
    let got: Vec<_> = std::iter::from_fn(|| m.try_recv()).collect();
    assert_eq!(got, vec![F::Rel(1), F::Rel(2), F::Snap(3), F::Rel(4), F::Snap(5)]);
}

/// A snapshot the consumer takes while older reliable frames are still queued waits for
/// them (the consumer-side hold).
#[test]
fn held_snapshot_waits_for_older_reliable() {
    let m = Mailbox::new(8);
    m.push_reliable(F::Rel(1)).unwrap();
    m.publish_latest(F::Snap(2));
    // Simulate the race: the consumer takes the snapshot before draining the ring.
    assert_eq!(m.try_recv(), Some(F::Rel(1)));
    assert_eq!(m.try_recv(), Some(F::Snap(2)));
    m.push_reliable(F::Rel(3)).unwrap();
    m.push_reliable(F::Rel(4)).unwrap();
    m.publish_latest(F::Snap(5));
    m.push_reliable(F::Rel(6)).unwrap();
    let got: Vec<_> = std::iter::from_fn(|| m.try_recv()).collect();
    assert_eq!(got, vec![F::Rel(3), F::Rel(4), F::Snap(5), F::Rel(6)]);
}

/// A full ring closes the mailbox as overflowed; frames already queued are still delivered.
#[test]
fn overflow_closes() {
    let m = Mailbox::new(2);
    m.push_reliable(F::Rel(1)).unwrap();
    m.push_reliable(F::Rel(2)).unwrap();
    assert_eq!(m.push_reliable(F::Rel(3)), Err(Overflow));
    assert!(m.is_overflowed() && m.is_closed());
    assert_eq!(m.publish_latest(F::Snap(9)), Publish::Closed);
    assert_eq!(m.try_recv(), Some(F::Rel(1)));
    assert_eq!(m.try_recv(), Some(F::Rel(2)));
    assert_eq!(m.try_recv(), None);
}

/// With one free slot, an unsent snapshot is dropped in favour of the reliable frame.
#[test]
fn reliable_wins_the_last_slot() {
    let m = Mailbox::new(2);
    m.push_reliable(F::Rel(1)).unwrap();
    m.publish_latest(F::Snap(2));
    m.push_reliable(F::Rel(3)).unwrap();
    assert_eq!(m.replaced_count(), 1);
    let got: Vec<_> = std::iter::from_fn(|| m.try_recv()).collect();
    assert_eq!(got, vec![F::Rel(1), F::Rel(3)]);
}

/// The consumer leaving is visible to the producer, and later frames are dropped.
#[test]
fn consumer_gone_is_seen() {
    let m = Mailbox::new(2);
    assert!(!m.is_consumer_gone());
    m.close_consumer();
    assert!(m.is_consumer_gone());
    assert_eq!(m.publish_latest(F::Snap(1)), Publish::Closed);
    assert_eq!(m.push_reliable(F::Rel(1)), Ok(()));
    assert_eq!(m.try_recv(), None);
}

/// Frames still inside a dropped mailbox are freed (no leak).
#[test]
fn drop_frees_frames() {
    let probe = Arc::new(());
    let m = Mailbox::new(4);
    m.push_reliable(probe.clone()).unwrap();
    m.publish_latest(probe.clone());
    m.push_reliable(probe.clone()).unwrap();
    m.publish_latest(probe.clone());
    assert_eq!(Arc::strong_count(&probe), 5, "two in the ring, one flushed snapshot, one latest");
    drop(m);
    assert_eq!(Arc::strong_count(&probe), 1);
}

struct CountWake(AtomicUsize);

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `poll_recv` registers its waker when empty, a publish wakes it, and a close ends the
/// stream after the queued frames.
#[test]
fn poll_recv_wakes_and_ends() {
    let m = Mailbox::new(4);
    let counter = Arc::new(CountWake(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(m.poll_recv(&mut cx), Poll::Pending);
    m.publish_latest(F::Snap(1));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(m.poll_recv(&mut cx), Poll::Ready(Some(F::Snap(1))));
    assert_eq!(m.poll_recv(&mut cx), Poll::Pending);
    m.push_reliable(F::Rel(2)).unwrap();
    m.close();
    assert_eq!(m.poll_recv(&mut cx), Poll::Ready(Some(F::Rel(2))));
    assert_eq!(m.poll_recv(&mut cx), Poll::Ready(None));
}

/// Two threads, 100,000 frames: reliable frames all arrive in order, snapshots arrive in
/// increasing order, and every reliable frame precedes snapshots published after it.
#[test]
fn two_thread_stress() {
    const N: u32 = 100_000;
    let m = Arc::new(Mailbox::new(1024));
    let producer = {
        let m = m.clone();
        std::thread::spawn(move || {
            for i in 1..=N {
                if i % 100 == 0 {
                    // Back off instead of overflowing: the test checks order, not overflow.
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while m.free_slots() < 2 {
                        assert!(Instant::now() < deadline, "consumer stalled");
                        std::thread::yield_now();
                    }
                    m.push_reliable(F::Rel(i)).unwrap();
                } else {
                    m.publish_latest(F::Snap(i));
                }
            }
            m.close();
        })
    };
    let (mut last, mut reliable) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Read `closed` first: closed and then empty means fully drained.
        let closed = m.is_closed();
        match m.try_recv() {
            Some(F::Snap(i)) => {
                assert!(i > last, "snapshot {i} after {last}");
                last = i;
            }
            Some(F::Rel(i)) => {
                assert!(i > last, "reliable {i} after {last}");
                last = i;
                reliable += 1;
            }
            None if closed => break,
            None => {
                assert!(Instant::now() < deadline, "stress test timed out");
                std::thread::yield_now();
            }
        }
    }
    producer.join().unwrap();
    assert_eq!(reliable, N / 100, "every reliable frame arrived");
}
