//! The matchmaker through the real binary (docs/MATCHMAKER.md): bots queue over HTTP, get
//! their assignments pushed (the ticket's SSE stream and the sync socket) and play the
//! match they land in; every refusal is typed; regions redirect; backfill fills a seat a
//! player never took; two processes of one region share the real Redis queue (and
//! Postgres sessions): no ticket lost or matched twice, and matching survives the lease
//! holder's SIGKILL.
//!
//! The two-process tests read `PYLON_TEST_REDIS_URL` and `PYLON_TEST_DATABASE_URL`
//! (defaults `redis://127.0.0.1:6379`, `postgres://postgres@127.0.0.1:5432/test`); without
//! them they print `SKIPPED` and pass, unless `PYLON_TEST_REQUIRE_SERVICES=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);
const SECS20: Duration = Duration::from_secs(20);
const TICKETS: &str = "/api/matchmaker/tickets";

/// A ticket's SSE stream: named events with JSON data.
struct TicketEvents {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl TicketEvents {
    async fn open(server: &TestServer, token: &str, ticket: &str) -> Self {
        let url = server.url(&format!("{TICKETS}/{ticket}/events"));
        let r = server.http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200, "events of {ticket}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Self { body: Box::pin(r.bytes_stream()), buf: String::new() }
    }

    /// The next named event within `within`: (name, data); `None` when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let name = event.lines().find_map(|l| l.strip_prefix("event:"));
                let data = event.lines().find_map(|l| l.strip_prefix("data:"));
                if let (Some(name), Some(data)) = (name, data) {
                    return Some((
                        name.trim().to_owned(),
                        serde_json::from_str(data.trim()).unwrap(),
                    ));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an SSE event before the deadline")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }
}

/// Files a ticket: (status, answer).
async fn ticket(server: &TestServer, token: &str, body: Value) -> (u16, Value) {
    server.post_json(TICKETS, token, &body).await
}

/// `GET`/`DELETE` a ticket route: (status, answer).
async fn ticket_call(
    server: &TestServer,
    method: reqwest::Method,
    token: &str,
    id: &str,
) -> (u16, Value) {
    let r = server.http.request(method, server.url(&format!("{TICKETS}/{id}"))).bearer_auth(token);
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The next `{"type":"match"}` frame on a sync socket, within `within`.
async fn match_frame(ws: &mut Ws, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Seen::Other(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] == "match" {
                    return v;
                }
            }
            Seen::Closed(code, reason) => panic!("sync socket closed: {code} {reason}"),
            _ => {}
        }
    }
}

/// Plays as `user` in the match `m` names (`ws_url`, `shard_id`, `sid`): waits for a
/// snapshot in which all `players` are seated, itself among them, then sends three inputs
/// and waits for their ack. Returns the players it saw and the socket (still open).
async fn play(m: &Value, token: &str, user: &str, players: usize) -> (BTreeSet<String>, Ws) {
    let url = format!(
        "{}?shard={}&sid={}",
        m["ws_url"].as_str().unwrap(),
        m["shard_id"].as_str().unwrap(),
        m["sid"].as_str().unwrap()
    );
    assert_eq!(m["sid"], user);
    let (mut ws, _) = connect(&url, Some(token), AuthPath::Header).await;
    let deadline = Instant::now() + SECS20;
    let seen = loop {
        assert!(Instant::now() < deadline, "{user}: never saw {players} players");
        if let Seen::Snapshot(_, snap) = next(&mut ws, SECS20).await {
            let ids: BTreeSet<String> = snap["players"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect();
            if ids.len() == players && ids.contains(user) {
                break ids;
            }
        }
    };
    for seq in 1..=3 {
        send_input(&mut ws, json!({"dx": 1, "dy": 0}), seq).await;
    }
    loop {
        assert!(Instant::now() < deadline, "{user}: inputs never acknowledged");
        if let Seen::Snapshot(_, snap) = next(&mut ws, SECS20).await
            && snap["ack"].as_u64().is_some_and(|ack| ack >= 3)
        {
            break;
        }
    }
    (seen, ws)
}

/// One bot: a guest with its sync socket open, then its ticket (`skill`), its SSE stream;
/// `expect_queued`: the stream must start `queued` (so the assignment that follows is a
/// push).
struct Bot {
    token: String,
    user: String,
    sync: Ws,
    ticket: String,
    events: TicketEvents,
}

async fn queue_bot(server: &TestServer, skill: f64, expect_queued: bool) -> Bot {
    let (token, user) = server.guest().await;
    let (sync, _) = connect(&server.sync_url(""), Some(&token), AuthPath::Header).await;
    let (status, body) = ticket(server, &token, json!({"game": "arena", "skill": skill})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["status"].as_str(), body["game"].as_str()), (Some("queued"), Some("arena")));
    let id = body["ticket_id"].as_str().unwrap().to_owned();
    let mut events = TicketEvents::open(server, &token, &id).await;
    if expect_queued {
        let (name, first) = events.next(SECS5).await.unwrap();
        assert_eq!((name.as_str(), &first["status"]), ("queued", &json!("queued")), "{first}");
        assert!(first["position"].as_u64().is_some_and(|p| p >= 1));
    }
    Bot { token, user, sync, ticket: id, events }
}

