//! Replay: a recorded arena match re-simulates bit for bit.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::Arena;
use pylon_shard::replay::{ReplayEvent, ReplayLog, replay};
use pylon_shard::rng::ShardRng;
use pylon_shard::{Auth, DynShard, GameRegistry, MatchConfig, Shard, SubscriberKey};

/// Plays a 600-tick arena match with joins, a leave, a reconnect and random inputs, and
/// returns its replay log and the state hash after every tick.
fn record_match() -> (ReplayLog, Vec<u64>) {
    let config =
        MatchConfig { seed: 7, params: serde_json::json!({"pickups": 30}), record_replay: true };
    let mut shard = Shard::<Arena>::new(&config).unwrap();
    let mut rng = ShardRng::new(99);
    let mut keys: Vec<(String, SubscriberKey)> = Vec::new();
    let mut hashes = Vec::new();
    let mut sink = Vec::new();
    let mut joined = 0;
    for tick in 0..600_u32 {
        if tick % 50 == 0 && keys.len() < 8 {
            let sid = format!("p{joined}");
            joined += 1;
            let auth = Auth { user_id: sid.as_str().into(), is_admin: false };
            let key = shard.handle_join(sid.as_str().into(), &auth).unwrap().key;
            keys.push((sid, key));
        }
        if tick == 300 {
            let (_, key) = keys.remove(1);
            assert!(shard.handle_leave(key));
        }
        if tick == 400 {
            let (sid, _) = keys[0].clone();
            let auth = Auth { user_id: sid.as_str().into(), is_admin: false };
            keys[0].1 = shard.handle_join(sid.as_str().into(), &auth).unwrap().key;
        }
        for (seq, (_, key)) in keys.iter().enumerate() {
            if rng.below(3) == 0 {
                let (dx, dy) = (rng.range_f32(-1.2, 1.2), rng.range_f32(-1.2, 1.2));
                let payload =
                    InputPayload::json(format!(r#"{{"dx":{dx},"dy":{dy}}}"#).into_bytes());
                shard
                    .handle_input(*key, Some(u64::from(tick) * 10 + seq as u64), &payload, 0)
                    .unwrap();
            }
        }
        shard.step();
        shard.drain_outgoing(&mut sink);
        sink.clear();
        hashes.push(shard.state_hash());
    }
    (shard.replay_log().unwrap().clone(), hashes)
}

/// Replaying the log (after a JSON round trip) gives the same state hash at every tick.
#[test]
fn replay_reproduces_every_tick() {
    let (log, live) = record_match();
    let json = serde_json::to_string(&log).unwrap();
    let log: ReplayLog = serde_json::from_str(&json).unwrap();
    let mut replayed = Vec::new();
    let last = replay::<Arena>(&log, &mut |_, hash| replayed.push(hash)).unwrap();
    assert_eq!(replayed.len(), live.len());
    assert_eq!(replayed, live);
    assert_eq!(Some(&last), live.last());
    let by_name = GameRegistry::builtin().replay(&log, &mut |_, _| {}).unwrap();
    assert_eq!(by_name, last);
}

/// Changing one recorded input changes the final hash, so the check above can fail.
#[test]
fn tampered_log_diverges() {
    let (mut log, live) = record_match();
    let input = log
        .events
        .iter_mut()
        .find_map(|e| match e {
            ReplayEvent::Input { input, .. } => Some(input),
            _ => None,
        })
        .unwrap();
    *input = serde_json::json!({"dx": 0.123, "dy": -0.456});
    let last = replay::<Arena>(&log, &mut |_, _| {}).unwrap();
    assert_ne!(Some(&last), live.last());
}

/// A log of another game is refused with a typed error.
#[test]
fn replay_of_wrong_game_is_an_error() {
    let log = ReplayLog::new("tictactoe", 1, serde_json::json!({}));
    assert!(replay::<Arena>(&log, &mut |_, _| {}).is_err());
}
