//! Shard runtime behaviour through the public API: joins, inputs, acks, limits, rules.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use std::sync::Arc;

use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::{Arena, ArenaParams};
use pylon_shard::games::tictactoe::TicTacToe;
use pylon_shard::{
    Auth, DynShard, InputRejected, JoinRejected, MatchConfig, Outgoing, Shard, SubscriberKey,
};

fn auth(user: &str) -> Auth {
    Auth { user_id: user.into(), is_admin: false }
}

fn arena(params: serde_json::Value) -> Shard<Arena> {
    Shard::<Arena>::new(&MatchConfig { seed: 42, params, record_replay: false }).unwrap()
}

fn join(shard: &mut dyn DynShard, sid: &str) -> SubscriberKey {
    shard.handle_join(sid.into(), &auth(sid)).unwrap().key
}

fn input(dx: f32, dy: f32) -> InputPayload {
    InputPayload::json(format!(r#"{{"dx":{dx},"dy":{dy}}}"#).into_bytes())
}

fn drain(shard: &mut dyn DynShard) -> Vec<(SubscriberKey, Outgoing)> {
    let mut out = Vec::new();
    shard.drain_outgoing(&mut out);
    out
}

fn snapshots(
    out: &[(SubscriberKey, Outgoing)],
) -> Vec<(SubscriberKey, u64, Option<u64>, serde_json::Value)> {
    out.iter()
        .filter_map(|(k, o)| match o {
            Outgoing::Snapshot(s) => Some((*k, s.tick, s.ack, s.body.tree().unwrap().clone())),
            _ => None,
        })
        .collect()
}

/// Inputs apply at the next tick, in arrival order, and each subscriber's frame carries its
/// own last processed client_seq.
#[test]
fn inputs_apply_next_tick_with_per_subscriber_acks() {
    let mut shard = arena(serde_json::Value::Null);
    let a = join(&mut shard, "a");
    let b = join(&mut shard, "b");
    shard.step();
    let before = snapshots(&drain(&mut shard));
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, _, ack, _)| ack.is_none()));

    shard.handle_input(a, Some(5), &input(1.0, 0.0), 0).unwrap();
    shard.handle_input(a, Some(6), &input(-1.0, 0.0), 0).unwrap();
    shard.handle_input(b, Some(9), &input(0.0, 1.0), 0).unwrap();
    assert_eq!(shard.queued_inputs(), 3);
    let report = shard.step();
    assert_eq!(report.inputs_applied, 3);
    assert_eq!(shard.queued_inputs(), 0);
    let after = snapshots(&drain(&mut shard));
    let ack_of = |k| after.iter().find(|(key, ..)| *key == k).unwrap().2;
    assert_eq!((ack_of(a), ack_of(b)), (Some(6), Some(9)));
    assert_eq!(after[0].1, 2, "second step is tick 2");
}

/// Players move in the direction of their last input, clamped to the field.
#[test]
fn arena_players_move() {
    let mut shard = arena(serde_json::json!({"speed": 100.0, "pickups": 0}));
    let a = join(&mut shard, "a");
    shard.step();
    let x0 = snapshots(&drain(&mut shard))[0].3["players"][0]["x"].as_f64().unwrap();
    shard.handle_input(a, Some(1), &input(1.0, 0.0), 0).unwrap();
    for _ in 0..10 {
        shard.step();
    }
    let x1 = snapshots(&drain(&mut shard)).last().unwrap().3["players"][0]["x"].as_f64().unwrap();
    let expected = (x0 + 100.0 * 10.0 / 20.0).min(1000.0);
    assert!((x1 - expected).abs() < 1e-3, "{x0} -> {x1}, expected {expected}");
}