/// What a bot was told: the assignment on its SSE stream, checked against its sync
/// socket's frame and the ticket's status.
async fn assignment(server: &TestServer, bot: &mut Bot) -> Value {
    let pushed = loop {
        let (name, data) = bot.events.next(SECS20).await.expect("the stream ends after matched");
        match name.as_str() {
            "queued" => {}
            "matched" => break data,
            other => panic!("{}: event {other}: {data}", bot.ticket),
        }
    };
    assert!(bot.events.next(SECS5).await.is_none(), "the stream ends after its assignment");
    let framed = match_frame(&mut bot.sync, SECS20).await;
    for key in ["shard_id", "region", "ws_url", "sid", "expires_at"] {
        assert_eq!(framed[key], pushed[key], "{key}: socket {framed} vs SSE {pushed}");
    }
    assert_eq!(
        (&framed["ticket_id"], &pushed["ticket_id"]),
        (&json!(bot.ticket), &json!(bot.ticket))
    );
    let (status, read) = ticket_call(server, reqwest::Method::GET, &bot.token, &bot.ticket).await;
    assert_eq!((status, &read["shard_id"]), (200, &pushed["shard_id"]));
    pushed
}

/// 64 bots queue for arena over HTTP in eight skill groups (10,000 points apart, so
/// groups cannot mix for 30 s): seven of each group first, each stream showing
/// `queued`, then the eighth. Every bot is told its match by push: 56 on their ticket's
/// SSE stream after `queued` (the other 8 may read it at once), all 64 on their sync
/// socket; the status agrees. Each match is full (8 tickets, 8 distinct players, one
/// group), its id is this process's, and every bot plays it: sees all 8 seated and has
/// its inputs acknowledged. The metrics count 64 tickets created and matched, 8 matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_bots_fill_eight_matches_and_play() {
    let server = TestServer::start(&[("PYLON_TICKETS_PER_SEC_PER_IP", "1000")]).await;
    let skill = |group: usize| 1_000.0 + 10_000.0 * group as f64;
    let first = join_all((0..56).map(|i| queue_bot(&server, skill(i % 8), true))).await;
    let last = join_all((0..8).map(|g| queue_bot(&server, skill(g), false))).await;
    let mut bots: Vec<(usize, Bot)> = first
        .into_iter()
        .enumerate()
        .map(|(i, b)| (i % 8, b))
        .chain(last.into_iter().enumerate())
        .collect();
    let told = join_all(bots.iter_mut().map(|(_, bot)| assignment(&server, bot))).await;

    let mut matches: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, m) in told.iter().enumerate() {
        matches.entry(m["shard_id"].as_str().unwrap().to_owned()).or_default().push(i);
        assert!(m["shard_id"].as_str().unwrap().starts_with("local-"), "{m}");
        assert_eq!(m["ws_url"], format!("ws://127.0.0.1:{}/shard", server.port));
    }
    assert_eq!(matches.len(), 8, "{matches:?}");
    for members in matches.values() {
        assert_eq!(members.len(), 8);
        let groups: BTreeSet<usize> = members.iter().map(|i| bots[*i].0).collect();
        assert_eq!(groups.len(), 1, "a match mixed skill groups");
    }
    let plays = bots.iter().zip(&told).map(|((_, b), m)| play(m, &b.token, &b.user, 8));
    let seen = join_all(plays).await;
    for members in matches.values() {
        let users: BTreeSet<String> = members.iter().map(|i| bots[*i].1.user.clone()).collect();
        for i in members {
            assert_eq!(seen[*i].0, users, "a bot saw other players than its match's");
        }
    }
    let text = server.metrics().await;
    assert_eq!(metric(&text, "pylon_matchmaker_tickets_total{event=\"created\"}"), 64.0);
    assert_eq!(metric(&text, "pylon_matchmaker_tickets_total{event=\"matched\"}"), 64.0);
    assert_eq!(metric(&text, "pylon_matchmaker_matches_total"), 8.0);
    assert!(metric(&text, "pylon_matchmaker_pushes_total{path=\"sse\"}") >= 56.0);
    assert_eq!(metric(&text, "pylon_matchmaker_pushes_total{path=\"socket\"}"), 64.0);
    let count =
        "pylon_matchmaker_time_to_match_seconds_count{game=\"arena\",mode=\"\",region=\"local\"}";
    assert_eq!(metric(&text, count), 64.0);
}

