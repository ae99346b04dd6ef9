//! One socket discipline for both socket kinds (shard sockets and change-feed sockets):
//! the close handshake is answered, a stalled reader is closed as too slow and does not
//! hold shutdown, an oversized frame gets 1009, a bad query gets a close frame with a
//! reason. And the change feed as pylon's own sync engine uses it: pull, then connect
//! without `since`, with writes landing in between.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

/// Sends a clean close (1000) and returns the close frame the server answers with.
async fn close_cleanly(ws: &mut Ws) -> Option<(u16, String)> {
    let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
    ws.send(Message::Close(Some(frame))).await.unwrap();
    let deadline = tokio::time::Instant::now() + SECS5;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return Some((f.code.into(), f.reason.to_string()));
            }
            Ok(Some(Ok(_))) => {}
            // The connection ended without the server's close frame: a browser sees 1006.
            Ok(None | Some(Err(_))) | Err(_) => return None,
        }
    }
}

/// A client that closes cleanly gets the close handshake answered with 1000 on the shard
/// socket and on the feed socket (a browser then sees 1000, not 1006), and the server
/// counts a normal close, not a protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_client_close_gets_1000_back_on_both_socket_kinds() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &notes_manifest())]).await;
    let (token, user) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    let (mut shard, _) = connect(
        &server.shard_url(&format!("shard={id}&sid={user}")),
        Some(&token),
        AuthPath::Subprotocol,
    )
    .await;
    assert!(matches!(next(&mut shard, SECS5).await, Seen::Snapshot(..)), "playing first");
    assert_eq!(close_cleanly(&mut shard).await.map(|c| c.0), Some(1000), "shard socket");

    let (mut feed, _) = connect(&server.sync_url(""), Some(&token), AuthPath::Subprotocol).await;
    assert_eq!(close_cleanly(&mut feed).await.map(|c| c.0), Some(1000), "feed socket");

    let deadline = Instant::now() + SECS5;
    while metric(&server.metrics().await, "pylon_socket_closes_total{code=\"1000\"}") < 2.0 {
        assert!(Instant::now() < deadline, "both clean closes are counted as 1000");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&server.metrics().await, "pylon_socket_closes_total{code=\"4400\"}"), 0.0);
}

/// A feed reader that stops reading while changes pour in is closed with 1013 once a send
/// stalls for the idle timeout; another one still stalled does not hold shutdown for the
/// 30 s grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_feed_reader_is_closed_with_1013_and_does_not_hold_shutdown() {
    let env = [
        ("PYLON_MANIFEST", notes_manifest()),
        ("PYLON_IDLE_TIMEOUT_SECS", "2".to_owned()),
        ("PYLON_PING_INTERVAL_SECS", "1".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = TestServer::start(&env).await;
    let sync_addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port + 1).into();
    let mut stalled = RawWs::connect(sync_addr, "/", ADMIN);
    let text = "x".repeat(60_000);
    let series = "pylon_socket_closes_total{code=\"1013\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0u64;
    while metric(&server.metrics().await, series) < 1.0 {
        assert!(Instant::now() < deadline, "the stalled feed reader was never closed");
        // Pings keep the server reading (no 4408) while its sends fill the buffers.
        stalled.send(0x9, b"");
        for _ in 0..10 {
            n += 1;
            let note = json!({"owner": "admin", "text": format!("{n}{text}")});
            let res = server
                .http
                .post(server.url("/api/entities/Note"))
                .bearer_auth(ADMIN)
                .json(&note)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    }
    assert_eq!(metric(&server.metrics().await, "pylon_socket_closes_total{code=\"4408\"}"), 0.0);

    // Another stalled reader, then SIGTERM: the server exits well within the grace.
    let _second = RawWs::connect(sync_addr, "/", ADMIN);
    for i in 0..50 {
        let note = json!({"owner": "admin", "text": format!("{i}{text}")});
        server
            .http
            .post(server.url("/api/entities/Note"))
            .bearer_auth(ADMIN)
            .json(&note)
            .send()
            .await
            .unwrap();
    }
    let started = Instant::now();
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "shutdown took {:?}", started.elapsed());
}

/// An oversized frame on the feed socket gets 1009, a frame that breaks the protocol
/// 4400, and a bad `since` a close frame with its reason (not an HTTP 400 a browser cannot
/// read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_socket_refusals_are_close_frames() {
    let server = TestServer::start(&[
        ("PYLON_MANIFEST", &notes_manifest()),
        ("PYLON_MAX_FRAME_BYTES", "1024"),
    ])
    .await;
    let (mut feed, _) = connect(&server.sync_url(""), Some(ADMIN), AuthPath::Header).await;
    feed.send(Message::text("y".repeat(4096))).await.unwrap();
    let (code, reason) = close_of(&mut feed, SECS5).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024"), "{reason}");

    let (mut bad, _) = connect(&server.sync_url("since=-1"), Some(ADMIN), AuthPath::Header).await;
    let (code, reason) = close_of(&mut bad, SECS5).await;
    assert_eq!((code, reason.as_str()), (4400, "since must be a whole number"));

    let sync_addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port + 1).into();
    let mut raw = RawWs::connect(sync_addr, "/", ADMIN);
    raw.send(0x1, &[0xff, 0xfe, 0xfd]); // a text frame that is not UTF-8
    assert_eq!(raw.close_code().map(|c| c.0), Some(4400));
}

async fn pull_cursor(server: &TestServer, token: &str) -> u64 {
    let page = server.get_json("/api/sync/pull?limit=1000", token).await;
    page["cursor"]["last_seq"].as_u64().unwrap()
}

async fn insert_note(server: &TestServer, token: &str, owner: &str, text: &str) -> String {
    let note = json!({"owner": owner, "text": text});
    let (status, body) = server.post_json("/api/entities/Note", token, &note).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// pylon's sync engine pulls, then opens the feed socket without a cursor; rows written
/// at once (here: while the socket is still connecting) must reach it. 200 rounds: every
/// row arrives, in order, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_opened_like_pylons_sync_engine_misses_nothing() {
    let server = TestServer::start(&[("PYLON_MANIFEST", &notes_manifest())]).await;
    let (token, user) = server.guest().await;
    let url = server.sync_url("");
    for round in 0..200 {
        let cursor = pull_cursor(&server, &token).await;
        // The write races the socket's start, as in the engine (connect right after pull).
        let writes = async {
            let a = insert_note(&server, &token, &user, &format!("{round}a")).await;
            let b = insert_note(&server, &token, &user, &format!("{round}b")).await;
            (a, b)
        };
        let socket = connect(&url, Some(&token), AuthPath::Subprotocol);
        let ((a, b), (mut ws, _)) = tokio::join!(writes, socket);
        let mut seen = Vec::new();
        while !seen.iter().any(|(id, _): &(String, u64)| *id == b) {
            let msg = tokio::time::timeout(SECS5, ws.next()).await;
            let Ok(Some(Ok(Message::Text(t)))) = msg else {
                panic!("round {round}: the feed stopped before both rows arrived: {seen:?}");
            };
            let event: Value = serde_json::from_str(&t).unwrap();
            let seq = event["seq"].as_u64().unwrap();
            assert!(seq > cursor, "round {round}: seq {seq} was already pulled (cursor {cursor})");
            seen.push((event["row_id"].as_str().unwrap().to_owned(), seq));
        }
        let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, [a.as_str(), b.as_str()], "round {round}: each row once, in order");
    }
}
