//! The limits on every door (issue 11), against the real binary: read deadlines for heads
//! and bodies, connections per address, match and guest-session floods, HTTP inputs with
//! honest answers, logout ending live sockets, and a database that is not there.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn tcp_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset), at most `within`: what
/// arrived, and when the close came (`None`: still open at the deadline).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, Option<Instant>) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
            Ok(Ok(0) | Err(_)) => {
                return (String::from_utf8_lossy(&got).into_owned(), Some(Instant::now()));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The JSON body of a raw HTTP/1.1 response.
fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// A request body that stalls (`Content-Length: 100`, 10 bytes sent, then silence) is cut
/// at the body deadline (1 s here): answered 408 `REQUEST_TIMEOUT` in the JSON error
/// shape, then the connection is closed, neither before the deadline nor long after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_is_cut_at_its_timeout() {
    let server = TestServer::start(&[("PYLON_BODY_TIMEOUT_SECS", "1")]).await;
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let head = "POST /api/shards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Authorization: Bearer nobody\r\nContent-Length: 100\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(b"{\"game\":\"a").await.unwrap();
    let sent = Instant::now();
    let (response, closed) = read_to_close(&mut conn, SECS5).await;
    let closed = closed.expect("the connection is closed");
    let took = closed - sent;
    assert!(took >= Duration::from_millis(900), "cut before its deadline: {took:?}");
    assert!(took < Duration::from_secs(3), "cut long after its deadline: {took:?}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
    assert_eq!(body_of(&response)["error"]["code"], "REQUEST_TIMEOUT", "{response}");
}

/// hyper's head deadline (`PYLON_HANDSHAKE_TIMEOUT_SECS`, 1 s here) closes a connection
/// that sends nothing and one that sends half a request head, each at the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_partial_heads_are_closed_at_the_handshake_timeout() {
    let server = TestServer::start(&[("PYLON_HANDSHAKE_TIMEOUT_SECS", "1")]).await;
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    partial.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let opened = Instant::now();
    let (silent_got, silent_closed) = read_to_close(&mut silent, SECS5).await;
    let (_, partial_closed) = read_to_close(&mut partial, SECS5).await;
    for (what, closed) in [("silent", silent_closed), ("partial head", partial_closed)] {
        let took = closed.unwrap_or_else(|| panic!("{what}: still open after 5 s")) - opened;
        assert!(took >= Duration::from_millis(900), "{what}: closed early: {took:?}");
        assert!(took < Duration::from_secs(3), "{what}: closed late: {took:?}");
    }
    assert!(!silent_got.contains("200"), "nothing was served: {silent_got}");
}

/// The per-address cap on TCP connections (4 here) holds on every port: the next
/// connection from that address gets a minimal 429 `TOO_MANY_CONNECTIONS` in the JSON
/// shape with `Connection: close` and is closed; another address is served meanwhile, and
/// closing one connection frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_http_cap_answers_429() {
    let server =
        TestServer::start(&[("PYLON_MAX_HTTP_CONNS_PER_IP", "4"), ("PYLON_MAX_CONNS_PER_IP", "2")])
            .await;
    let main: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let busy = ip("127.0.0.3");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp_from(busy, main).await);
    }
    for addr in [main, server.shard_addr()] {
        let mut over = tcp_from(busy, addr).await;
        let _ = over.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (response, closed) = read_to_close(&mut over, SECS5).await;
        assert!(closed.is_some(), "closed after the answer");
        assert!(response.starts_with("HTTP/1.1 429"), "{addr}: {response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
        let body = body_of(&response);
        assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS", "{response}");
        assert!(body["error"]["hint"].is_string(), "{response}");
    }
    let other = reqwest::Client::builder().local_address(ip("127.0.0.4")).build().unwrap();
    let health = other.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "another address is served");

    drop(held.pop());
    let deadline = Instant::now() + SECS5;
    loop {
        let again = reqwest::Client::builder().local_address(busy).build().unwrap();
        if again.get(server.url("/health")).send().await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection never freed its slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "pylon_limit_refusals_total{limit=\"http_connections\"}") >= 2.0);
}

