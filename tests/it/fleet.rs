//! The fleet (docs/REGIONS.md): regions that redirect to each other, two regions behind
//! the real nginx, several processes of one region sharing the real Postgres and Redis
//! (change feeds across processes, a Redis outage caught up from the log, logout), and
//! presence through the bus.
//!
//! Postgres and Redis come from `PYLON_TEST_DATABASE_URL` and `PYLON_TEST_REDIS_URL`
//! (defaults: `postgres://postgres@127.0.0.1:5432/test`, `redis://127.0.0.1:6379`); the
//! outage test runs its own `/usr/bin/redis-server`; the proxy test needs `nginx` and
//! `python3`. A missing service prints `SKIPPED: <test> needs <service>` and passes,
//! unless `PYLON_TEST_REQUIRE_SERVICES=1`. Every test has its own schema and bus
//! namespace.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECS5: Duration = Duration::from_secs(5);
const SECS15: Duration = Duration::from_secs(15);
const REDIS_SERVER: &str = "/usr/bin/redis-server";

// --- services ------------------------------------------------------------------------

fn require_services() -> bool {
    std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (or, when services are required, fails) a test whose service is missing.
fn skip(test: &str, service: &str, why: &str) {
    assert!(!require_services(), "{test} needs {service}: {why}");
    eprintln!("SKIPPED: {test} needs {service}");
}

/// The shared test Redis's URL when it answers a PING, else `None` after a SKIPPED line.
async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("PYLON_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rest = url.trim_start_matches("redis://");
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority).to_owned();
    let ping = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(&hostport).await.ok()?;
        conn.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 16];
        let n = conn.read(&mut reply).await.ok()?;
        reply[..n].starts_with(b"+PONG").then_some(())
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Some(())) => Some(url),
        _ => {
            skip(test, "redis", &format!("no PONG from {hostport}"));
            None
        }
    }
}

/// A bus namespace no other test or run uses.
fn namespace(test: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("pylon-it-{test}-{}-{n}-{nanos}", std::process::id())
}

/// A `redis-server` of the test's own on a free port; killed on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one, or `None` after a SKIPPED line when it is not installed.
    async fn start(test: &str) -> Option<Self> {
        if !std::path::Path::new(REDIS_SERVER).exists() {
            skip(test, "redis-server", "not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Self { child: None, port };
        server.spawn().await;
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + SECS5;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server on {} did not start", self.port);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// --- helpers -------------------------------------------------------------------------

/// An HTTP client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Two distinct port quadruples.
fn two_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port_pair(), free_port_pair());
        if a.abs_diff(b) > 3 {
            return (a, b);
        }
    }
}

/// Polls `probe` every 20 ms until it gives `Some`, failing with `what` after `within`.
async fn poll<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next text frame as JSON, within `within`.
async fn json_frame(ws: &mut Ws, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        match next(ws, deadline.saturating_duration_since(Instant::now())).await {
            Seen::Other(Message::Text(text)) => return serde_json::from_str(&text).unwrap(),
            Seen::Closed(code, reason) => panic!("socket closed: {code} {reason}"),
            _ => {}
        }
    }
}

