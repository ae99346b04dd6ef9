//! Wire frames: compat binary and text layouts, MessagePack envelopes and deltas.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

use pylon_shard::codec::delta::{Patch, apply};
use pylon_shard::codec::{Cached, FrameEncoder, FrameType, WireMode};
use pylon_shard::outgoing::{MatchEnd, Outgoing, SnapshotFrame, StopReason};

fn frame(tick: u64, ack: Option<u64>, value: serde_json::Value) -> Outgoing {
    Outgoing::Snapshot(SnapshotFrame { tick, ack, body: Cached::payload(value, Some("ack")) })
}

/// Compat binary: 8-byte big-endian tick, then the snapshot JSON with the ack spliced in.
#[test]
fn compat_binary_layout() {
    let mut enc = FrameEncoder::new(WireMode::Binary);
    let mut out = Vec::new();
    let kind = enc.encode(&frame(258, Some(7), serde_json::json!({"x": 1})), &mut out).unwrap();
    assert_eq!(kind, Some(FrameType::Binary));
    assert_eq!(&out[..8], &258_u64.to_be_bytes());
    assert_eq!(std::str::from_utf8(&out[8..]).unwrap(), r#"{"ack":7,"x":1}"#);
    enc.encode(&frame(1, None, serde_json::json!({})), &mut out).unwrap();
    assert_eq!(&out[8..], br#"{"ack":null}"#);
    enc.encode(&frame(1, Some(1), serde_json::json!([1, 2])), &mut out).unwrap();
    assert_eq!(&out[8..], b"[1,2]", "non-object snapshots are sent untouched");
}

/// Compat text: `{"tick":N,"snapshot":…}`; compat modes do not send match end or stops.
#[test]
fn compat_text_layout() {
    let mut enc = FrameEncoder::new(WireMode::Text);
    let mut out = Vec::new();
    assert_eq!(
        enc.encode(&frame(3, Some(2), serde_json::json!({"a": true})), &mut out).unwrap(),
        Some(FrameType::Text)
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"tick": 3, "snapshot": {"ack": 2, "a": true}}));
    assert_eq!(enc.encode(&Outgoing::Stopped(StopReason::Stopped), &mut out).unwrap(), None);
}

fn decode(out: &[u8]) -> (u8, u64, Option<u64>, Option<u64>, serde_json::Value) {
    rmp_serde::from_slice(out).unwrap()
}

/// MessagePack frames carry kind, tick, ack and the body; match end is sent too.
#[test]
fn msgpack_envelope() {
    let mut enc = FrameEncoder::new(WireMode::MsgPack);
    let mut out = Vec::new();
    enc.encode(&frame(9, Some(4), serde_json::json!({"p": [1, 2]})), &mut out).unwrap();
    assert_eq!(decode(&out), (1, 9, Some(4), None, serde_json::json!({"p": [1, 2]})));
    let end = Outgoing::MatchEnd(MatchEnd {
        tick: 10,
        outcome: Cached::payload(serde_json::json!({"w": "a"}), None),
    });
    enc.encode(&end, &mut out).unwrap();
    assert_eq!(decode(&out).0, 3);
}

/// Delta mode sends full frames until the client acknowledges a base, then patches that
/// rebuild the exact snapshot and are much smaller.
#[test]
fn delta_frames_rebuild_snapshots() {
    let players = |moved: f64| {
        let list: Vec<_> = (0..8)
            .map(|i| serde_json::json!({"id": format!("player-{i}"), "x": 100.0 * f64::from(i) + if i == 3 { moved } else { 0.0 }, "y": 50.0, "score": i}))
            .collect();
        serde_json::json!({"players": list, "time_left_secs": 299.5})
    };
    let mut enc = FrameEncoder::new(WireMode::MsgPackDelta);
    let mut out = Vec::new();
    enc.encode(&frame(1, None, players(0.0)), &mut out).unwrap();
    let full_len = out.len();
    assert_eq!(decode(&out).0, 1, "no base acknowledged yet: full");
    enc.handle_base_ack(1);
    enc.encode(&frame(2, Some(1), players(5.0)), &mut out).unwrap();
    let (kind, tick, _, base, body) = decode(&out);
    assert_eq!((kind, tick, base), (2, 2, Some(1)));
    let patch: Patch = serde_json::from_value(body).unwrap();
    assert_eq!(apply(&players(0.0), &patch).unwrap(), players(5.0));
    assert!(out.len() * 5 <= full_len, "delta {} vs full {}", out.len(), full_len);
    enc.handle_base_ack(999);
    enc.encode(&frame(3, Some(1), players(5.0)), &mut out).unwrap();
    assert_eq!(decode(&out).0, 2, "an unknown base ack is ignored; the old base still serves");
}

