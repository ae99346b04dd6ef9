//! One arena tick (inputs applied, schedule run, snapshots built for every subscriber) at
//! 8, 64 and 512 players.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::Arena;
use pylon_shard::{Auth, DynShard, MatchConfig, Shard, SubscriberKey};

fn arena_with(players: usize) -> (Shard<Arena>, Vec<SubscriberKey>) {
    let params = serde_json::json!({"max_players": players, "time_limit_secs": 1_000_000, "score_limit": u32::MAX});
    let mut shard =
        Shard::<Arena>::new(&MatchConfig { seed: 1, params, record_replay: false }).unwrap();
    let keys = (0..players)
        .map(|i| {
            let sid: std::sync::Arc<str> = format!("player-{i}").into();
            let auth = Auth { user_id: sid.clone(), is_admin: false };
            shard.handle_join(sid, &auth).unwrap().key
        })
        .collect();
    (shard, keys)
}

fn bench_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("arena_tick");
    let payload = InputPayload::json(&br#"{"dx":0.7,"dy":-0.3}"#[..]);
    for players in [8, 64, 512] {
        let (mut shard, keys) = arena_with(players);
        let mut out = Vec::new();
        let mut stamps = Vec::new();
        let mut seq = 0;
        group.bench_with_input(
            BenchmarkId::new("one_input_per_player", players),
            &players,
            |b, _| {
                b.iter(|| {
                    seq += 1;
                    for key in &keys {
                        shard.handle_input(*key, Some(seq), &payload, 0).unwrap();
                    }
                    shard.step();
                    shard.drain_outgoing(&mut out);
                    shard.drain_applied_stamps(&mut stamps);
                    out.clear();
                    stamps.clear();
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);
