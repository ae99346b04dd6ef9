//! Plays one match of this project's game against its own server binary, over a real
//! socket, speaking pylon's wire protocol through `pylon::codec` (what a client does).

// The game's determinism bans (clippy.toml) do not apply to a test of the real server:
// it waits on the wall clock, with deadlines.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pylon::codec::{FrameType, WireMode, decode_server_frame, encode_client_frame};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ADMIN: &str = "starter-test-admin-token-0123456789";

/// The server process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port p with p+1..p+3 free too (the server binds four).
fn free_ports() -> u16 {
    loop {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(port) = l.local_addr().map(|a| a.port()) else { continue };
        if port < 65_000 && (1..=3).all(|k| TcpListener::bind(("127.0.0.1", port + k)).is_ok()) {
            return port;
        }
    }
}

async fn start() -> Server {
    let port = free_ports();
    let dir = std::env::temp_dir().join(format!("pylon-starter-{}-{port}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_pylon-starter"))
        .arg("serve")
        .env("PYLON_ADMIN_TOKEN", ADMIN)
        .env("PYLON_HOST", "127.0.0.1")
        .env("PYLON_PORT", port.to_string())
        .env("PYLON_DB_PATH", dir.join("pylon.db"))
        .env("PYLON_SESSION_DB", dir.join("sessions.db"))
        .env("PYLON_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Server { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = format!("http://127.0.0.1:{port}/health");
    while !reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "the server did not become healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server
}

async fn post(server: &Server, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req =
        reqwest::Client::new().post(format!("http://127.0.0.1:{}{path}", server.port)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request").json().await.expect("JSON answer")
}

/// A guest joins a tag match (join-or-create), plays it over the shard socket: its inputs
/// are acknowledged, its runner moves, and the round ends with the match-finished close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_one_match_over_a_real_socket() {
    let server = start().await;
    let guest = post(&server, "/api/auth/guest", None, json!({})).await;
    let (token, user) = (guest["token"].as_str().unwrap(), guest["user_id"].as_str().unwrap());
    let params = json!({"round_secs": 3.0, "tick_rate_hz": 20});
    let joined = post(
        &server,
        "/api/shards/join-or-create",
        Some(token),
        json!({"game": "tag", "params": params}),
    )
    .await;
    let id = joined["id"].as_str().expect("a match id");

    let url = format!("ws://127.0.0.1:{}/?shard={id}&sid={user}", server.port + 3);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("socket opens");

    let mut first_x = None;
    let mut moved = false;
    let mut acked = 0u64;
    let mut seq = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let close = loop {
        let msg =
            tokio::time::timeout_at(deadline, ws.next()).await.expect("the round ends in time");
        let Some(Ok(msg)) = msg else { panic!("the socket ended without a close frame") };
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(frame) => break frame,
            _ => continue,
        };
        let frame =
            decode_server_frame(WireMode::Binary, FrameType::Binary, &bytes, Some("ack")).unwrap();
        acked = acked.max(frame.ack.unwrap_or(0));
        let view = frame.body.value().unwrap();
        let me = view["players"].as_array().unwrap().iter().find(|p| p["id"] == user).cloned();
        if let Some(x) = me.and_then(|p| p["x"].as_f64()) {
            let start = *first_x.get_or_insert(x);
            moved |= (x - start).abs() > 1.0;
        }
        seq += 1;
        // Run toward the middle, so the edge of the field never stops the runner.
        let dx = if first_x.unwrap_or(0.0) > 500.0 { -1.0 } else { 1.0 };
        let mut out = Vec::new();
        let steer = json!({"dx": dx, "dy": 0.0});
        let kind =
            encode_client_frame(WireMode::Binary, Some(seq), None, &steer, &mut out).unwrap();
        assert_eq!(kind, FrameType::Text);
        ws.send(Message::text(String::from_utf8(out).unwrap())).await.unwrap();
    };
    assert!(acked > 0, "inputs were acknowledged");
    assert!(moved, "the runner moved");
    let close = close.expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (1000, "match finished"));
}
