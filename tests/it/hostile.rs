//! Hostile clients over real sockets: malformed, oversized and garbage frames get the
//! right close code, and a well-behaved client in the same match keeps receiving every
//! tick throughout.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_close_codes_and_others_keep_playing() {
    let server = TestServer::start(&[("PYLON_MAX_FRAME_BYTES", "4096")]).await;
    let (token, _) = server.guest().await;
    let id = server.create(&token, "arena", json!({"score_limit": 100000})).await;
    let (good_token, _) = server.guest().await;
    let (mut good, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(&good_token), AuthPath::Header)
            .await;
    let Seen::Snapshot(mut last_tick, _) = next(&mut good, SECS5).await else { panic!("snapshot") };

    // (frame, msgpack mode, expected close code)
    let cases: Vec<(Message, bool, u16)> = vec![
        (Message::text("not json"), false, 4400),
        (Message::text("42"), false, 4400),
        (Message::text("{\"input\":"), false, 4400),
        (Message::text("{\"client_seq\":-1}"), false, 4400),
        (Message::text("{\"client_seq\":\"x\"}"), false, 4400),
        (Message::binary(vec![0xff, 0x00, 0x13, 0x37]), false, 4400),
        (Message::binary(vec![0xc1]), true, 4400),
        (Message::binary(vec![0x93, 0xcc]), true, 4400),
        (Message::binary(vec![0x92, 0x01, 0x02]), true, 4400),
        (Message::text("x".repeat(5000)), false, 1009),
        (Message::binary(vec![0x93; 100_000]), true, 1009),
    ];
    for (i, (frame, msgpack, code)) in cases.into_iter().enumerate() {
        let (t, _) = server.guest().await;
        let query =
            if msgpack { format!("shard={id}&format=msgpack") } else { format!("shard={id}") };
        let (mut ws, _) = connect(&server.shard_url(&query), Some(&t), AuthPath::Header).await;
        ws.send(frame).await.unwrap();
        let (got, reason) = close_of(&mut ws, SECS5).await;
        assert_eq!(got, code, "case {i}: {reason}");
        assert!(!reason.is_empty(), "case {i}: a readable reason");
        // The good client is still served, tick after tick.
        let Seen::Snapshot(tick, _) = next(&mut good, SECS5).await else { panic!("snapshot") };
        assert!(tick > last_tick, "case {i}: the match goes on");
        last_tick = tick;
    }

    // Invalid UTF-8 in a text frame and a bad opcode: protocol errors, still a close.
    for (i, raw) in [(0x1u8, vec![0xff, 0xfe]), (0x3u8, vec![1, 2])].into_iter().enumerate() {
        let (t, _) = server.guest().await;
        let mut ws = RawWs::connect(server.shard_addr(), &format!("/?shard={id}"), &t);
        ws.send(raw.0, &raw.1);
        let (code, reason) = ws.close_code().expect("a close frame");
        assert!(code == 4400 || code == 1002 || code == 1007, "raw case {i}: {code} {reason}");
    }

    // Inputs the game cannot decode are counted, not fatal: the socket stays open.
    let (t, _) = server.guest().await;
    let (mut ws, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(&t), AuthPath::Header).await;
    for seq in 1..=5 {
        send_input(&mut ws, json!({"dx": "fast", "dy": [1]}), seq).await;
    }
    let metrics_deadline = std::time::Instant::now() + SECS5;
    loop {
        let m = server.metrics().await;
        if metric(&m, "pylon_inputs_rejected_total{reason=\"decode\"}") >= 5.0 {
            break;
        }
        assert!(std::time::Instant::now() < metrics_deadline, "decode rejections not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(next(&mut ws, SECS5).await, Seen::Snapshot(..)), "still subscribed");
    let Seen::Snapshot(tick, _) = next(&mut good, SECS5).await else { panic!("snapshot") };
    assert!(tick > last_tick);
}

/// A client that keeps its socket alive but stops reading: once the server's send has
/// been stuck for the idle timeout, the socket is closed as too slow (1013) instead of
/// holding a task and a slot forever. Large snapshots (10,000 pickups, ~200 KB a frame)
/// fill the kernel buffers within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_as_too_slow() {
    let server =
        TestServer::start(&[("PYLON_IDLE_TIMEOUT_SECS", "2"), ("PYLON_PING_INTERVAL_SECS", "1")])
            .await;
    let id = server.create(ADMIN, "arena", json!({"pickups": 10_000})).await;
    let mut raw = RawWs::connect(server.shard_addr(), &format!("/?shard={id}"), ADMIN);
    let series = "pylon_socket_closes_total{code=\"1013\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Pings keep the server reading (no 4408) until its sends stall; nothing is read.
        raw.send(0x9, b"");
        if metric(&server.metrics().await, series) >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled socket was never closed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(metric(&server.metrics().await, "pylon_socket_closes_total{code=\"4408\"}"), 0.0);
}