/// The error code of an answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Every refusal of the ticket routes is typed: unknown game or mode 400, a party member
/// without a live session 400 (naming the user), a second open ticket 409 naming the
/// first (for the owner and for a party member), no token 401, someone else's ticket 403,
/// an unknown ticket 404; a party member may read and cancel the ticket, a cancelled
/// ticket reads `cancelled` and cannot be cancelled again (410), its players may queue
/// again; a matched ticket cannot be cancelled (409); an expired ticket is 410 with
/// `status: expired`, and its open SSE stream is told `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed() {
    let server = TestServer::start(&[
        ("PYLON_TICKETS_PER_SEC_PER_IP", "1000"),
        ("PYLON_TICKET_TIMEOUT_SECS", "2"),
    ])
    .await;
    let ((a, ua), (b, ub), (c, _)) =
        (server.guest().await, server.guest().await, server.guest().await);
    let (s, e) = ticket(&server, &a, json!({"game": "chess"})).await;
    assert_eq!((s, code(&e)), (400, "UNKNOWN_GAME"));
    let (s, e) = ticket(&server, &a, json!({"game": "arena", "mode": "ranked"})).await;
    assert_eq!((s, code(&e)), (400, "UNKNOWN_MODE"));
    let (s, e) = ticket(&server, &a, json!({"game": "arena", "party": ["guest_nobody"]})).await;
    assert_eq!((s, code(&e), &e["error"]["user"]), (400, "INVALID_PARTY", &json!("guest_nobody")));
    let (s, e) = ticket(&server, &a, json!({"game": "arena", "wat": 1})).await;
    assert_eq!((s, code(&e)), (400, "INVALID_JSON"));
    let r =
        server.http.post(server.url(TICKETS)).json(&json!({"game": "arena"})).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A party of two: the owner and the member share one ticket.
    let (s, t) = ticket(&server, &a, json!({"game": "arena", "party": [ub]})).await;
    assert_eq!((s, &t["party"]), (201, &json!([ua, ub])), "{t}");
    let id = t["ticket_id"].as_str().unwrap().to_owned();
    for token in [&a, &b] {
        let (s, e) = ticket(&server, token, json!({"game": "tictactoe"})).await;
        assert_eq!(
            (s, code(&e), e["error"]["ticket_id"].as_str()),
            (409, "ALREADY_QUEUED", Some(id.as_str()))
        );
    }
    let (s, read) = ticket_call(&server, reqwest::Method::GET, &b, &id).await;
    assert_eq!(
        (s, read["status"].as_str(), read["position"].as_u64()),
        (200, Some("queued"), Some(1))
    );
    let (s, e) = ticket_call(&server, reqwest::Method::GET, &c, &id).await;
    assert_eq!((s, code(&e)), (403, "FORBIDDEN"));
    let (s, e) = ticket_call(&server, reqwest::Method::GET, &a, "local-nosuchticket000000").await;
    assert_eq!((s, code(&e)), (404, "TICKET_NOT_FOUND"));
    let (s, done) = ticket_call(&server, reqwest::Method::DELETE, &b, &id).await;
    assert_eq!((s, done["status"].as_str()), (200, Some("cancelled")));
    let (s, read) = ticket_call(&server, reqwest::Method::GET, &a, &id).await;
    assert_eq!((s, read["status"].as_str()), (200, Some("cancelled")));
    let (s, e) = ticket_call(&server, reqwest::Method::DELETE, &a, &id).await;
    assert_eq!((s, code(&e)), (410, "TICKET_CANCELLED"));

    // Matched: tictactoe seats two; the match exists before the status says so.
    let (_, t1) = ticket(&server, &a, json!({"game": "tictactoe"})).await;
    let (_, t2) = ticket(&server, &c, json!({"game": "tictactoe"})).await;
    let id1 = t1["ticket_id"].as_str().unwrap().to_owned();
    let mut events = TicketEvents::open(&server, &a, &id1).await;
    let matched = loop {
        let (name, data) = events.next(SECS5).await.unwrap();
        if name == "matched" {
            break data;
        }
    };
    let shard = matched["shard_id"].as_str().unwrap();
    let info = server.get_json(&format!("/api/shards/{shard}"), ADMIN).await;
    assert_eq!(info["game"], "tictactoe");
    let (s, e) = ticket_call(&server, reqwest::Method::DELETE, &a, &id1).await;
    assert_eq!((s, code(&e)), (409, "ALREADY_MATCHED"));
    let (_, read2) =
        ticket_call(&server, reqwest::Method::GET, &c, t2["ticket_id"].as_str().unwrap()).await;
    assert_eq!(read2["shard_id"], matched["shard_id"]);

    // Expiry (timeout 2 s): the stream is told, then the status is 410.
    let (_, lone) = ticket(&server, &b, json!({"game": "arena"})).await;
    let lone = lone["ticket_id"].as_str().unwrap().to_owned();
    let mut events = TicketEvents::open(&server, &b, &lone).await;
    let last = loop {
        let (name, data) = events.next(SECS5).await.unwrap();
        if name != "queued" {
            break (name, data);
        }
    };
    assert_eq!((last.0.as_str(), &last.1["status"]), ("expired", &json!("expired")));
    let (s, e) = ticket_call(&server, reqwest::Method::GET, &b, &lone).await;
    assert_eq!((s, code(&e), &e["error"]["status"]), (410, "TICKET_EXPIRED", &json!("expired")));
    let (s, _) = ticket(&server, &b, json!({"game": "arena"})).await;
    assert_eq!(s, 201, "an expired ticket's player may queue again");
}

