//! Saving and restoring a running match: a restored arena match continues exactly as the
//! original would have, and a player who reconnects gets its own entity (score) back.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use pylon_shard::games::arena::{Arena, ArenaInput};
use pylon_shard::{Auth, DynShard, GameRegistry, MatchConfig, Shard};

fn auth(user: &str) -> Auth {
    Auth { user_id: user.into(), is_admin: false }
}

/// Save at tick 40, restore through the registry, step both 100 more ticks: the saved
/// states are equal at every tick (positions, scores, pickups, RNG, tick).
#[test]
fn restored_match_continues_identically() {
    let config = MatchConfig {
        seed: 7,
        params: serde_json::json!({"pickups": 40, "score_limit": 1000}),
        record_replay: false,
    };
    let mut a = Shard::<Arena>::new(&config).unwrap();
    let keys: Vec<_> = ["p1", "p2", "p3"]
        .iter()
        .map(|p| a.handle_join((*p).into(), &auth(p)).unwrap().key)
        .collect();
    for t in 0..40u64 {
        for (i, key) in keys.iter().enumerate() {
            let dx = if (t / 10 + i as u64).is_multiple_of(2) { 1.0 } else { -0.5 };
            a.handle_typed_input(*key, Some(t), ArenaInput { dx, dy: 0.3 }, 0).unwrap();
        }
        a.step();
    }
    let saved = a.save().expect("arena saves");
    assert_eq!(saved.tick, 40);
    let text = serde_json::to_string(&saved).unwrap();
    let mut b = GameRegistry::builtin().restore(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(b.tick(), 40);
    for _ in 0..100 {
        a.step();
        b.step();
        assert_eq!(a.save(), b.save());
    }
    // A reconnecting player gets its entity back: same score, no new player.
    let score_before: u32 = saved.state["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_u64().unwrap() as u32)
        .sum();
    b.handle_join("p2".into(), &auth("p2")).unwrap();
    b.step();
    let after = b.save().unwrap();
    assert_eq!(after.state["players"].as_array().unwrap().len(), 3);
    let score_after: u32 = after.state["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_u64().unwrap() as u32)
        .sum();
    assert!(score_after >= score_before);
}

/// A game that does not save cannot be persisted; a corrupt saved state is refused.
#[test]
fn unsupported_and_corrupt_states() {
    let mut ttt = GameRegistry::builtin().create("tictactoe", &MatchConfig::default()).unwrap();
    assert!(ttt.save().is_none());
    let mut arena = Shard::<Arena>::new(&MatchConfig::default()).unwrap();
    let mut saved = arena.save().unwrap();
    saved.state = serde_json::json!({"players": "nope"});
    assert!(GameRegistry::builtin().restore(&saved).is_err());
}
