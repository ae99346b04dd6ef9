//! The scheduler on a fake clock: exact deadlines, bounded catch-up, event-driven steps,
//! idle removal, panic containment. No threads, no sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;

use common::{Boom, arena, drain, json};
use pylon_shard::games::tictactoe::TicTacToe;
use pylon_shard::{MatchConfig, Outgoing, Shard, StopReason};
use pylon_tick::{ShardState, Stepper, TickConfig};

const SEC: u64 = 1_000_000_000;

/// 10,000 ticks at 60 Hz land exactly on `start + k * 1e9 / 60`: no drift, even though
/// the period is not a whole number of nanoseconds.
#[test]
fn no_drift_over_ten_thousand_ticks() {
    // No subscriber here: keep the idle sweep from stopping the shard at 60 s.
    let config =
        TickConfig { idle_timeout: std::time::Duration::from_secs(3600), ..TickConfig::default() };
    let mut stepper = Stepper::new(&config, 5 * SEC);
    let (_, status) = stepper.spawn(arena(60));
    // Each shard gets a phase within its period; its grid starts one period before tick 1.
    let start = stepper.next_deadline().unwrap() - SEC / 60;
    assert!(start >= stepper.now() && start < stepper.now() + SEC / 60);
    for k in 1..=10_000_u64 {
        let deadline = stepper.next_deadline().unwrap();
        assert_eq!(deadline, start + k * SEC / 60, "deadline of tick {k}");
        stepper.run_until(deadline);
        assert_eq!(status.tick(), k);
    }
    assert_eq!(stepper.now() - start, 166_666_666_666, "10,000 / 60 s after the grid start");
    let lateness = stepper.metrics.lateness_us.snapshot();
    assert_eq!(lateness.max, 0, "every tick ran at its deadline");
    assert_eq!(stepper.metrics.skipped_ticks.load(Ordering::Relaxed), 0);
}

/// After a 1 s stall a 20 Hz shard runs at most `max_catch_up_ticks` ticks back to back,
/// counts the rest as skipped, and its next deadline is back on the original grid.
#[test]
fn bounded_catch_up_after_stall() {
    let config = TickConfig { max_catch_up_ticks: 3, ..TickConfig::default() };
    let mut stepper = Stepper::new(&config, 0);
    let (_, status) = stepper.spawn(arena(20));
    let start = stepper.next_deadline().unwrap() - SEC / 20;
    stepper.run_until(start + 10 * SEC / 20);
    assert_eq!(status.tick(), 10);
    stepper.stall(SEC);
    // Deadlines 11..=30 are all due 1.5 s after the grid start: 20 overdue, 3 run, 17 skipped.
    assert_eq!(status.tick(), 13);
    assert_eq!(stepper.metrics.skipped_ticks.load(Ordering::Relaxed), 17);
    let next = stepper.next_deadline().unwrap();
    assert!(next > stepper.now());
    assert_eq!((next - start) % (SEC / 20), 0, "still on the 20 Hz grid");
    assert_eq!(next, start + 31 * SEC / 20);
    stepper.run_until(next);
    assert_eq!(status.tick(), 14, "then one tick per deadline again");
}