/// Tickets per second per address: a burst of 10 at the default 5 a second, then 429
/// `RATE_LIMITED` with `Retry-After`; a request carrying the admin token (which files a
/// ticket for the players it names) is exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_per_address_are_limited() {
    let server = TestServer::start(&[]).await;
    let (token, user) = server.guest().await;
    let mut refused = None;
    for _ in 0..30 {
        let r = server
            .http
            .post(server.url(TICKETS))
            .bearer_auth(&token)
            .json(&json!({"game": "chess"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 400);
    }
    let refused = refused.expect("refused within 30 tickets");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(code(&refused.json().await.unwrap()), "RATE_LIMITED");
    let (s, t) = ticket(&server, ADMIN, json!({"game": "arena", "party": [user]})).await;
    assert_eq!((s, &t["party"]), (201, &json!([user])), "{t}");
    let (s, e) = ticket(&server, ADMIN, json!({"game": "arena"})).await;
    assert_eq!((s, code(&e)), (400, "INVALID_PARTY"), "the admin token names the players");
    let text = server.metrics().await;
    assert!(metric(&text, "pylon_limit_refusals_total{limit=\"tickets\"}") >= 1.0);
}

/// Regions: a ticket naming another configured region, or measuring it fastest within
/// 80 ms, is answered 307 to the same route of that region; a slower region leaves it
/// here; an unknown region is 400. A ticket id names its region: its routes on another
/// region are redirected there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_go_to_their_region() {
    let port = free_port_pair();
    let regions = format!("eu=http://127.0.0.1:{port},us=http://us.example.test:4321");
    let env = [("PYLON_REGION", "eu"), ("PYLON_REGIONS", regions.as_str())];
    let server = TestServer::start_at(port, &env).await;
    let (token, _) = server.guest().await;
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let post = |body: Value| http.post(server.url(TICKETS)).bearer_auth(&token).json(&body).send();
    let to_us = "http://us.example.test:4321/api/matchmaker/tickets";
    for body in [
        json!({"game": "arena", "region": "us"}),
        json!({"game": "arena", "latencies": {"us": 12.0, "eu": 40.0}}),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT, "{body}");
        assert_eq!(r.headers()["location"], to_us);
    }
    let r = post(json!({"game": "arena", "latencies": {"us": 95.0, "eu": 120.0}})).await.unwrap();
    assert_eq!(r.status(), 201, "no region within 80 ms: this one");
    let here: Value = r.json().await.unwrap();
    assert!(here["ticket_id"].as_str().unwrap().starts_with("eu-"), "{here}");
    assert_eq!(here["region"], "eu");
    let r = post(json!({"game": "arena", "region": "mars"})).await.unwrap();
    assert_eq!(
        (r.status(), code(&r.json().await.unwrap())),
        (StatusCode::BAD_REQUEST, "UNKNOWN_REGION")
    );
    for path in ["", "/events"] {
        let r = http
            .get(server.url(&format!("{TICKETS}/us-abcdefghijklmnopqrst{path}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()["location"], format!("{to_us}/us-abcdefghijklmnopqrst{path}"));
    }
}

/// Backfill (arena opts in): a match of 8 whose two players never connect offers their
/// seats once the hold (`PYLON_SEAT_HOLD_SECS=1`) passes; the next tickets are
/// backfilled into it (`backfill: true`, the same match) instead of waiting for a new
/// match, and the newcomer plays there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_fills_seats_nobody_took() {
    let server = TestServer::start(&[
        ("PYLON_TICKETS_PER_SEC_PER_IP", "1000"),
        ("PYLON_SEAT_HOLD_SECS", "1"),
    ])
    .await;
    let mut bots = join_all((0..8).map(|_| queue_bot(&server, 1_000.0, false))).await;
    let told = join_all(bots.iter_mut().map(|bot| assignment(&server, bot))).await;
    let shard = told[0]["shard_id"].clone();
    assert!(told.iter().all(|m| m["shard_id"] == shard && m["backfill"] == false));
    // Six play; two never connect.
    let six = bots.iter().zip(&told).take(6).map(|(b, m)| play(m, &b.token, &b.user, 6));
    let _playing = join_all(six).await;
    let mut late = queue_bot(&server, 1_000.0, false).await;
    let m = assignment(&server, &mut late).await;
    assert_eq!((&m["shard_id"], &m["backfill"]), (&shard, &json!(true)), "{m}");
    let (seen, _) = play(&m, &late.token, &late.user, 7).await;
    assert!(seen.contains(&late.user));
    let text = server.metrics().await;
    assert_eq!(metric(&text, "pylon_matchmaker_backfills_total"), 1.0);
    assert_eq!(metric(&text, "pylon_matchmaker_matches_total"), 1.0);
}

// --- two processes of one region ----------------------------------------------------

fn require_services() -> bool {
    std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The test Redis's URL when it answers a PING, else `None` after a SKIPPED line.
async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("PYLON_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .to_owned();
    let ping = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&hostport).await.ok()?;
        conn.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 16];
        let n = conn.read(&mut reply).await.ok()?;
        reply[..n].starts_with(b"+PONG").then_some(())
    };
    if tokio::time::timeout(Duration::from_secs(3), ping).await.ok().flatten().is_some() {
        return Some(url);
    }
    assert!(!require_services(), "{test} needs redis at {hostport}");
    eprintln!("SKIPPED: {test} needs redis");
    None
}