/// A server out of file descriptors (`ulimit -n 64`, more idle connections than that)
/// cannot accept: each failed accept is counted and followed by a growing pause (5 ms
/// doubling to 1 s), so over several seconds there are a handful of errors and little CPU,
/// not a spinning loop; once the connections close, the server serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_instead_of_spinning() {
    let server =
        TestServer::start_with_fd_limit(64, &[("PYLON_HANDSHAKE_TIMEOUT_SECS", "60")]).await;
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap();
        let fields: Vec<u64> =
            stat.rsplit_once(") ").unwrap().1.split(' ').filter_map(|f| f.parse().ok()).collect();
        // utime and stime, fields 14 and 15 of stat (11 and 12 after the state letter).
        fields[10] + fields[11]
    };
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(("127.0.0.1", server.port)).await.unwrap());
    }
    let (ticks_before, started) = (cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_secs = (cpu() - ticks_before) as f64 / 100.0;
    assert!(cpu_secs < 1.0, "the server burnt {cpu_secs} s of CPU in {:?}", started.elapsed());
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let reply = reqwest::Client::new().get(server.url("/metrics")).send().await;
        if let Ok(reply) = reply
            && reply.status() == 200
        {
            break reply.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the server never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let errors = metric(&metrics, "pylon_accept_errors_total");
    assert!((1.0..=100.0).contains(&errors), "accept errors counted, a few: {errors}");
}

async fn create(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/shards"))
        .bearer_auth(token)
        .json(&json!({"game": "arena"}))
        .send()
        .await
        .unwrap()
}

async fn expect_429(response: reqwest::Response, code: &str, retry_after: Option<&str>) {
    assert_eq!(response.status(), 429);
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(retry.as_deref(), retry_after, "Retry-After");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["hint"].as_str().is_some_and(|h| !h.is_empty()), "a hint: {body}");
}

/// One session's match flood is refused: at most 5 running at once (429
/// `TOO_MANY_MATCHES`, freed when one stops) and 8 creations a minute (429 `RATE_LIMITED`,
/// `Retry-After: 8`), while another session still creates; the process-wide cap (8 here)
/// refuses even the admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_flood_from_one_session_is_refused_while_another_goes_on() {
    let server = TestServer::start(&[
        ("PYLON_MATCHES_PER_MINUTE", "8"),
        ("PYLON_MAX_MATCHES_PER_USER", "5"),
        ("PYLON_MAX_MATCHES", "8"),
    ])
    .await;
    let (flooder, _) = server.guest().await;
    let (other, _) = server.guest().await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        let created = create(&server, &flooder).await;
        assert_eq!(created.status(), 201);
        mine.push(created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    expect_429(create(&server, &flooder).await, "TOO_MANY_MATCHES", None).await;
    assert_eq!(create(&server, &other).await.status(), 201, "another session goes on");

    // Stopping one of them frees a slot of the running cap.
    let stop = server.http.delete(server.url(&format!("/api/shards/{}", mine[0])));
    assert_eq!(stop.bearer_auth(ADMIN).send().await.unwrap().status(), 200);
    let deadline = Instant::now() + SECS5;
    loop {
        let request = server.http.get(server.url(&format!("/api/shards/{}", mine[0])));
        let info: Value = request.send().await.unwrap().json().await.unwrap_or(Value::Null);
        if info["running"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the stop never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(create(&server, &flooder).await.status(), 201);
    expect_429(create(&server, &flooder).await, "TOO_MANY_MATCHES", None).await;
    // Eight attempts in this minute: the ninth is over the rate, one token every 7.5 s.
    expect_429(create(&server, &flooder).await, "RATE_LIMITED", Some("8")).await;

    // 5 + 1 running; the admin fills the process to 8 and is then refused too.
    assert_eq!(create(&server, ADMIN).await.status(), 201);
    assert_eq!(create(&server, ADMIN).await.status(), 201);
    expect_429(create(&server, ADMIN).await, "TOO_MANY_MATCHES", Some("30")).await;
    let metrics = server.metrics().await;
    for limit in ["match_rate", "matches_per_user", "matches_total"] {
        let series = format!("pylon_limit_refusals_total{{limit=\"{limit}\"}}");
        assert!(metric(&metrics, &series) >= 1.0, "{limit} counted");
    }
}

async fn guest_from(
    client: &reqwest::Client,
    server: &TestServer,
    xff: Option<&str>,
) -> reqwest::Response {
    let mut request = client.post(server.url("/api/auth/guest"));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap()
}

/// A guest-session flood from one address is refused after 5 (429 `RATE_LIMITED`, with
/// `Retry-After` and a hint) while another address (127.0.0.2) still signs in, and a
/// request carrying the admin token (load tools) is exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_flood_from_one_address_is_refused_while_another_address_goes_on() {
    let server = TestServer::start(&[("PYLON_GUESTS_PER_MINUTE_PER_IP", "5")]).await;
    let flooder = reqwest::Client::builder().local_address(ip("127.0.0.1")).build().unwrap();
    for i in 0..5 {
        assert_eq!(guest_from(&flooder, &server, None).await.status(), 200, "guest {i}");
    }
    // A burst of 5, then one every 12 s.
    expect_429(guest_from(&flooder, &server, None).await, "RATE_LIMITED", Some("12")).await;
    let other = reqwest::Client::builder().local_address(ip("127.0.0.2")).build().unwrap();
    assert_eq!(guest_from(&other, &server, None).await.status(), 200, "another address");
    let tool = flooder.post(server.url("/api/auth/guest")).bearer_auth(ADMIN);
    assert_eq!(tool.send().await.unwrap().status(), 200, "the admin token is exempt");
    let metrics = server.metrics().await;
    assert!(metric(&metrics, "pylon_limit_refusals_total{limit=\"guests\"}") >= 1.0);
}

/// Behind a trusted proxy (`PYLON_TRUSTED_PROXIES`) each forwarded client has its own
/// budget, by the right-most untrusted `X-Forwarded-For` entry (what the client put to the
/// left is ignored); from any other peer the header is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_count_separately_only_behind_trusted_proxies() {
    let server = TestServer::start(&[
        ("PYLON_GUESTS_PER_MINUTE_PER_IP", "2"),
        ("PYLON_TRUSTED_PROXIES", "127.0.0.5"),
    ])
    .await;
    let proxy = reqwest::Client::builder().local_address(ip("127.0.0.5")).build().unwrap();
    for _ in 0..2 {
        let r = guest_from(&proxy, &server, Some("9.9.9.9, 1.1.1.1")).await;
        assert_eq!(r.status(), 200);
    }
    let spoofed = guest_from(&proxy, &server, Some("8.8.8.8, 1.1.1.1")).await;
    expect_429(spoofed, "RATE_LIMITED", Some("30")).await;
    assert_eq!(guest_from(&proxy, &server, Some("2.2.2.2")).await.status(), 200);

    let direct = reqwest::Client::builder().local_address(ip("127.0.0.6")).build().unwrap();
    for _ in 0..2 {
        assert_eq!(guest_from(&direct, &server, Some("3.3.3.3")).await.status(), 200);
    }
    let ignored = guest_from(&direct, &server, Some("4.4.4.4")).await;
    expect_429(ignored, "RATE_LIMITED", Some("30")).await;
}

