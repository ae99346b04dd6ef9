//! One arena tick of one warm match (its memory in cache) as a tick thread does it, at 8,
//! 64 and 512 players: every player's input queued raw, then `step_with` (the inputs
//! decoded and applied, the schedule run, the shared snapshot refilled), then the frame
//! handed out once per subscriber (`take_snapshots`: the payload and that subscriber's
//! ack) and the applied stamps drained. Mailboxes are not included (`benches/mailbox.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::Arena;
use pylon_shard::{Auth, DynShard, MatchConfig, QueuedInput, Shard, SubscriberKey};

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
        let mut inputs = Vec::with_capacity(players);
        let mut stamps = Vec::new();
        let mut seq = 0;
        group.bench_with_input(
            BenchmarkId::new("one_input_per_player", players),
            &players,
            |b, _| {
                b.iter(|| {
                    seq += 1;
                    for key in &keys {
                        let payload = payload.clone();
                        inputs.push(QueuedInput {
                            key: *key,
                            client_seq: Some(seq),
                            payload,
                            stamp: 0,
                        });
                    }
                    shard.step_with(&mut inputs);
                    shard.take_snapshots(&mut |key, frame| {
                        std::hint::black_box((key, frame));
                    });
                    shard.drain_applied_stamps(&mut stamps);
                    stamps.clear();
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);
