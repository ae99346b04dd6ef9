//! Input receipts and idle accounting on a fake clock: an HTTP input learns what the shard
//! did with it (applied, refused by the game, or the reject reason), and only inputs the
//! shard accepted keep a match alive.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
#![cfg(not(loom))]

mod common;

use std::sync::Arc;

use common::{arena, joined_key, json};
use pylon_shard::games::tictactoe::TicTacToe;
use pylon_shard::{InputRejected, MatchConfig, Shard, StopReason};
use pylon_tick::{InputFrom, InputVerdict, Mailbox, ShardState, Stepper, TickConfig};

const SEC: u64 = 1_000_000_000;

fn sid(s: &str) -> InputFrom {
    InputFrom::Sid(Arc::from(s))
}

/// `Some(verdict)`, or `None` once the receipt closed without one; panics while pending.
fn verdict(mailbox: &Mailbox<InputVerdict>) -> Option<InputVerdict> {
    match mailbox.try_recv() {
        Some(v) => Some(v),
        None if mailbox.is_closed() => None,
        None => panic!("no verdict yet"),
    }
}

/// A match whose only inputs are rejected (an HTTP sender with no subscription) still
/// stops at its idle timeout: rejected inputs are not activity.
#[test]
fn rejected_inputs_do_not_keep_a_match_alive() {
    let config =
        TickConfig { idle_timeout: std::time::Duration::from_secs(5), ..Default::default() };
    let mut stepper = Stepper::new(&config, 0);
    let (id, status) = stepper.spawn(arena(20));
    for second in 1..=6 {
        stepper.run_until(second * SEC);
        if status.state() != ShardState::Running {
            break;
        }
        let receipt = stepper.input_with_receipt(id, sid("ghost"), json(r#"{"dx":1}"#));
        assert_eq!(
            verdict(&receipt),
            Some(InputVerdict::Rejected(InputRejected::UnknownSubscriber)),
            "second {second}"
        );
    }
    stepper.run_until(7 * SEC);
    assert_eq!(status.state(), ShardState::Idle, "stopped as idle despite the inputs");
    assert_eq!(stepper.shard_count(), 0);
}

/// On a fixed-rate match a queued input's verdict comes with the tick that applies it,
/// not before; an undecodable input and an unknown sid are answered on arrival.
#[test]
fn receipts_answer_after_the_tick_or_on_arrival() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (id, _) = stepper.spawn(arena(20));
    let start = stepper.next_deadline().unwrap() - SEC / 20;
    let mailbox = stepper.join(id, "a");
    let _key = joined_key(&mailbox);
    stepper.run_until(start + SEC / 20);
    let queued = stepper.input_with_receipt(id, sid("a"), json(r#"{"dx":1,"dy":0}"#));
    assert!(queued.try_recv().is_none() && !queued.is_closed(), "waits for its tick");
    let bad = stepper.input_with_receipt(id, sid("a"), json(r#"{"dx":"left"}"#));
    assert_eq!(verdict(&bad), Some(InputVerdict::Rejected(InputRejected::Decode)));
    let stranger = stepper.input_with_receipt(id, sid("nobody"), json(r#"{"dx":1}"#));
    assert_eq!(verdict(&stranger), Some(InputVerdict::Rejected(InputRejected::UnknownSubscriber)));
    stepper.run_until(start + 2 * SEC / 20);
    assert_eq!(verdict(&queued), Some(InputVerdict::Applied));
    assert!(queued.is_closed(), "one verdict, then closed");
}

/// The game's own refusal is reported: a tic-tac-toe move out of turn or onto a taken
/// cell is `Unauthorized`, a legal one `Applied`.
#[test]
fn receipts_report_the_games_refusal() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let shard = Box::new(Shard::<TicTacToe>::new(&MatchConfig::default()).unwrap());
    let (id, _) = stepper.spawn(shard);
    let x = stepper.join(id, "x");
    let o = stepper.join(id, "o");
    let (_, _) = (joined_key(&x), joined_key(&o));
    let first = stepper.input_with_receipt(id, sid("x"), json(r#"{"cell":4}"#));
    assert_eq!(verdict(&first), Some(InputVerdict::Applied));
    let taken = stepper.input_with_receipt(id, sid("o"), json(r#"{"cell":4}"#));
    assert_eq!(verdict(&taken), Some(InputVerdict::Unauthorized));
    let out_of_turn = stepper.input_with_receipt(id, sid("x"), json(r#"{"cell":0}"#));
    assert_eq!(verdict(&out_of_turn), Some(InputVerdict::Unauthorized));
    let legal = stepper.input_with_receipt(id, sid("o"), json(r#"{"cell":0}"#));
    assert_eq!(verdict(&legal), Some(InputVerdict::Applied));
}

/// A queued input whose subscriber leaves before the tick is answered as dropped, and one
/// whose match stops first gets no verdict: its receipt closes, so nobody waits.
#[test]
fn receipts_close_when_the_input_cannot_be_answered() {
    let mut stepper = Stepper::new(&TickConfig::default(), 0);
    let (id, _) = stepper.spawn(arena(20));
    let mailbox = stepper.join(id, "a");
    let key = joined_key(&mailbox);
    let left = stepper.input_with_receipt(id, sid("a"), json(r#"{"dx":1}"#));
    stepper.send(pylon_tick::Command::Leave { shard: id, key });
    assert_eq!(verdict(&left), Some(InputVerdict::Rejected(InputRejected::UnknownSubscriber)));

    let again = stepper.join(id, "b");
    let _ = joined_key(&again);
    let stopped = stepper.input_with_receipt(id, sid("b"), json(r#"{"dx":1}"#));
    stepper.stop(id, StopReason::Stopped);
    assert_eq!(verdict(&stopped), None, "closed without a verdict");
    let late = stepper.input_with_receipt(id, sid("b"), json(r#"{"dx":1}"#));
    assert_eq!(verdict(&late), Some(InputVerdict::Rejected(InputRejected::Finished)));
}