async fn http_input(server: &TestServer, token: &str, id: &str, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/api/shards/{id}/input")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn rejected(response: reqwest::Response, status: u16, reason: &str) -> Value {
    assert_eq!(response.status(), status, "{reason}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INPUT_REJECTED", "{body}");
    assert_eq!(body["error"]["reason"], reason, "{body}");
    assert!(body["error"]["hint"].is_string(), "{body}");
    body
}

/// A flood of HTTP inputs for one subscriber is held to the sockets' rate (5 a second,
/// burst 10: at most about 10 of 40 at once get through, the rest 429 `RATE_LIMITED`), and
/// every answer says what happened: applied (200 with `seq`), no subscription for the sid
/// (409 `unknown_subscriber`, with a hint to connect first), undecodable (400), the
/// game's refusal (403), the match over (409); an oversized body is a JSON 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_input_flood_gets_429_and_honest_rejections() {
    let server =
        TestServer::start(&[("PYLON_MAX_INPUTS_PER_SEC", "5"), ("PYLON_MAX_BODY_BYTES", "4096")])
            .await;
    let (player, user) = server.guest().await;
    let id = server.create(&player, "arena", json!({})).await;
    let (mut ws, _) = connect(
        &server.shard_url(&format!("shard={id}&sid={user}")),
        Some(&player),
        AuthPath::Header,
    )
    .await;
    assert!(matches!(next(&mut ws, SECS5).await, Seen::Snapshot(..)), "subscribed");

    let flood = (0..40u64).map(|seq| {
        http_input(&server, &player, &id, json!({"input": {"dx": 1}, "client_seq": seq}))
    });
    let answers = futures_util::future::join_all(flood).await;
    let (mut applied, mut limited) = (0, 0);
    for answer in answers {
        match answer.status().as_u16() {
            200 => applied += 1,
            429 => {
                assert!(answer.headers().contains_key("retry-after"));
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!((1..=12).contains(&applied), "about a burst got through: {applied}");
    assert_eq!(applied + limited, 40);

    // Honest answers (one at a time, at the allowed rate).
    let (stranger, _) = server.guest().await;
    let body = rejected(
        http_input(&server, &stranger, &id, json!({"input": {"dx": 1}})).await,
        409,
        "unknown_subscriber",
    )
    .await;
    assert!(body["error"]["hint"].as_str().unwrap().contains("connect"), "{body}");
    tokio::time::sleep(Duration::from_millis(400)).await; // let the player's bucket refill
    let applied =
        http_input(&server, &player, &id, json!({"input": {"dx": 0}, "client_seq": 99})).await;
    assert_eq!(applied.status(), 200);
    assert_eq!(applied.json::<Value>().await.unwrap(), json!({"accepted": true, "seq": 99}));
    tokio::time::sleep(Duration::from_millis(400)).await;
    rejected(
        http_input(&server, &player, &id, json!({"input": {"dx": "fast"}})).await,
        400,
        "decode",
    )
    .await;
    let huge = json!({"input": {"dx": "x".repeat(8000)}});
    let too_large = http_input(&server, &player, &id, huge).await;
    assert_eq!(too_large.status(), 413);
    assert_eq!(too_large.json::<Value>().await.unwrap()["error"]["code"], "PAYLOAD_TOO_LARGE");

    // The game's own refusal: tic-tac-toe out of turn.
    let (x, x_user) = server.guest().await;
    let (o, o_user) = server.guest().await;
    let game = server.create(&x, "tictactoe", json!({})).await;
    let (_xs, _) = connect(
        &server.shard_url(&format!("shard={game}&sid={x_user}")),
        Some(&x),
        AuthPath::Header,
    )
    .await;
    let (mut os, _) = connect(
        &server.shard_url(&format!("shard={game}&sid={o_user}")),
        Some(&o),
        AuthPath::Header,
    )
    .await;
    let _ = next(&mut os, SECS5).await;
    let refused = http_input(&server, &o, &game, json!({"input": {"cell": 4}})).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["reason"], "unauthorized");
    assert_eq!(http_input(&server, &x, &game, json!({"input": {"cell": 4}})).await.status(), 200);

    let stop = server.http.delete(server.url(&format!("/api/shards/{id}"))).bearer_auth(ADMIN);
    assert_eq!(stop.send().await.unwrap().status(), 200);
    let deadline = Instant::now() + SECS5;
    loop {
        let r = http_input(&server, &player, &id, json!({"input": {"dx": 1}})).await;
        if r.status() == 409 {
            rejected(r, 409, "finished").await;
            break;
        }
        assert!(Instant::now() < deadline, "input after stop still {}", r.status());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads a streaming response until `needle` shows up; when it did.
async fn stream_until(response: reqwest::Response, needle: &str, within: Duration) -> Instant {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in time: {text}"));
        match chunk {
            Some(Ok(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
            _ => panic!("stream ended without {needle:?}: {text}"),
        }
        if text.contains(needle) {
            return Instant::now();
        }
    }
}

/// Logout ends the token's live connections within a second: its shard socket and its
/// feed socket close with 1008 "session ended", its shard SSE stream and feed SSE stream
/// end with a final event; another session's socket keeps streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_tokens_sockets() {
    let server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let (bystander, _) = server.guest().await;
    let id = server.create(&token, "arena", json!({})).await;
    let (mut shard_ws, _) = connect(
        &server.shard_url(&format!("shard={id}&sid={user}")),
        Some(&token),
        AuthPath::Subprotocol,
    )
    .await;
    let (mut feed_ws, _) = connect(&server.sync_url(""), Some(&token), AuthPath::Header).await;
    let (mut other_ws, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(&bystander), AuthPath::Header)
            .await;
    // The SSE fallback subscribes the same sid to another match (one sid, one
    // subscription per match).
    let other_match = server.create(&token, "arena", json!({})).await;
    let shard_sse = server
        .http
        .get(server.url(&format!("/api/shards/{other_match}/connect?sid={user}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_sse.status(), 200);
    let feed_sse = server.http.get(server.events_url("")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(feed_sse.status(), 200);
    assert!(matches!(next(&mut shard_ws, SECS5).await, Seen::Snapshot(..)), "streaming");

    let out =
        server.http.post(server.url("/api/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.status(), 200);
    let logged_out = Instant::now();
    let within = Duration::from_secs(1);
    for (what, ws) in [("shard socket", &mut shard_ws), ("feed socket", &mut feed_ws)] {
        let (code, reason) = close_of(ws, SECS5).await;
        assert_eq!((code, reason.as_str()), (1008, "session ended"), "{what}");
        assert!(
            logged_out.elapsed() < within,
            "{what}: closed {:?} after logout",
            logged_out.elapsed()
        );
    }
    let shard_sse_ended = stream_until(shard_sse, "session_ended", SECS5).await;
    let feed_sse_ended = stream_until(feed_sse, "event: session_ended", SECS5).await;
    for (what, at) in [("shard SSE", shard_sse_ended), ("feed SSE", feed_sse_ended)] {
        assert!(at - logged_out < within, "{what}: ended {:?} after logout", at - logged_out);
    }
    assert!(matches!(next(&mut other_ws, SECS5).await, Seen::Snapshot(..)), "others go on");
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, "pylon_sessions_ended_total{why=\"logout\"}"), 1.0);
}

/// A session that expires (a 2 s guest lifetime here) has its shard socket closed with
/// 1008 "session ended" by the expiry sweep, within a second or so of its expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_closes_its_sockets() {
    let server = TestServer::start(&[("PYLON_GUEST_SESSION_TTL_SECS", "2")]).await;
    let reply: Value =
        server.http.post(server.url("/api/auth/guest")).send().await.unwrap().json().await.unwrap();
    let (token, expires_at) =
        (reply["token"].as_str().unwrap(), reply["expires_at"].as_i64().unwrap());
    let id = server.create(ADMIN, "arena", json!({})).await;
    let (mut ws, _) =
        connect(&server.shard_url(&format!("shard={id}")), Some(token), AuthPath::Header).await;
    let (code, reason) = close_of(&mut ws, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1008, "session ended"));
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(now >= expires_at as f64, "not before its expiry");
    assert!(
        now < expires_at as f64 + 2.5,
        "closed {:.1} s after its expiry",
        now - expires_at as f64
    );
}

/// Runs `pylon serve` with `DATABASE_URL` and returns its exit status, stderr and how long
/// it ran.
fn serve_with_database(url: &str) -> (Option<i32>, String, Duration) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pylon"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PYLON_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    let started = Instant::now();
    let out = cmd
        .arg("serve")
        .env("PYLON_ADMIN_TOKEN", ADMIN)
        .env("PYLON_HOST", "127.0.0.1")
        .env("PYLON_PORT", "1")
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).trim().to_owned(), started.elapsed())
}

/// A database that is not there is named within 5 s of start: a closed port says
/// "connection refused", a listener that never answers "timed out", and (with the local
/// Postgres, when there is one) an unknown role "authentication failed"; one line, exit 1.
#[test]
fn refused_database_names_the_cause() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, stderr, took) =
        serve_with_database(&format!("postgres://pylon@127.0.0.1:{closed_port}/db"));
    assert_eq!(code, Some(1), "{stderr}");
    let want = format!(
        "pylon: DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{closed_port}: connection refused"
    );
    assert_eq!(stderr, want);
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Accepts, never answers: the probe gives up after 5 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let (code, stderr, took) =
        serve_with_database(&format!("postgres://pylon@127.0.0.1:{silent_port}/db"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "pylon: DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{silent_port}: timed out"
        )),
        "{stderr}"
    );
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(8), "{took:?}");
    drop(silent);

    let pg_up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_secs(1),
    )
    .is_ok();
    if !pg_up {
        eprintln!("SKIPPED (auth case): no Postgres at 127.0.0.1:5432");
        return;
    }
    let (code, stderr, took) =
        serve_with_database("postgres://pylon_no_such_role@127.0.0.1:5432/test");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("pylon: DATABASE_URL: cannot connect to Postgres at 127.0.0.1:5432: authentication failed"), "{stderr}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Errors produced by the framework rather than by a handler (a path that is not valid
/// UTF-8, an oversized body on the create route) still answer in the JSON error shape,
/// with the code named after the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_rejections_answer_in_the_json_shape() {
    let server = TestServer::start(&[("PYLON_MAX_BODY_BYTES", "2048")]).await;
    let bad_path = server.http.get(server.url("/api/shards/%FF%FE")).send().await.unwrap();
    assert_eq!(bad_path.status(), 400);
    assert!(bad_path.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = bad_path.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    let huge = reqwest::Client::new()
        .post(server.url("/api/shards"))
        .bearer_auth(ADMIN)
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(huge.json::<Value>().await.unwrap()["error"]["code"], "PAYLOAD_TOO_LARGE");
}