/// Two processes of region `eu` (instances 1 and 2) on the real Postgres and Redis, one
/// bus namespace of this test's own.
async fn region_pair(test: &str) -> Option<(TestServer, TestServer)> {
    let db = crate::postgres::schema_url(test).await?;
    let bus = redis_url(test).await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ns = format!("pylon-it-mm-{test}-{}-{nanos}", std::process::id());
    let env = |instance| {
        [
            ("DATABASE_URL", db.as_str()),
            ("PYLON_CLUSTER_BUS", bus.as_str()),
            ("PYLON_CLUSTER_NAMESPACE", ns.as_str()),
            ("PYLON_REGION", "eu"),
            ("PYLON_INSTANCE", instance),
            ("PYLON_TICKETS_PER_SEC_PER_IP", "1000"),
        ]
    };
    let (e1, e2) = (env("1"), env("2"));
    let (a, b) = tokio::join!(TestServer::start(&e1), TestServer::start(&e2));
    Some((a, b))
}

/// Polls `id`'s status on `server` (deadline `within`) until it is matched; the answer.
async fn until_matched(server: &TestServer, token: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, read) = ticket_call(server, reqwest::Method::GET, token, id).await;
        assert_eq!(status, 200, "{id}: {read}");
        if read["status"] == "matched" {
            return read;
        }
        assert!(Instant::now() < deadline, "{id} not matched within {within:?}: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two processes of one region share one Redis queue: 48 tickets sent to both (alternately,
/// concurrently) become exactly 6 full matches of 8; every ticket is matched once (the
/// status on either process names the same match; the two processes' counters add up
/// to 48 tickets matched in 6 matches), and all matches were made by the process holding
/// the queue's lease (their ids carry its prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_queue() {
    let Some((a, b)) = region_pair("mm_share").await else { return };
    let servers = [&a, &b];
    let guests = join_all((0..48).map(|i| servers[i % 2].guest())).await;
    let filed = join_all(guests.iter().enumerate().map(|(i, (token, _))| async move {
        let (s, t) = ticket(servers[i % 2], token, json!({"game": "arena"})).await;
        assert_eq!(s, 201, "{t}");
        t["ticket_id"].as_str().unwrap().to_owned()
    }))
    .await;
    let mut by_match: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, id) in filed.iter().enumerate() {
        let token = &guests[i].0;
        let here = until_matched(servers[i % 2], token, id, SECS20).await;
        let there = until_matched(servers[(i + 1) % 2], token, id, SECS5).await;
        assert_eq!(here["shard_id"], there["shard_id"]);
        by_match.entry(here["shard_id"].as_str().unwrap().to_owned()).or_default().push(i);
    }
    assert_eq!(by_match.len(), 6, "{by_match:?}");
    assert!(by_match.values().all(|m| m.len() == 8));
    let prefixes: BTreeSet<&str> =
        by_match.keys().map(|id| id.split('-').next().unwrap()).collect();
    assert_eq!(prefixes.len(), 1, "one lease holder made every match: {prefixes:?}");
    let (ta, tb) = (a.metrics().await, b.metrics().await);
    let sum = |name: &str| metric(&ta, name) + metric(&tb, name);
    assert_eq!(sum("pylon_matchmaker_tickets_total{event=\"matched\"}"), 48.0);
    assert_eq!(sum("pylon_matchmaker_matches_total"), 6.0);
    assert_eq!(sum("pylon_matchmaker_tickets_total{event=\"created\"}"), 48.0);
}