async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Plays as `user` over the shard socket at `url` (which names the match): five inputs,
/// acknowledged by the match's snapshots.
async fn play(url: &str, token: &str, user: &str, http_input: Option<(&str, &reqwest::Client)>) {
    let (mut ws, _) = connect(url, Some(token), AuthPath::Header).await;
    let deadline = Instant::now() + SECS15;
    loop {
        assert!(Instant::now() < deadline, "{url}: no snapshot with {user}");
        if let Seen::Snapshot(_, snap) = next(&mut ws, SECS5).await
            && snap.to_string().contains(user)
        {
            break;
        }
    }
    for seq in 1..=5 {
        send_input(&mut ws, json!({"dx": 1, "dy": 0}), seq).await;
    }
    if let Some((input_url, http)) = http_input {
        let body = json!({"input": {"dx": 0, "dy": 1}, "client_seq": 6});
        let r = http.post(input_url).bearer_auth(token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{input_url}: {}", r.text().await.unwrap());
    }
    loop {
        assert!(Instant::now() < deadline, "{url}: ack 5 never arrived");
        if let Seen::Snapshot(_, snap) = next(&mut ws, SECS5).await
            && snap["ack"].as_u64().is_some_and(|ack| ack >= 5)
        {
            break;
        }
    }
    let _ = ws.close(None).await;
}

// --- regions -------------------------------------------------------------------------

/// Two regional processes (`eu`, `us`) on loopback: every route that names a match,
/// asked of the wrong region, answers 307 to the same route of the right one (query
/// kept); `GET /api/regions` lists both with their socket URLs; a shard socket on the
/// wrong region is closed with 4421 and the right region's URL, and a client that
/// follows it plays the match there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_region_redirects_to_the_owner() {
    let (p_eu, p_us) = two_ports();
    let regions = format!("eu=http://127.0.0.1:{p_eu},us=http://127.0.0.1:{p_us}");
    let env = |region| [("PYLON_REGION", region), ("PYLON_REGIONS", regions.as_str())];
    let eu = TestServer::start_at(p_eu, &env("eu")).await;
    let us = TestServer::start_at(p_us, &env("us")).await;
    let http = no_redirects();
    let (token, user) = eu.guest().await;
    let eu_match = eu.create(&token, "arena", json!({})).await;
    let us_match = us.create(ADMIN, "arena", json!({})).await;
    assert!(eu_match.starts_with("eu-") && us_match.starts_with("us-"));

    for (asked, owner, id) in [(&us, &eu, &eu_match), (&eu, &us, &us_match)] {
        let routes = [
            (Method::GET, format!("/api/shards/{id}")),
            (Method::POST, format!("/api/shards/{id}/input")),
            (Method::GET, format!("/api/shards/{id}/connect?sid={user}&token=x")),
            (Method::DELETE, format!("/api/shards/{id}")),
            (Method::GET, format!("/api/shards/{id}/replay")),
        ];
        for (method, path) in routes {
            let r = http
                .request(method.clone(), asked.url(&path))
                .bearer_auth(ADMIN)
                .json(&json!({"input": {}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT, "{method} {path}");
            let location = r.headers()["location"].to_str().unwrap().to_owned();
            assert_eq!(location, owner.url(&path), "{method} {path}");
        }
        // Asked of the owner, the same route is answered.
        let info = http.get(owner.url(&format!("/api/shards/{id}"))).send().await.unwrap();
        assert_eq!(info.status(), 200);
    }
    // A client that follows redirects lands on the match.
    let followed: Value = eu
        .http
        .get(us.url(&format!("/api/shards/{eu_match}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(followed["id"], eu_match.as_str());

    let listed: Value =
        http.get(us.url("/api/regions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        listed,
        json!([
            {"region": "eu", "url": eu.url(""), "ws_url": format!("ws://127.0.0.1:{p_eu}/shard")},
            {"region": "us", "url": us.url(""), "ws_url": format!("ws://127.0.0.1:{p_us}/shard")},
        ])
    );

    // The socket on the wrong region: 4421 with the owner's URL; follow it and play.
    let query = format!("shard={eu_match}&sid={user}");
    let (mut wrong, _) = connect(&us.shard_url(&query), Some(&token), AuthPath::Header).await;
    let (code, reason) = close_of(&mut wrong, SECS5).await;
    assert_eq!((code, reason.as_str()), (4421, eu.url("").as_str()));
    let ws_url = format!("{}/shard?{query}", reason.replacen("http://", "ws://", 1));
    play(&ws_url, &token, &user, None).await;
}

/// nginx as the edge.
struct Nginx {
    child: Child,
    _prefix: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The two-region shape (deploy/nginx/two-region) rendered for loopback: plain HTTP
    /// on `edge` (the main port) and `edge + 3` (the shard port), `eu` as the local
    /// region. `None` after a SKIPPED line without nginx or python3.
    fn start(test: &str, edge: u16, eu: u16, us: u16) -> Option<Self> {
        let have = |tool: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for tool in ["nginx", "python3"] {
            if !have(tool) {
                skip(test, tool, "not installed (.ci/run installs nginx)");
                return None;
            }
        }
        let prefix = TempDir::new("nginx");
        let out = prefix.0.to_string_lossy().into_owned();
        let up = |name: &str, port: u16| format!("--upstream={name}=127.0.0.1:{port}");
        let render = Command::new("python3")
            .arg(format!("{}/deploy/nginx/render.py", env!("CARGO_MANIFEST_DIR")))
            .args(["--shape", "two-region", "--out", &out, "--listen-host", "127.0.0.1"])
            .args(["--plain", "--drop-port", "80"])
            .arg(format!("--port=443={edge}"))
            .arg(format!("--port=4324={}", edge + 3))
            .args([up("pylon_local", eu), up("pylon_local_shard", eu + 3)])
            .args([up("pylon_eu", eu), up("pylon_eu_shard", eu + 3)])
            .args([up("pylon_us", us), up("pylon_us_shard", us + 3)])
            .output()
            .unwrap();
        assert!(render.status.success(), "render.py: {}", String::from_utf8_lossy(&render.stderr));
        let conf = format!("{out}/nginx.conf");
        let child = Command::new("nginx")
            .args(["-p", &out, "-c", &conf, "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Some(Self { child, _prefix: prefix })
    }
}

/// The two regions behind the real nginx (Debian's package, in the foreground with a temp
/// prefix on loopback ports, the repository's two-region config): for a match of each
/// region, its info and its HTTP input reach it through the edge by match id alone (no
/// redirect), and bots play it over `/shard` on the edge's main port and over the edge's
/// shard port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_behind_nginx() {
    let (p_eu, p_us) = two_ports();
    let edge = loop {
        let edge = free_port_pair();
        if edge.abs_diff(p_eu) > 3 && edge.abs_diff(p_us) > 3 {
            break edge;
        }
    };
    let regions = format!("eu=http://127.0.0.1:{p_eu},us=http://127.0.0.1:{p_us}");
    let env = |region| [("PYLON_REGION", region), ("PYLON_REGIONS", regions.as_str())];
    let eu = TestServer::start_at(p_eu, &env("eu")).await;
    let us = TestServer::start_at(p_us, &env("us")).await;
    let Some(_nginx) = Nginx::start("two_regions_behind_nginx", edge, p_eu, p_us) else { return };
    let http = no_redirects();
    let base = format!("http://127.0.0.1:{edge}");
    poll("the edge answering /health", SECS15, || {
        let url = format!("{base}/health");
        let http = http.clone();
        async move { http.get(url).send().await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    for server in [&eu, &us] {
        // Sessions live in each region's own database here, so the guest is the region's.
        let (token, user) = server.guest().await;
        let id = server.create(&token, "arena", json!({})).await;
        let info = http.get(format!("{base}/api/shards/{id}")).send().await.unwrap();
        assert_eq!(info.status(), 200, "{id} through the edge");
        assert_eq!(info.json::<Value>().await.unwrap()["id"], id.as_str());
        let input = format!("{base}/api/shards/{id}/input");
        let main = format!("ws://127.0.0.1:{edge}/shard?shard={id}&sid={user}");
        play(&main, &token, &user, Some((&input, &http))).await;
        let shard_port = format!("ws://127.0.0.1:{}/?shard={id}&sid={user}", edge + 3);
        play(&shard_port, &token, &user, None).await;
    }
}

// --- one region, several processes ---------------------------------------------------

/// The environment of process `instance` of region `eu` on a shared database and bus.
fn fleet_env<'a>(
    db: &'a str,
    bus: &'a str,
    ns: &'a str,
    instance: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", db),
        ("PYLON_CLUSTER_BUS", bus),
        ("PYLON_CLUSTER_NAMESPACE", ns),
        ("PYLON_REGION", "eu"),
        ("PYLON_INSTANCE", instance),
    ]
}

/// Inserts a note owned by `user` through `server`; its row id.
async fn note(server: &TestServer, token: &str, user: &str, text: &str) -> String {
    let r = server
        .http
        .post(server.url("/api/entities/Note"))
        .bearer_auth(token)
        .json(&json!({"owner": user, "text": text}))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Reads a feed's events until `marker`'s row: their (seq, row id) in arrival order.
async fn until_marker_ws(ws: &mut Ws, marker: &str) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    loop {
        let event = json_frame(ws, SECS15).await;
        if event["type"].is_string() {
            continue; // presence
        }
        let row = event["row_id"].as_str().unwrap().to_owned();
        seen.push((event["seq"].as_u64().unwrap(), row.clone()));
        if row == marker {
            return seen;
        }
    }
}

async fn until_marker_sse(events: &mut SseEvents, marker: &str) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + SECS15;
    loop {
        assert!(Instant::now() < deadline, "marker {marker} never arrived on SSE");
        let (id, event) = events.next().await;
        let row = event["row_id"].as_str().unwrap().to_owned();
        assert_eq!(event["seq"], id);
        seen.push((id, row.clone()));
        if row == marker {
            return seen;
        }
    }
}

/// Every expected row exactly once, in increasing `seq`, and nothing else.
fn exactly_once_in_order(seen: &[(u64, String)], expected: &[String], what: &str) {
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{what}: not in seq order: {seen:?}");
    let rows: Vec<&str> = seen.iter().map(|(_, r)| r.as_str()).collect();
    let unique: HashSet<&str> = rows.iter().copied().collect();
    assert_eq!(unique.len(), rows.len(), "{what}: a row twice: {rows:?}");
    let want: HashSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(unique, want, "{what}: other rows than expected");
}

async fn sse(server: &TestServer, token: &str, query: &str) -> SseEvents {
    let r = server.http.get(server.events_url(query)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    SseEvents::new(r)
}

/// Two processes of one region sharing the real Postgres and Redis, started at once on a
/// fresh schema (both set it up): writes through A,
/// some concurrent, reach B's WebSocket and SSE feed clients, each exactly once and in
/// `seq` order, and none that B's read policy hides from a client (notes are private to
/// their owner); `/api/sync/pull` gives the same seqs on both processes; a logout through
/// A closes the session's socket on B (1008).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_feeds_on_another_process() {
    let test = "writes_reach_feeds_on_another_process";
    let Some(db) = crate::postgres::schema_url("fleet_feeds").await else { return };
    let Some(bus) = redis_url(test).await else { return };
    let ns = namespace("feeds");
    let manifest = notes_manifest();
    let mut env_a = fleet_env(&db, &bus, &ns, "1");
    env_a.push(("PYLON_MANIFEST", &manifest));
    let mut env_b = fleet_env(&db, &bus, &ns, "2");
    env_b.push(("PYLON_MANIFEST", &manifest));
    // Started at once on the fresh schema, as a deploy starts them: both set it up (one
    // attempt each: a process that fails to start fails the test).
    let (p_a, p_b) = two_ports();
    let (a, b) = tokio::join!(TestServer::start_at(p_a, &env_a), TestServer::start_at(p_b, &env_b));
    let ((t1, u1), (t2, u2)) = (a.guest().await, a.guest().await);
    let (mut ws1, _) = connect(&b.sync_url("since=0"), Some(&t1), AuthPath::Header).await;
    let (mut ws2, _) = connect(&b.sync_url("since=0"), Some(&t2), AuthPath::Subprotocol).await;
    let mut sse1 = sse(&b, &t1, "since=0").await;

    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..10 {
        // Six writes at once: commits published out of order, across the bus.
        let writes = (0..6).map(|k| {
            let (token, user) = if k % 3 == 2 { (&t2, &u2) } else { (&t1, &u1) };
            let (a, text) = (&a, format!("r{round}-{k}"));
            async move { (k, note(a, token, user, &text).await) }
        });
        for (k, id) in futures_util::future::join_all(writes).await {
            if k % 3 == 2 { theirs.push(id) } else { mine.push(id) }
        }
    }
    mine.push(note(&a, &t1, &u1, "marker").await);
    theirs.push(note(&a, &t2, &u2, "marker").await);
    exactly_once_in_order(&until_marker_ws(&mut ws1, mine.last().unwrap()).await, &mine, "ws u1");
    exactly_once_in_order(
        &until_marker_sse(&mut sse1, mine.last().unwrap()).await,
        &mine,
        "sse u1",
    );
    exactly_once_in_order(
        &until_marker_ws(&mut ws2, theirs.last().unwrap()).await,
        &theirs,
        "ws u2",
    );

    let pull = |server: &TestServer| {
        let request =
            server.http.get(server.url("/api/sync/pull?since=0&limit=1000")).bearer_auth(ADMIN);
        async move {
            let page: Value = request.send().await.unwrap().json().await.unwrap();
            page["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["seq"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let (from_a, from_b) = (pull(&a).await, pull(&b).await);
    assert_eq!(from_a.len(), mine.len() + theirs.len());
    assert_eq!(from_a, from_b, "the same seqs on both processes");

    let out = a.http.post(a.url("/api/auth/logout")).bearer_auth(&t1).send().await.unwrap();
    assert_eq!(out.status(), 200);
    let (code, reason) = close_of(&mut ws1, SECS5).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "session ended"),
        "logout on A ends the socket on B"
    );
}

/// `/readyz` of `server`: status and the parts it names as failing.
async fn readiness(server: &TestServer) -> (u16, Vec<String>) {
    let r = server.http.get(server.url("/readyz")).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let failing = body["failing"].as_array().map(|f| f.iter().map(|v| v.to_string()).collect());
    (status, failing.unwrap_or_default())
}

/// A Redis the test runs is stopped while two processes share it and Postgres: within
/// 5 s both `/readyz` answer 503 naming `cluster_bus` (and `/metrics` shows the bus
/// down); writes through A keep succeeding, none waiting on the bus, and reach B's feeds
/// from the log even while the bus is down; after Redis returns both are ready again and
/// B's WebSocket and SSE feed clients have every write made before, during and after the
/// outage, in order, none twice; neither process crashed or hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_caught_up_from_the_log() {
    let test = "redis_outage_is_caught_up_from_the_log";
    let Some(db) = crate::postgres::schema_url("fleet_outage").await else { return };
    let Some(mut redis) = RedisServer::start(test).await else { return };
    let (bus, ns, manifest) = (redis.url(), namespace("outage"), notes_manifest());
    let mut env_a = fleet_env(&db, &bus, &ns, "1");
    env_a.push(("PYLON_MANIFEST", &manifest));
    let mut a = TestServer::start(&env_a).await;
    let mut env_b = fleet_env(&db, &bus, &ns, "2");
    env_b.push(("PYLON_MANIFEST", &manifest));
    let mut b = TestServer::start(&env_b).await;
    let (token, user) = a.guest().await;
    let (mut ws, _) = connect(&b.sync_url("since=0"), Some(&token), AuthPath::Header).await;
    let mut events = sse(&b, &token, "since=0").await;
    let mut rows = Vec::new();
    for i in 0..5 {
        rows.push(note(&a, &token, &user, &format!("before {i}")).await);
    }

    redis.kill();
    for server in [&a, &b] {
        poll("/readyz naming cluster_bus", SECS5, || async {
            let (status, failing) = readiness(server).await;
            (status == 503 && failing.iter().any(|f| f.contains("cluster_bus"))).then_some(())
        })
        .await;
        assert_eq!(metric(&server.metrics().await, "pylon_cluster_bus_up"), 0.0);
    }
    for i in 0..10 {
        let started = Instant::now();
        rows.push(note(&a, &token, &user, &format!("during {i}")).await);
        assert!(started.elapsed() < Duration::from_millis(1500), "a write waited on the bus");
    }
    // Even with the bus down, B's feeds get the writes from the shared log (its check of
    // the log's newest seq, every second).
    let last_during = rows.last().unwrap().clone();
    let mut ws_seen = until_marker_ws(&mut ws, &last_during).await;
    let mut sse_seen = until_marker_sse(&mut events, &last_during).await;

    redis.spawn().await;
    for server in [&a, &b] {
        poll("/readyz ready again", SECS15, || async {
            (readiness(server).await.0 == 200).then_some(())
        })
        .await;
    }
    rows.push(note(&a, &token, &user, "after").await);
    let marker = rows.last().unwrap().clone();
    ws_seen.extend(until_marker_ws(&mut ws, &marker).await);
    sse_seen.extend(until_marker_sse(&mut events, &marker).await);
    exactly_once_in_order(&ws_seen, &rows, "ws");
    exactly_once_in_order(&sse_seen, &rows, "sse");
    assert!(a.alive() && b.alive(), "a process exited");
    for server in [&a, &b] {
        let health = server.http.get(server.url("/health")).timeout(SECS5).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
}

/// Presence between two processes through the bus: a socket's presence and topic frames
/// reach a socket of the same room or topic on the other process, stamped with the
/// sender's user id (`from`) and socket (`clientId`); HTTP room joins are seen by the
/// other process (`GET /api/rooms/:room`) and pushed to the room's sockets; a socket that
/// goes away sends `{"type":"presence","event":"disconnect","clientId"}` to its room;
/// and a process of another namespace on the same Redis sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_processes_and_namespaces() {
    let Some(bus) = redis_url("presence_across_processes_and_namespaces").await else { return };
    let (ns, other_ns) = (namespace("presence"), namespace("presence-other"));
    let env = |ns: &str| -> Vec<(String, String)> {
        vec![
            ("PYLON_CLUSTER_BUS".into(), bus.clone()),
            ("PYLON_CLUSTER_NAMESPACE".into(), ns.into()),
        ]
    };
    let start = |env: Vec<(String, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        TestServer::start(&env).await
    };
    let (a, b, c) = (start(env(&ns)).await, start(env(&ns)).await, start(env(&other_ns)).await);
    let ((ta, ua), (tb, _), (tc, _), (tc2, uc2)) =
        (a.guest().await, b.guest().await, c.guest().await, c.guest().await);
    let (mut wa, _) = connect(&a.sync_url(""), Some(&ta), AuthPath::Header).await;
    let (mut wb, _) = connect(&b.sync_url(""), Some(&tb), AuthPath::Header).await;
    let (mut wc, _) = connect(&c.sync_url(""), Some(&tc), AuthPath::Header).await;
    let (mut wc2, _) = connect(&c.sync_url(""), Some(&tc2), AuthPath::Header).await;
    for ws in [&mut wb, &mut wc] {
        send_json(ws, &json!({"type": "presence", "event": "join", "room": "lobby"})).await;
        send_json(ws, &json!({"type": "topic", "topic": "chat", "event": "subscribe"})).await;
    }

    // A's update reaches B (sent until B, which joined on its own process, hears it).
    let update = json!({"type": "presence", "event": "update", "room": "lobby", "data": {"x": 1}});
    let (got, _) = relay_until_heard(&mut wa, &mut wb, &update).await;
    assert_eq!((got["from"].as_str(), got["data"]["x"].as_i64()), (Some(ua.as_str()), Some(1)));
    let client_a = got["clientId"].as_str().unwrap().to_owned();
    let chat = json!({"type": "topic", "topic": "chat", "data": "hi"});
    let (got, _) = relay_until_heard(&mut wa, &mut wb, &chat).await;
    assert_eq!(
        (got["from"].as_str(), got["clientId"].as_str()),
        (Some(ua.as_str()), Some(client_a.as_str()))
    );

    // An HTTP room on A: B's replica lists the member, and B's room socket is told.
    let joined = a
        .http
        .post(a.url("/api/rooms/join"))
        .bearer_auth(&ta)
        .json(&json!({"room": "lobby", "data": {"cursor": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 200);
    poll("B lists A's member of lobby", SECS5, || async {
        let room: Value = b
            .http
            .get(b.url("/api/rooms/lobby"))
            .bearer_auth(&tb)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (room["count"] == 1 && room["members"][0]["user_id"] == ua.as_str()).then_some(())
    })
    .await;
    let event = frame_of_type(&mut wb, "join").await;
    assert_eq!(
        (event["room"].as_str(), event["user_id"].as_str()),
        (Some("lobby"), Some(ua.as_str()))
    );

    // A goes away: B's room socket is told which socket left.
    wa.close(None).await.unwrap();
    let gone = frame_of_type(&mut wb, "presence").await;
    assert_eq!(gone["event"], "disconnect");
    assert_eq!(gone["clientId"], client_a.as_str());

    // The other namespace heard nothing: its first frame is its own process's.
    let mine = json!({"type": "presence", "event": "update", "room": "lobby", "data": "c"});
    let (got, before) = relay_until_heard(&mut wc2, &mut wc, &mine).await;
    assert!(before.is_empty(), "another namespace's frames: {before:?}");
    assert_eq!(got["from"], uc2.as_str());
    let room: Value = c
        .http
        .get(c.url("/api/rooms/lobby"))
        .bearer_auth(&tc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(room["count"], 0, "another namespace's room: {room}");
}

/// Sends `frame` from `from` every 100 ms until `to` receives one relayed (the same
/// `type` and `event`); that frame, and the frames `to` received before it.
async fn relay_until_heard(from: &mut Ws, to: &mut Ws, frame: &Value) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + SECS15;
    let mut before = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "{frame} never relayed");
        send_json(from, frame).await;
        let wait = Instant::now() + Duration::from_millis(100);
        while let Ok(got) = tokio::time::timeout_at(wait.into(), json_frame(to, SECS15)).await {
            if got["type"] == frame["type"] && got["event"] == frame["event"] {
                return (got, before);
            }
            before.push(got);
        }
    }
}

/// The next frame with `"type": kind`, skipping others (relays still arriving).
async fn frame_of_type(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + SECS15;
    loop {
        assert!(Instant::now() < deadline, "no {kind} frame");
        let frame = json_frame(ws, SECS15).await;
        if frame["type"] == kind && frame["event"] != "update" {
            return frame;
        }
    }
}
