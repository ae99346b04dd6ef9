//! The real server end to end: HTTP, shard sockets over every auth path, close codes,
//! SSE and the HTTP input fallback, slow readers and silent spectators.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

fn player<'a>(snapshot: &'a Value, id: &str) -> Option<&'a Value> {
    snapshot["players"].as_array()?.iter().find(|p| p["id"] == id)
}

/// Eight players over the three auth paths (header, `bearer.` subprotocol, `?token=`)
/// join one arena match, send inputs and see advancing ticks, their own movement and
/// their own acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_play_over_every_auth_path() {
    let server = TestServer::start(&[]).await;
    let (creator, _) = server.guest().await;
    let id = server.create(&creator, "arena", json!({"score_limit": 1000})).await;

    let mut clients = Vec::new();
    for i in 0..8 {
        let (token, user) = server.guest().await;
        let path = [AuthPath::Header, AuthPath::Subprotocol, AuthPath::Query][i % 3];
        let url = server.shard_url(&format!("shard={id}&sid={user}"));
        let (ws, echoed) = connect(&url, Some(&token), path).await;
        if path == AuthPath::Subprotocol {
            assert_eq!(
                echoed.as_deref(),
                Some(format!("bearer.{token}").as_str()),
                "echo the entry"
            );
        } else {
            assert_eq!(echoed, None);
        }
        clients.push((ws, user));
    }

    // Each player's first snapshot: where it starts.
    let mut start_x = Vec::new();
    let mut first_tick = Vec::new();
    for (ws, user) in &mut clients {
        let (tick, snap) = loop {
            if let Seen::Snapshot(tick, snap) = next(ws, SECS5).await
                && player(&snap, user).is_some()
            {
                break (tick, snap);
            }
        };
        assert!(snap["ack"].is_null(), "no input yet: {}", snap["ack"]);
        start_x.push(player(&snap, user).unwrap()["x"].as_f64().unwrap());
        first_tick.push(tick);
    }
    // Everyone moves right (or left when near the right edge) with seqs 1..=5.
    let dirs: Vec<f64> = start_x.iter().map(|x| if *x < 500.0 { 1.0 } else { -1.0 }).collect();
    for ((ws, _), dx) in clients.iter_mut().zip(&dirs) {
        for seq in 1..=5 {
            send_input(ws, json!({"dx": dx, "dy": 0}), seq).await;
        }
    }
    for (i, (ws, user)) in clients.iter_mut().enumerate() {
        let deadline = Instant::now() + SECS5;
        let (tick, snap) = loop {
            assert!(Instant::now() < deadline, "client {i}: ack 5 never arrived");
            if let Seen::Snapshot(tick, snap) = next(ws, SECS5).await
                && snap["ack"] == 5
                // One more tick so the movement shows.
                && let Seen::Snapshot(t2, s2) = next(ws, SECS5).await
            {
                break (t2.max(tick), s2);
            }
        };
        assert!(tick > first_tick[i], "ticks advance");
        assert_eq!(snap["ack"], 5, "client {i} sees its own ack");
        let x = player(&snap, user).unwrap()["x"].as_f64().unwrap();
        assert!((x - start_x[i]) * dirs[i] > 1.0, "client {i} moved: {} -> {x}", start_x[i]);
    }
    let info: Value = server
        .http
        .get(server.url(&format!("/api/shards/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["subscribers"], 8);
    assert_eq!(info["running"], true);

    // What operators see.
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let m = server.metrics().await;
    for family in [
        "pylon_tick_duration_seconds_bucket{le=\"+Inf\"}",
        "pylon_tick_lateness_seconds_count",
        "pylon_skipped_ticks_total",
        "pylon_frames_out_total",
        "pylon_bytes_out_total",
        "pylon_frames_in_total",
        "pylon_bytes_in_total",
        "pylon_inputs_applied_total",
    ] {
        assert!(
            metric(&m, family) > 0.0 || family.starts_with("pylon_skipped"),
            "{family} in\n{m}"
        );
        assert!(m.contains(family), "{family} exported");
    }
    assert_eq!(metric(&m, "pylon_matches{game=\"arena\"}"), 1.0);
    assert_eq!(metric(&m, "pylon_subscribers"), 8.0);
    assert_eq!(metric(&m, "pylon_socket_connections"), 8.0);
    assert!(metric(&m, "pylon_http_requests_total{route=\"/api/shards\",status=\"201\"}") >= 1.0);
    assert!(m.contains("pylon_inputs_rejected_total{reason=\"rate_limited\"}"));
}

/// Text mode and the MessagePack + delta mode carry the same game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_msgpack_modes() {
    let server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;

    let (mut text, _) = connect(
        &server.shard_url(&format!("shard={id}&format=json")),
        Some(&token),
        AuthPath::Header,
    )
    .await;
    let msg = loop {
        if let Seen::Other(Message::Text(t)) = next(&mut text, SECS5).await {
            break t;
        }
    };
    let v: Value = serde_json::from_str(&msg).unwrap();
    assert!(v["tick"].as_u64().unwrap() >= 1 && v["snapshot"]["players"].is_array(), "{v}");
    drop(text);

    let (token2, user2) = server.guest().await;
    let url = server.shard_url(&format!("shard={id}&sid={user2}&format=msgpack&delta=1"));
    let (mut mp, _) = connect(&url, Some(&token2), AuthPath::Header).await;
    // First frame: joined (kind 5).
    let Seen::Other(Message::Binary(b)) = next(&mut mp, SECS5).await else {
        panic!("joined frame")
    };
    let (kind, _, _, _, body): (u8, u64, Option<u64>, Option<u64>, Value) =
        rmp_serde::from_slice(&b).unwrap();
    assert_eq!(kind, 5, "{body}");
    // Input [seq, base, input] then a full snapshot with our ack.
    let input = rmp_serde::to_vec(&(Some(3u64), None::<u64>, json!({"dx": 1, "dy": 0}))).unwrap();
    mp.send(Message::binary(input)).await.unwrap();
    let deadline = Instant::now() + SECS5;
    let base = loop {
        assert!(Instant::now() < deadline, "ack 3 never arrived");
        if let Seen::Other(Message::Binary(b)) = next(&mut mp, SECS5).await {
            let (kind, tick, ack, _, _): (u8, u64, Option<u64>, Option<u64>, Value) =
                rmp_serde::from_slice(&b).unwrap();
            if kind == 1 && ack == Some(3) {
                break tick;
            }
        }
    };
    // Acknowledge that base: deltas (kind 2) against it follow.
    let ack = rmp_serde::to_vec(&(None::<u64>, Some(base), ())).unwrap();
    mp.send(Message::binary(ack)).await.unwrap();
    let deadline = Instant::now() + SECS5;
    loop {
        assert!(Instant::now() < deadline, "no delta frame");
        if let Seen::Other(Message::Binary(b)) = next(&mut mp, SECS5).await {
            let (kind, _, _, got_base, _): (u8, u64, Option<u64>, Option<u64>, Value) =
                rmp_serde::from_slice(&b).unwrap();
            if kind == 2 {
                assert_eq!(got_base, Some(base));
                break;
            }
        }
    }
    let _ = user;
}

/// Every close code of the shard socket, each triggered by a real case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes() {
    let server = TestServer::start(&[
        ("PYLON_MAX_FRAME_BYTES", "1024"),
        ("PYLON_MAX_INPUTS_PER_SEC", "5"),
        ("PYLON_MAX_CONNS_PER_IP", "6"),
        ("PYLON_IDLE_TIMEOUT_SECS", "2"),
        ("PYLON_PING_INTERVAL_SECS", "1"),
        ("PYLON_REGION", "us"),
        ("PYLON_REGIONS", "us=http://127.0.0.1,eu=https://eu.example.com"),
    ])
    .await;
    let (token, user) = server.guest().await;
    let (other_token, _) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    let url = |q: &str| server.shard_url(q);
    let expect = |got: (u16, String), code: u16, needle: &str, what: &str| {
        assert_eq!(got.0, code, "{what}: {got:?}");
        assert!(got.1.contains(needle), "{what}: reason {:?} lacks {needle:?}", got.1);
    };

    // 1008: no token, a bad token, another user's sid.
    let (mut ws, _) = connect(&url(&format!("shard={id}")), None, AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 1008, "authentication", "no token");
    let (mut ws, _) =
        connect(&url(&format!("shard={id}")), Some("nope"), AuthPath::Subprotocol).await;
    expect(close_of(&mut ws, SECS5).await, 1008, "invalid", "bad token");
    let (mut ws, _) =
        connect(&url(&format!("shard={id}&sid={user}")), Some(&other_token), AuthPath::Header)
            .await;
    expect(close_of(&mut ws, SECS5).await, 1008, "forbidden", "other sid");
    // 4404, 4400 (no shard, bad format), 4421.
    let (mut ws, _) = connect(&url("shard=us-nothing"), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 4404, "unknown shard", "unknown shard");
    let (mut ws, _) = connect(&url("sid=x"), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 4400, "shard", "missing shard");
    let (mut ws, _) =
        connect(&url(&format!("shard={id}&format=xml")), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 4400, "format", "bad format");
    let (mut ws, _) = connect(&url("shard=eu-abc"), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 4421, "https://eu.example.com", "wrong region");
    let r = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = r.get(server.url("/api/shards/eu-abc")).send().await.unwrap();
    assert_eq!(redirect.status(), 307);
    assert_eq!(redirect.headers()["location"], "https://eu.example.com/api/shards/eu-abc");

    // 4400 malformed frame, 1009 oversized frame, 4429 input flood.
    let (mut ws, _) = connect(&url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    ws.send(Message::text("[1,2,3]")).await.unwrap();
    expect(close_of(&mut ws, SECS5).await, 4400, "malformed", "malformed frame");
    let (mut ws, _) = connect(&url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    ws.send(Message::text(format!("{{\"input\":\"{}\"}}", "x".repeat(4000)))).await.unwrap();
    expect(close_of(&mut ws, SECS5).await, 1009, "too large", "oversized frame");
    let (mut ws, _) = connect(&url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    for seq in 1..=50 {
        if ws
            .send(Message::text(json!({"input": {"dx": 1}, "client_seq": seq}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    expect(close_of(&mut ws, SECS5).await, 4429, "inputs", "input flood");

    // 4408: a client that answers nothing (no pongs) for the idle timeout.
    let mut silent = RawWs::connect(server.shard_addr(), &format!("/?shard={id}"), &token);
    let (code, reason) = silent.close_code().expect("close frame");
    assert_eq!((code, reason.as_str()), (4408, "idle timeout"));
    drop(silent);

    // Wait for every earlier socket to be gone before measuring the per-address cap.
    let deadline = Instant::now() + SECS5;
    while metric(&server.metrics().await, "pylon_socket_connections") > 0.0 {
        assert!(Instant::now() < deadline, "earlier sockets still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 4429: too many sockets from one address (cap 6).
    let mut held = Vec::new();
    for i in 0..6 {
        // The admin may subscribe any sid; distinct sids so none replaces another.
        let (ws, _) =
            connect(&url(&format!("shard={id}&sid=held{i}")), Some(ADMIN), AuthPath::Header).await;
        held.push(ws);
    }
    // Each held socket is subscribed once its first snapshot arrives.
    for (i, ws) in held.iter_mut().enumerate() {
        let seen = next(ws, SECS5).await;
        assert!(matches!(seen, Seen::Snapshot(..)), "held socket {i}: {seen:?}");
    }
    let (mut ws, _) = connect(&url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 4429, "too many connections", "per-address cap");
    // The cap counts the change-feed sockets too: the sync WebSocket is closed with 4429,
    // the SSE stream refused with 429.
    let (mut feed, _) = connect(&server.sync_url(""), Some(ADMIN), AuthPath::Header).await;
    expect(close_of(&mut feed, SECS5).await, 4429, "too many connections", "feed socket cap");
    let refused =
        reqwest::Client::new().get(server.events_url("")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS", "{body}");
    // 4409: the same sid connecting again takes over; the older socket is told why.
    drop(held.pop());
    let deadline = Instant::now() + SECS5;
    while metric(&server.metrics().await, "pylon_socket_connections") > 5.0 {
        assert!(Instant::now() < deadline, "the dropped socket was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut newer, _) =
        connect(&url(&format!("shard={id}&sid=held0")), Some(ADMIN), AuthPath::Header).await;
    expect(close_of(&mut held[0], SECS5).await, 4409, "replaced", "takeover");
    assert!(
        matches!(next(&mut newer, SECS5).await, Seen::Snapshot(..)),
        "the newer socket plays on"
    );
    drop(newer);
    drop(held);

    // 1013: a full shard; then the stopped match.
    let small = server.create(&token, "arena", json!({"max_players": 1})).await;
    let (mut first, _) =
        connect(&url(&format!("shard={small}")), Some(&token), AuthPath::Header).await;
    assert!(matches!(next(&mut first, SECS5).await, Seen::Snapshot(..)));
    let (second_token, _) = server.guest().await;
    let (mut second, _) =
        connect(&url(&format!("shard={small}")), Some(&second_token), AuthPath::Header).await;
    expect(close_of(&mut second, SECS5).await, 1013, "full", "full shard");
    let stopped = server
        .http
        .delete(server.url(&format!("/api/shards/{small}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), 200);
    expect(close_of(&mut first, SECS5).await, 1013, "stopped", "stopped match");

    // 1000: the match finishes (time limit of one second of simulated time).
    let short = server.create(&token, "arena", json!({"time_limit_secs": 1})).await;
    let (mut ws, _) =
        connect(&url(&format!("shard={short}")), Some(&token), AuthPath::Header).await;
    expect(close_of(&mut ws, SECS5).await, 1000, "finished", "match end");

    let metrics = server.metrics().await;
    for code in [1000, 1008, 1009, 1013, 4400, 4404, 4408, 4409, 4421, 4429] {
        assert!(
            metric(&metrics, &format!("pylon_socket_closes_total{{code=\"{code}\"}}")) >= 1.0,
            "{code} counted"
        );
    }
}

/// The SSE fallback streams snapshots with `id: <tick>`, the HTTP input path feeds the
/// same subscriber (its ack shows up in the stream), and `Last-Event-ID` resumes after
/// the last tick seen. Also the shard info/list endpoints and their auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_fallback_and_http_input() {
    let server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;

    let open = |last: Option<u64>| {
        let mut req = server
            .http
            .get(server.url(&format!("/api/shards/{id}/connect?sid={user}")))
            .bearer_auth(&token);
        if let Some(last) = last {
            req = req.header("last-event-id", last.to_string());
        }
        req.send()
    };
    let response = open(None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = SseEvents::new(response);

    let (tick, _) = events.next().await;
    let accepted: Value = server
        .http
        .post(server.url(&format!("/api/shards/{id}/input")))
        .bearer_auth(&token)
        .json(&json!({"input": {"dx": 1, "dy": 1}, "client_seq": 7}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accepted, json!({"accepted": true, "seq": 7}));
    let deadline = Instant::now() + SECS5;
    let last = loop {
        assert!(Instant::now() < deadline, "ack 7 never streamed");
        let (t, snap) = events.next().await;
        assert!(t > tick);
        if snap["ack"] == 7 {
            break t;
        }
    };
    drop(events);
    // Resume: nothing at or before `last` is replayed.
    let mut events = SseEvents::new(open(Some(last)).await.unwrap());
    let (t, _) = events.next().await;
    assert!(t > last, "resumed after {last}, got {t}");

    // Inputs as another user are refused; a non-admin lists only public fields; bad JSON
    // is typed.
    let (other, _) = server.guest().await;
    let forbidden = server
        .http
        .post(server.url(&format!("/api/shards/{id}/input")))
        .bearer_auth(&other)
        .json(&json!({"input": {}, "subscriber_id": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let list = server.http.get(server.url("/api/shards")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let public: Vec<Value> = list.json().await.unwrap();
    assert!(public.iter().all(|m| m.get("input_queue").is_none()), "{public:?}");
    let list: Value = server
        .http
        .get(server.url("/api/shards"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.as_array().unwrap().iter().any(|m| m["id"] == id.as_str()));
    let bad = server
        .http
        .post(server.url("/api/shards"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_JSON");
    let missing = server.http.get(server.url("/api/shards/local-nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SHARD_NOT_FOUND");
    let unauth = server
        .http
        .post(server.url("/api/shards"))
        .json(&json!({"game": "arena"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    // A fresh client: the server closes a connection whose body it refused unread.
    let huge = reqwest::Client::new()
        .post(server.url("/api/shards"))
        .bearer_auth(&token)
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    // Logout revokes the session everywhere.
    let me = server.http.get(server.url("/api/auth/me")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let out =
        server.http.post(server.url("/api/auth/logout")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(out.status(), 200);
    let me = server.http.get(server.url("/api/auth/me")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(me.status(), 401);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AUTH_REQUIRED");
}

/// A subscriber that never sends a frame (a spectator) still gets every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_subscriber_gets_every_tick() {
    let server = TestServer::start_alone(&[]).await;
    let (token, _) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    let (mut ws, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(&token), AuthPath::Header).await;
    let mut ticks = Vec::new();
    while ticks.len() < 40 {
        if let Seen::Snapshot(tick, _) = next(&mut ws, SECS5).await {
            ticks.push(tick);
        }
    }
    for pair in ticks.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "every tick, in order: {ticks:?}");
    }
}

/// A client that stops reading does not delay the match: the others keep getting every
/// tick on time while its mailbox keeps replacing the unsent snapshot with the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_does_not_delay_others() {
    let server = TestServer::start_alone(&[]).await;
    let (creator, _) = server.guest().await;
    // Big snapshots (3,000 pickups, ~60 KB) fill the stalled socket's buffers quickly.
    let id =
        server.create(&creator, "arena", json!({"pickups": 3000, "score_limit": 100000})).await;
    let (slow_token, _) = server.guest().await;
    let mut slow = RawWs::connect(server.shard_addr(), &format!("/?shard={id}"), &slow_token);
    assert!(slow.frame().is_some(), "the stalled client was subscribed");

    let mut fast = Vec::new();
    for _ in 0..7 {
        let (token, _) = server.guest().await;
        let (ws, _) =
            connect(&server.shard_url(&format!("shard={id}")), Some(&token), AuthPath::Header)
                .await;
        fast.push(ws);
    }
    // 80 ticks (4 s at 20 Hz) for every fast client, in order, none late by more than
    // a few periods, while the slow client reads nothing.
    let mut handles = Vec::new();
    for mut ws in fast {
        handles.push(tokio::spawn(async move {
            let mut ticks = Vec::new();
            let mut worst_gap = Duration::ZERO;
            let mut last_at = Instant::now();
            while ticks.len() < 80 {
                if let Seen::Snapshot(tick, _) = next(&mut ws, SECS5).await {
                    if !ticks.is_empty() {
                        worst_gap = worst_gap.max(last_at.elapsed());
                    }
                    last_at = Instant::now();
                    ticks.push(tick);
                }
            }
            (ticks, worst_gap)
        }));
    }
    for handle in handles {
        let (ticks, worst_gap) = handle.await.unwrap();
        for pair in ticks.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "every tick in order");
        }
        assert!(worst_gap < Duration::from_millis(500), "a fast client waited {worst_gap:?}");
    }
    // The stalled subscriber's snapshots were replaced in its mailbox, not queued
    // (counted when its subscription ends: close it).
    drop(slow);
    let deadline = Instant::now() + SECS5;
    loop {
        let replaced = metric(&server.metrics().await, "pylon_snapshots_replaced_total");
        if replaced >= 10.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot was replaced: {replaced}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM: exit 0, every socket gets 1001, and an HTTP request in flight completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let mut server = TestServer::start(&[]).await;
    let (token, _) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (t, _) = server.guest().await;
        let (mut ws, _) =
            connect(&server.shard_url(&format!("shard={id}")), Some(&t), AuthPath::Header).await;
        assert!(matches!(next(&mut ws, SECS5).await, Seen::Snapshot(..)));
        sockets.push(ws);
    }
    // A request in flight: headers and half the body sent.
    let body = json!({"game": "tictactoe"}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut inflight = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    use std::io::{Read, Write};
    write!(
        inflight,
        "POST /api/shards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    inflight.flush().unwrap();

    server.sigterm();
    // Shutdown has begun once the listener stops accepting.
    let deadline = Instant::now() + SECS5;
    while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    for ws in &mut sockets {
        let (code, reason) = close_of(ws, SECS5).await;
        assert_eq!(code, 1001, "{reason}");
    }
    inflight.write_all(tail.as_bytes()).unwrap();
    let mut reply = String::new();
    inflight.set_read_timeout(Some(SECS5)).unwrap();
    let _ = inflight.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 201"), "in-flight request completed: {reply}");
    let status = server.wait_exit(Duration::from_secs(35));
    assert_eq!(status.code(), Some(0));
}
