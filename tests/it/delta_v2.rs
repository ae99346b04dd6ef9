//! Patch format 2 over real sockets: `delta=2` and `delta=1` subscribers of one arena
//! match rebuild the same snapshots with the codec's client half, format 2 in fewer bytes,
//! and delta values the server does not know are refused with 4400.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use pylon_shard::codec::{
    FrameKind, FrameType, SnapshotReader, WireMode, decode_server_frame, encode_client_frame,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

/// One MessagePack delta subscriber: its socket, its reader, what it rebuilt.
struct DeltaClient {
    mode: WireMode,
    ws: Ws,
    reader: SnapshotReader,
    seq: u64,
    /// Rebuilt snapshots by tick.
    seen: BTreeMap<u64, Value>,
    /// Delta frames and their bytes.
    deltas: (usize, usize),
}

impl DeltaClient {
    async fn connect(server: &TestServer, match_id: &str, mode: WireMode) -> Self {
        let (token, user) = server.guest().await;
        let url = server.shard_url(&format!("shard={match_id}&sid={user}&{}", mode.query()));
        let (ws, _) = connect(&url, Some(&token), AuthPath::Header).await;
        let reader = SnapshotReader::for_mode(mode);
        Self { mode, ws, reader, seq: 0, seen: BTreeMap::new(), deltas: (0, 0) }
    }

    /// Reads one frame, rebuilds its snapshot, and answers with an input that carries the
    /// newest tick held as the base (as the load bots do).
    async fn step(&mut self) {
        let Seen::Other(Message::Binary(bytes)) = next(&mut self.ws, SECS5).await else {
            panic!("{:?}: a binary frame", self.mode)
        };
        let frame =
            decode_server_frame(self.mode, FrameType::Binary, &bytes, None).expect("a frame");
        if frame.kind == FrameKind::Delta {
            self.deltas.0 += 1;
            self.deltas.1 += bytes.len();
        }
        let tick = frame.tick;
        if let Some(snapshot) = self.reader.read(&frame).expect("the patch fits its base") {
            self.seen.insert(tick, snapshot.clone());
        }
        self.seq += 1;
        let dx = if (self.seq / 20).is_multiple_of(2) { 1.0 } else { -1.0 };
        let base = Some(self.reader.base_to_ack()).filter(|b| *b > 0);
        let mut out = Vec::new();
        encode_client_frame(
            self.mode,
            Some(self.seq),
            base,
            &json!({"dx": dx, "dy": 0.3}),
            &mut out,
        )
        .unwrap();
        self.ws.send(Message::binary(out)).await.unwrap();
    }
}

/// A `delta=2` and a `delta=1` subscriber of one moving match rebuild identical snapshots
/// tick by tick from their deltas, and format 2's delta frames are the smaller ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_patch_formats_rebuild_the_same_snapshots() {
    let server = TestServer::start(&[]).await;
    let (creator, _) = server.guest().await;
    let id = server.create(&creator, "arena", json!({"score_limit": 1000})).await;
    let mut v2 = DeltaClient::connect(&server, &id, WireMode::MsgPackDeltaV2).await;
    let mut v1 = DeltaClient::connect(&server, &id, WireMode::MsgPackDelta).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while v2.deltas.0 < 40 || v1.deltas.0 < 40 {
        assert!(Instant::now() < deadline, "deltas: v2 {:?}, v1 {:?}", v2.deltas, v1.deltas);
        tokio::join!(v2.step(), v1.step());
    }
    let common: Vec<u64> = v2.seen.keys().filter(|t| v1.seen.contains_key(t)).copied().collect();
    assert!(common.len() >= 30, "ticks both rebuilt: {}", common.len());
    for tick in &common {
        assert_eq!(v2.seen[tick], v1.seen[tick], "tick {tick}");
    }
    let last = &v2.seen[&common[common.len() - 1]];
    assert_eq!(last["players"].as_array().map(Vec::len), Some(2), "{last}");
    let mean = |(n, bytes): (usize, usize)| bytes as f64 / n as f64;
    assert!(
        mean(v2.deltas) < mean(v1.deltas),
        "mean delta frame: v2 {:.1} B, v1 {:.1} B",
        mean(v2.deltas),
        mean(v1.deltas)
    );
}

/// A `delta` value the server does not know, or deltas without MessagePack, close the
/// socket with 4400 before anything else; `delta=0` is no deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_delta_values_are_refused() {
    let server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    for query in ["format=msgpack&delta=3", "format=msgpack&delta=yes", "format=json&delta=2"] {
        let url = server.shard_url(&format!("shard={id}&sid={user}&{query}"));
        let (mut ws, _) = connect(&url, Some(&token), AuthPath::Header).await;
        let (code, reason) = close_of(&mut ws, SECS5).await;
        assert_eq!(code, 4400, "{query}: {reason}");
    }
    let url = server.shard_url(&format!("shard={id}&sid={user}&format=msgpack&delta=0"));
    let (mut ws, _) = connect(&url, Some(&token), AuthPath::Header).await;
    let Seen::Other(Message::Binary(bytes)) = next(&mut ws, SECS5).await else {
        panic!("a MessagePack frame")
    };
    let frame = decode_server_frame(WireMode::MsgPack, FrameType::Binary, &bytes, None).unwrap();
    assert_eq!(frame.kind, FrameKind::Joined);
}