/// Subscribers without their own view share one snapshot allocation (encoded once).
#[test]
fn shared_snapshot_is_one_allocation() {
    let mut shard = arena(serde_json::Value::Null);
    for sid in ["a", "b", "c"] {
        join(&mut shard, sid);
    }
    shard.step();
    let out = drain(&mut shard);
    let bodies: Vec<_> = out
        .iter()
        .filter_map(|(_, o)| match o {
            Outgoing::Snapshot(s) => Some(s.body.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies.len(), 3);
    assert!(bodies.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
}

/// Extra inputs beyond the per-subscriber queue limit are refused, not queued.
#[test]
fn per_subscriber_input_queue_is_bounded() {
    let mut shard = arena(serde_json::Value::Null);
    let a = join(&mut shard, "a");
    let b = join(&mut shard, "b");
    for seq in 0..16 {
        shard.handle_input(a, Some(seq), &input(0.0, 0.0), 0).unwrap();
    }
    assert_eq!(shard.handle_input(a, Some(99), &input(0.0, 0.0), 0), Err(InputRejected::QueueFull));
    assert_eq!(shard.handle_input(b, Some(1), &input(0.0, 0.0), 0), Ok(()), "others unaffected");
    shard.step();
    assert_eq!(
        shard.handle_input(a, Some(100), &input(0.0, 0.0), 0),
        Ok(()),
        "room again next tick"
    );
}

/// A payload that is not the game's input type is rejected as Decode and the match goes on.
#[test]
fn undecodable_input_is_rejected() {
    let mut shard = arena(serde_json::Value::Null);
    let a = join(&mut shard, "a");
    for bad in [&b"{\"dx\":\"fast\"}"[..], b"[1,2,3]", b"not json", b"{\"dx\":1e999}"] {
        let payload = InputPayload::json(bad.to_vec());
        assert_eq!(
            shard.handle_input(a, Some(1), &payload, 0),
            Err(InputRejected::Decode),
            "{bad:?}"
        );
    }
    assert_eq!(shard.step().inputs_applied, 0);
    assert_eq!(shard.tick(), 1);
}

/// The subscribe rule: sid must be the caller's user id unless the caller is admin; the
/// subscriber limit refuses extra joins.
#[test]
fn subscribe_rule_and_limit() {
    let mut shard = arena(serde_json::json!({"max_players": 2}));
    assert_eq!(shard.handle_join("bob".into(), &auth("eve")).unwrap_err(), JoinRejected::Forbidden);
    let admin = Auth { user_id: "root".into(), is_admin: true };
    assert!(shard.handle_join("bob".into(), &admin).is_ok());
    join(&mut shard, "amy");
    assert_eq!(shard.handle_join("cat".into(), &auth("cat")).unwrap_err(), JoinRejected::Full);
}

/// A reconnect with the same sid resumes the subscriber under a new key; the old key is dead.
#[test]
fn rejoin_resumes_under_new_key() {
    let mut shard = arena(serde_json::Value::Null);
    let old = join(&mut shard, "a");
    let joined = shard.handle_join("a".into(), &auth("a")).unwrap();
    assert_eq!(joined.replaced, Some(old));
    assert_ne!(joined.key, old);
    assert_eq!(shard.subscriber_count(), 1);
    assert_eq!(
        shard.handle_input(old, Some(1), &input(0.0, 0.0), 0),
        Err(InputRejected::UnknownSubscriber)
    );
    assert!(!shard.handle_leave(old), "a stale leave is ignored");
    assert_eq!(shard.subscriber_count(), 1);
}

/// The arena ends at its time limit with an outcome sent to every subscriber.
#[test]
fn arena_ends_at_time_limit() {
    let params =
        serde_json::to_value(ArenaParams { time_limit_secs: 1, ..ArenaParams::default() }).unwrap();
    let mut shard = arena(params);
    join(&mut shard, "a");
    let mut ticks = 0;
    while !shard.is_finished() && ticks < 100 {
        shard.step();
        ticks += 1;
    }
    assert_eq!(ticks, 20, "1 s at 20 Hz");
    let out = drain(&mut shard);
    let end = out.iter().find_map(|(_, o)| match o {
        Outgoing::MatchEnd(e) => Some(e.outcome.tree().unwrap().clone()),
        _ => None,
    });
    assert_eq!(end.unwrap()["reason"], "time_limit");
    assert_eq!(shard.step().inputs_applied, 0, "a finished match does not step");
    assert_eq!(shard.tick(), 20);
}

/// Tic-tac-toe is event-driven: it wants a step only when something arrived, refuses
/// out-of-turn moves, and finishes with the winner.
#[test]
fn tictactoe_turns_and_win() {
    let mut shard = Shard::<TicTacToe>::new(&MatchConfig::default()).unwrap();
    assert_eq!(shard.tick_rate_hz(), 0);
    let x = join(&mut shard, "x");
    let o = join(&mut shard, "o");
    assert!(shard.wants_step(), "joins trigger a step");
    shard.step();
    assert!(!shard.wants_step());
    let mv = |cell: u8| InputPayload::json(format!(r#"{{"cell":{cell}}}"#).into_bytes());
    shard.handle_input(o, Some(1), &mv(4), 0).unwrap();
    assert_eq!(shard.step().inputs_unauthorized, 1, "O may not move first");
    for (who, cell) in [(x, 0), (o, 4), (x, 1), (o, 5), (x, 2)] {
        shard.handle_input(who, None, &mv(cell), 0).unwrap();
        assert!(shard.wants_step());
        assert_eq!(shard.step().inputs_applied, 1);
    }
    assert!(shard.is_finished());
    let out = drain(&mut shard);
    let outcome = out.iter().find_map(|(_, o)| match o {
        Outgoing::MatchEnd(e) => Some(e.outcome.tree().unwrap().clone()),
        _ => None,
    });
    assert_eq!(outcome.unwrap()["winner"], "x");
    let last: Vec<_> = snapshots(&out);
    let board: BoardResult = serde_json::from_value(last.last().unwrap().3.clone()).unwrap();
    assert_eq!(board.result.as_deref(), Some("X"));
}

#[derive(serde::Deserialize)]
struct BoardResult {
    result: Option<String>,
}
