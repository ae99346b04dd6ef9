//! The real pool: OS threads, crossbeam channels, mailboxes. Waits poll with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{arena, joined_key, json};
use pylon_shard::{Auth, Outgoing, StopReason};
use pylon_tick::mailbox::DEFAULT_RELIABLE_CAPACITY;
use pylon_tick::{InputFrom, Mailbox, MonotonicClock, ShardState, TickConfig, TickPool};

fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

fn pool(threads: usize) -> TickPool {
    let config = TickConfig { threads, ..TickConfig::default() };
    TickPool::start(&config, Arc::new(MonotonicClock::new())).unwrap()
}

/// A subscriber joins over the channel, sends an input, and receives snapshots with an
/// advancing tick and the input's ack.
#[test]
fn join_input_snapshot_ack_round_trip() {
    let pool = pool(2);
    let handle = pool.spawn(arena(50)).unwrap();
    let mailbox = Arc::new(Mailbox::new(DEFAULT_RELIABLE_CAPACITY));
    let auth = Auth { user_id: "ada".into(), is_admin: false };
    handle.join("ada".into(), auth, mailbox.clone()).unwrap();
    poll_until("joined", || {
        matches!(mailbox.try_recv(), Some(Outgoing::Joined { .. })).then_some(())
    });
    handle.input(InputFrom::Sid("ada".into()), Some(41), json(r#"{"dx":1,"dy":0}"#)).unwrap();
    let (tick, ack) = poll_until("acked snapshot", || match mailbox.try_recv() {
        Some(Outgoing::Snapshot(s)) if s.ack == Some(41) => Some((s.tick, s.ack)),
        _ => None,
    });
    assert_eq!(ack, Some(41));
    let later = poll_until("a later snapshot", || match mailbox.try_recv() {
        Some(Outgoing::Snapshot(s)) if s.tick > tick => Some(s.tick),
        _ => None,
    });
    assert!(later > tick);
    assert!(handle.status().tick() >= later);
    assert_eq!(handle.status().subscribers(), 1);
}

/// New shards go to the least-loaded thread: four equal shards on two threads split 2/2.
#[test]
fn placement_balances_threads() {
    let pool = pool(2);
    let handles: Vec<_> = (0..4).map(|_| pool.spawn(arena(20)).unwrap()).collect();
    poll_until("all running", || {
        handles.iter().all(|h| h.status().state() == ShardState::Running).then_some(())
    });
    let per_thread: Vec<u64> =
        pool.metrics().iter().map(|m| m.shards.load(Ordering::Relaxed)).collect();
    assert_eq!(per_thread, vec![2, 2]);
}

/// Shutdown stops every match: subscribers get `Stopped(Shutdown)` and closed mailboxes.
#[test]
fn shutdown_stops_matches() {
    let pool = pool(1);
    let handle = pool.spawn(arena(20)).unwrap();
    let mailbox = Arc::new(Mailbox::new(DEFAULT_RELIABLE_CAPACITY));
    handle
        .join("a".into(), Auth { user_id: "a".into(), is_admin: false }, mailbox.clone())
        .unwrap();
    poll_until("joined", || (handle.status().subscribers() == 1).then_some(()));
    joined_key(&mailbox);
    pool.shutdown(Duration::from_secs(5));
    let frames = common::drain(&mailbox);
    assert!(matches!(frames.last(), Some(Outgoing::Stopped(StopReason::Shutdown))), "{frames:?}");
    assert!(mailbox.is_closed());
    assert_eq!(handle.status().state(), ShardState::Stopped);
}

/// A full command channel refuses instead of blocking the sender, and counts it.
#[test]
fn full_channel_rejects_without_blocking() {
    let config = TickConfig { threads: 1, command_capacity: 4, ..TickConfig::default() };
    let pool = TickPool::start(&config, Arc::new(MonotonicClock::new())).unwrap();
    let handle = pool.spawn(arena(1)).unwrap();
    let mut refused = 0;
    let started = Instant::now();
    for seq in 0..100_000 {
        if handle.input(InputFrom::Sid("nobody".into()), Some(seq), json("{}")).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "a 4-slot channel cannot take 100,000 inputs at once");
    assert!(started.elapsed() < Duration::from_secs(10), "sending never blocked");
    assert_eq!(pool.metrics()[0].commands_rejected.load(Ordering::Relaxed), refused);
}