/// The client half reads what the server half writes, in every mode: tick, ack and the
/// snapshot, with delta frames rebuilt into full snapshots against the acknowledged base.
#[test]
fn the_client_half_reads_every_mode() {
    use pylon_shard::codec::{FrameKind, SnapshotReader, decode_server_frame};
    let states = [
        serde_json::json!({"players": [{"id": "a", "x": 1.5}], "t": 1}),
        serde_json::json!({"players": [{"id": "a", "x": 2.5}], "t": 2}),
        serde_json::json!({"players": [{"id": "a", "x": 2.5}, {"id": "b", "x": 0.0}], "t": 3}),
        serde_json::json!({"players": [{"id": "a", "x": 2.5}, {"id": "b", "x": 0.0}], "t": 3}),
    ];
    for mode in [
        WireMode::Binary,
        WireMode::Text,
        WireMode::MsgPack,
        WireMode::MsgPackDelta,
        WireMode::MsgPackDeltaV2,
    ] {
        let mut enc = FrameEncoder::new(mode);
        let mut reader = SnapshotReader::for_mode(mode);
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        for (i, state) in states.iter().enumerate() {
            let tick = i as u64 + 1;
            let kind = enc
                .encode(&frame(tick, Some(tick * 10), state.clone()), &mut out)
                .unwrap()
                .unwrap();
            let decoded = decode_server_frame(mode, kind, &out, Some("ack")).unwrap();
            assert_eq!((decoded.tick, decoded.ack), (tick, Some(tick * 10)), "{mode:?}");
            kinds.push(decoded.kind);
            let mut got = reader.read(&decoded).unwrap().unwrap().clone();
            if let Some(obj) = got.as_object_mut() {
                obj.remove("ack");
            }
            assert_eq!(&got, state, "{mode:?} tick {tick}");
            enc.handle_base_ack(reader.base_to_ack());
        }
        let deltas = kinds.iter().filter(|k| **k == FrameKind::Delta).count();
        assert_eq!(deltas > 0, mode.delta_version().is_some(), "{mode:?}: {kinds:?}");
    }
}

/// `delta=2` sends the same frames as `delta=1` with denser patches that rebuild the exact
/// snapshot; subscribers of both formats share one payload without mixing their patches.
#[test]
fn delta_v2_frames_rebuild_snapshots() {
    use pylon_shard::codec::delta_v2;
    let players = |moved: f64| {
        let list: Vec<_> = (0..8)
            .map(|i| serde_json::json!({"id": format!("player-{i}"), "x": 100.0 * f64::from(i) + moved, "y": 50.0, "score": i}))
            .collect();
        serde_json::json!({"players": list, "time_left_secs": 299.5 - moved})
    };
    let mut v1 = FrameEncoder::new(WireMode::MsgPackDelta);
    let mut v2 = FrameEncoder::new(WireMode::MsgPackDeltaV2);
    let mut out = Vec::new();
    let first = frame(1, None, players(0.0));
    let second = frame(2, Some(1), players(5.0));
    for enc in [&mut v1, &mut v2] {
        enc.encode(&first, &mut out).unwrap();
        assert_eq!(decode(&out).0, 1, "no base acknowledged yet: full");
        enc.handle_base_ack(1);
    }
    v2.encode(&second, &mut out).unwrap();
    let v2_len = out.len();
    let (kind, tick, ack, base, body) = decode(&out);
    assert_eq!((kind, tick, ack, base), (2, 2, Some(1), Some(1)));
    let patch = delta_v2::Patch::try_from(body).unwrap();
    assert_eq!(delta_v2::apply(&players(0.0), &patch).unwrap(), players(5.0));
    v1.encode(&second, &mut out).unwrap();
    let (_, _, _, _, body) = decode(&out);
    let patch: Patch = serde_json::from_value(body).unwrap();
    assert_eq!(apply(&players(0.0), &patch).unwrap(), players(5.0), "v1 bytes, not v2's");
    assert!(v2_len * 3 < out.len() * 2, "v2 {v2_len} B vs v1 {} B", out.len());
    let unchanged = frame(3, Some(1), players(5.0));
    v2.handle_base_ack(2);
    v2.encode(&unchanged, &mut out).unwrap();
    assert_eq!(out.last(), Some(&0xc0), "nil body: unchanged since the base");
}