/// The lease holder dies (SIGKILL, leases not released): tickets queued before and after
/// (half a match through each process, then the rest through the survivor) are matched
/// by the survivor within 5 s of the kill, in one match under the survivor's prefix, and
/// the players play it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_holder_killed_hands_matching_over() {
    let Some((a, b)) = region_pair("mm_failover").await else { return };
    // One match first, to learn which process holds the lease.
    let guests = join_all((0..8).map(|_| a.guest())).await;
    let mut ids = Vec::new();
    for (token, _) in &guests {
        ids.push(
            ticket(&a, token, json!({"game": "arena"})).await.1["ticket_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let first = until_matched(&a, &guests[0].0, &ids[0], SECS20).await;
    let holder = first["shard_id"].as_str().unwrap().split('-').next().unwrap().to_owned();
    // `a` is instance 1 (`eu_1-…` ids), `b` instance 2.
    let (dead, survivor) = if holder == "eu_1" { (a, b) } else { (b, a) };
    let guests = join_all((0..8).map(|_| survivor.guest())).await;
    let mut queued = Vec::new();
    for (i, (token, _)) in guests.iter().enumerate().take(4) {
        let via = if i % 2 == 0 { &dead } else { &survivor };
        queued.push(
            ticket(via, token, json!({"game": "arena"})).await.1["ticket_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let _ = dead.sigkill();
    let killed = Instant::now();
    for (token, _) in guests.iter().skip(4) {
        queued.push(
            ticket(&survivor, token, json!({"game": "arena"})).await.1["ticket_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut matched = Vec::new();
    for (id, (token, _)) in queued.iter().zip(&guests) {
        let left =
            Duration::from_secs(5).saturating_sub(killed.elapsed()).max(Duration::from_millis(1));
        matched.push(until_matched(&survivor, token, id, left).await);
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(5), "matching resumed after {took:?}");
    eprintln!("lease holder {holder} killed: its tickets matched by the other after {took:?}");
    let shard = &matched[0]["shard_id"];
    assert!(matched.iter().all(|m| m["shard_id"] == *shard));
    assert!(
        !shard.as_str().unwrap().starts_with(&format!("{holder}-")),
        "the survivor made it: {shard}"
    );
    let plays = matched.iter().zip(&guests).map(|(m, (t, u))| play(m, t, u, 8));
    join_all(plays).await;
}