/// An event-driven shard has no deadline: it steps when an input arrives, not with time.
#[test]
fn event_driven_steps_on_input_only() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let shard = Box::new(Shard::<TicTacToe>::new(&MatchConfig::default()).unwrap());
    let (id, status) = stepper.spawn(shard);
    assert_eq!(stepper.next_deadline(), None);
    let x = stepper.join(id, "x");
    let _o = stepper.join(id, "o");
    let key = common::joined_key(&x);
    let after_joins = status.tick();
    assert!(after_joins >= 1, "joins step an event-driven shard");
    stepper.run_until(10 * SEC);
    assert_eq!(status.tick(), after_joins, "time alone does not step it");
    stepper.input(id, key, 1, json(r#"{"cell":4}"#));
    assert_eq!(status.tick(), after_joins + 1);
}

/// A shard with no subscribers and no input is removed after the idle timeout; one with a
/// subscriber is kept.
#[test]
fn idle_shards_are_removed() {
    let config =
        TickConfig { idle_timeout: std::time::Duration::from_secs(5), ..TickConfig::default() };
    let mut stepper = Stepper::new(&config, 0);
    let (_, lonely) = stepper.spawn(arena(20));
    let (busy_id, busy) = stepper.spawn(arena(20));
    let _mailbox = stepper.join(busy_id, "a");
    stepper.run_until(7 * SEC);
    assert_eq!(lonely.state(), ShardState::Idle);
    assert_eq!(busy.state(), ShardState::Running);
    assert_eq!(stepper.shard_count(), 1);
}

/// A game that panics stops its own match with a `Stopped(Panicked)` frame; the other
/// match on the same thread keeps ticking.
#[test]
fn panicking_game_stops_only_its_match() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (bad_id, bad) =
        stepper.spawn(Box::new(Shard::<Boom>::new(&MatchConfig::default()).unwrap()));
    let (good_id, good) = stepper.spawn(arena(20));
    let victim = stepper.join(bad_id, "v");
    let _watcher = stepper.join(good_id, "w");
    let key = common::joined_key(&victim);
    stepper.run_until(SEC);
    let good_before = good.tick();
    stepper.input(bad_id, key, 1, json("true"));
    stepper.run_until(2 * SEC);
    assert_eq!(bad.state(), ShardState::Panicked);
    assert_eq!(stepper.metrics.panics.load(Ordering::Relaxed), 1);
    let frames = drain(&victim);
    assert!(matches!(frames.last(), Some(Outgoing::Stopped(StopReason::Panicked))), "{frames:?}");
    assert!(victim.is_closed());
    assert_eq!(good.tick(), good_before + 20, "the other match kept its rate");
    assert_eq!(good.state(), ShardState::Running);
}

/// An input that does not decode is counted as rejected; the match goes on.
#[test]
fn undecodable_input_is_counted() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (id, status) = stepper.spawn(arena(20));
    let start = stepper.next_deadline().unwrap() - SEC / 20;
    let mailbox = stepper.join(id, "a");
    let key = common::joined_key(&mailbox);
    stepper.input(id, key, 1, json(r#"{"dx":"left"}"#));
    stepper.run_until(start + SEC);
    assert_eq!(stepper.metrics.inputs_rejected[2].load(Ordering::Relaxed), 1, "decode");
    assert_eq!(status.tick(), 20);
    assert_eq!(status.state(), ShardState::Running);
}

/// A subscriber that never reads holds only the newest snapshot: older ones are replaced,
/// so its memory stays bounded and the match never waits for it.
#[test]
fn slow_subscriber_keeps_only_latest() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (id, _) = stepper.spawn(arena(20));
    let start = stepper.next_deadline().unwrap() - SEC / 20;
    let slow = stepper.join(id, "slow");
    common::joined_key(&slow);
    stepper.run_until(start + SEC);
    assert_eq!(slow.replaced_count(), 19);
    let frames = drain(&slow);
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0], Outgoing::Snapshot(s) if s.tick == 20));
}

/// A finished match delivers its end frame, closes mailboxes and is removed.
#[test]
fn finished_match_is_removed() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let params = serde_json::json!({"time_limit_secs": 1});
    let shard = pylon_shard::GameRegistry::builtin()
        .create("arena", &MatchConfig { seed: 1, params, record_replay: false })
        .unwrap();
    let (id, status) = stepper.spawn(shard);
    let mailbox = stepper.join(id, "a");
    common::joined_key(&mailbox);
    stepper.run_until(2 * SEC);
    assert_eq!(status.state(), ShardState::Finished);
    assert_eq!(stepper.shard_count(), 0);
    let frames = drain(&mailbox);
    assert!(matches!(frames.last(), Some(Outgoing::MatchEnd(_))));
    assert!(mailbox.is_closed());
}

/// A subscriber whose writer went away is unsubscribed at the next tick.
#[test]
fn gone_consumer_is_unsubscribed() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (id, status) = stepper.spawn(arena(20));
    let mailbox = stepper.join(id, "a");
    let _other = stepper.join(id, "b");
    common::joined_key(&mailbox);
    stepper.run_until(SEC / 10);
    assert_eq!(status.subscribers(), 2);
    mailbox.close_consumer();
    stepper.run_until(SEC / 5);
    assert_eq!(status.subscribers(), 1);
    assert!(mailbox.is_closed());
}
