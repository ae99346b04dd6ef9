//! Encoding one arena snapshot (8 players, 12 pickups) as compat JSON, MessagePack and a
//! MessagePack delta (patch formats 1 and 2), for one subscriber, from a fresh (not yet
//! cached) payload; building the snapshot value is excluded (`iter_batched` setup).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pylon_shard::codec::{Cached, FrameEncoder, WireMode};
use pylon_shard::games::arena::{ArenaSnapshot, PlayerView};
use pylon_shard::{Outgoing, SnapshotFrame};

fn snapshot(shift: f32) -> ArenaSnapshot {
    ArenaSnapshot {
        time_left_secs: 250.5,
        players: (0..8)
            .map(|i| PlayerView {
                id: format!("player-{i}").into(),
                x: 100.0 * i as f32 + if i == 2 { shift } else { 0.0 },
                y: 480.25,
                score: i,
            })
            .collect(),
        pickups: (0..12).map(|i| [37.5 * i as f32, 900.0 - 11.0 * i as f32]).collect(),
    }
}

fn frame(tick: u64, shift: f32) -> Outgoing {
    Outgoing::Snapshot(SnapshotFrame {
        tick,
        ack: Some(tick),
        body: Cached::payload(snapshot(shift), Some("ack")),
    })
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_snapshot");
    let mut out = Vec::with_capacity(4096);
    let mut delta = |mode| {
        let mut encoder = FrameEncoder::new(mode);
        encoder.encode(&frame(1, 0.0), &mut out).unwrap();
        encoder.handle_base_ack(1);
        encoder
    };
    let encoders = [
        ("compat_json", FrameEncoder::new(WireMode::Binary)),
        ("msgpack", FrameEncoder::new(WireMode::MsgPack)),
        ("msgpack_delta", delta(WireMode::MsgPackDelta)),
        ("msgpack_delta_v2", delta(WireMode::MsgPackDeltaV2)),
    ];
    for (name, mut encoder) in encoders {
        group.bench_function(name, |b| {
            b.iter_batched(
                || frame(2, 1.0),
                |f| {
                    encoder.encode(&f, &mut out).unwrap();
                    out.len()
                },
                BatchSize::SmallInput,
            );
        });
    }
    let shared = frame(3, 0.0);
    let mut encoder = FrameEncoder::new(WireMode::Binary);
    encoder.encode(&shared, &mut out).unwrap();
    group.bench_function("compat_json_cached_second_subscriber", |b| {
        b.iter(|| {
            encoder.encode(&shared, &mut out).unwrap();
            out.len()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
