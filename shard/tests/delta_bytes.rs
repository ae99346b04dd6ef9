//! Bytes on the wire for a real arena match: 8 players steered like the load bots, every
//! frame encoded for one subscriber in compat JSON, MessagePack, `delta=1` and `delta=2`
//! (each delta client acknowledging every frame it gets, as the bots do). Run with
//! `cargo test -p pylon-shard --test delta_bytes -- --nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use std::sync::Arc;

use pylon_shard::codec::{
    FrameEncoder, InputPayload, SnapshotReader, WireMode, decode_server_frame,
};
use pylon_shard::games::arena::Arena;
use pylon_shard::{Auth, DynShard, MatchConfig, Outgoing, QueuedInput, Shard, SubscriberKey};

/// Ticks measured, after [`WARMUP_TICKS`] (the first frames of a delta client are full).
const TICKS: u64 = 400;
const WARMUP_TICKS: u64 = 20;

fn arena_match() -> (Shard<Arena>, Vec<SubscriberKey>) {
    let params = serde_json::json!({"max_players": 8});
    let mut shard =
        Shard::<Arena>::new(&MatchConfig { seed: 7, params, record_replay: false }).unwrap();
    let keys = (0..8)
        .map(|i| {
            // Guest user ids are `guest_` and 20 characters.
            let sid: Arc<str> = format!("guest_{i:020}").into();
            let auth = Auth { user_id: sid.clone(), is_admin: false };
            shard.handle_join(sid, &auth).unwrap().key
        })
        .collect();
    (shard, keys)
}

/// The load bots' input for their `seq`-th frame: full speed along x, turning every 40
/// inputs, half speed along y.
fn bot_input(seq: u64, player: usize) -> InputPayload {
    let turn = (seq + 5 * player as u64) / 40;
    let dx = if turn.is_multiple_of(2) { 1.0 } else { -1.0 };
    InputPayload::json(format!(r#"{{"dx":{dx},"dy":0.5}}"#).into_bytes())
}

/// Bytes per mode over the measured ticks, for the first subscriber.
#[derive(Debug, Default)]
struct Totals {
    compat: usize,
    msgpack: usize,
    delta_v1: usize,
    delta_v2: usize,
}

/// Encodes one subscriber's frame in every mode; the delta readers rebuild the snapshot
/// and acknowledge it, as a client would.
struct Encoders {
    compat: FrameEncoder,
    msgpack: FrameEncoder,
    v1: (FrameEncoder, SnapshotReader),
    v2: (FrameEncoder, SnapshotReader),
    out: Vec<u8>,
}

impl Encoders {
    fn new() -> Self {
        let delta = |mode| (FrameEncoder::new(mode), SnapshotReader::for_mode(mode));
        Self {
            compat: FrameEncoder::new(WireMode::Binary),
            msgpack: FrameEncoder::new(WireMode::MsgPack),
            v1: delta(WireMode::MsgPackDelta),
            v2: delta(WireMode::MsgPackDeltaV2),
            out: Vec::new(),
        }
    }

    /// The byte counts of `frame` in compat, MessagePack, `delta=1` and `delta=2`.
    fn encode(&mut self, frame: &Outgoing) -> [usize; 4] {
        let mut sizes = [0; 4];
        self.compat.encode(frame, &mut self.out).unwrap();
        sizes[0] = self.out.len();
        self.msgpack.encode(frame, &mut self.out).unwrap();
        sizes[1] = self.out.len();
        let Outgoing::Snapshot(snapshot) = frame else { panic!("a snapshot frame") };
        let expected = snapshot.body.tree().unwrap().clone();
        for (i, (encoder, reader)) in [(2, &mut self.v1), (3, &mut self.v2)] {
            let kind = encoder.encode(frame, &mut self.out).unwrap().unwrap();
            sizes[i] = self.out.len();
            let decoded = decode_server_frame(encoder.mode(), kind, &self.out, None).unwrap();
            assert_eq!(reader.read(&decoded).unwrap(), Some(&expected), "{:?}", encoder.mode());
            encoder.handle_base_ack(reader.base_to_ack());
        }
        sizes
    }
}

/// A real arena match: `delta=2` frames rebuild every snapshot and take at most a fifth of
/// the compat JSON bytes (`delta=1` takes about 1/4.7), and under two thirds of `delta=1`.
#[test]
fn arena_delta_v2_bytes() {
    let (mut shard, keys) = arena_match();
    let mut encoders = Encoders::new();
    let mut totals = Totals::default();
    let mut inputs = Vec::new();
    for tick in 1..=WARMUP_TICKS + TICKS {
        for (player, key) in keys.iter().enumerate() {
            let payload = bot_input(tick, player);
            inputs.push(QueuedInput { key: *key, client_seq: Some(tick), payload, stamp: 0 });
        }
        shard.step_with(&mut inputs);
        let mut first = None;
        shard.take_snapshots(&mut |key, frame| {
            if key == keys[0] {
                first = Some(frame);
            }
        });
        let frame = Outgoing::Snapshot(first.expect("a frame for the first player"));
        let [compat, msgpack, v1, v2] = encoders.encode(&frame);
        if tick > WARMUP_TICKS {
            totals.compat += compat;
            totals.msgpack += msgpack;
            totals.delta_v1 += v1;
            totals.delta_v2 += v2;
        }
    }
    let per_frame = |bytes: usize| bytes as f64 / TICKS as f64;
    let ratio = |bytes: usize| totals.compat as f64 / bytes as f64;
    println!(
        "arena, 8 players, {TICKS} ticks, bytes per frame: compat json {:.1}, msgpack {:.1} (1/{:.2}), \
         delta=1 {:.1} (1/{:.2}), delta=2 {:.1} (1/{:.2})",
        per_frame(totals.compat),
        per_frame(totals.msgpack),
        ratio(totals.msgpack),
        per_frame(totals.delta_v1),
        ratio(totals.delta_v1),
        per_frame(totals.delta_v2),
        ratio(totals.delta_v2),
    );
    assert!(totals.delta_v2 * 5 <= totals.compat, "{totals:?}");
    assert!(totals.delta_v2 * 3 < totals.delta_v1 * 2, "{totals:?}");
}
