//! The cluster bus against a real Redis: delivery between instances (and not to oneself),
//! namespaces apart, the no-op bus, refusals at connect (refused, timeout, auth), a full
//! queue, malformed messages, close, and an outage of a `redis-server` the test runs.
//!
//! Redis comes from `PYLON_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); when it does
//! not answer a test prints `SKIPPED: <test> needs redis` and passes, unless
//! `PYLON_TEST_REQUIRE_SERVICES=1`. Tests that run their own server need
//! `/usr/bin/redis-server` on the same terms. Every test has its own namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pylon_sync::bus::{
    BusError, BusMode, ClusterBus, Envelope, InstanceId, Kind, PUBLISH_QUEUE, PublishOutcome,
};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::TryRecvError};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

fn require_services() -> bool {
    std::env::var("PYLON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (or, when services are required, fails) a test whose service is missing.
fn skip(test: &str, service: &str, why: &str) {
    assert!(!require_services(), "{test} needs {service}: {why}");
    eprintln!("SKIPPED: {test} needs {service}");
}

/// The shared test Redis's URL, or `None` after a SKIPPED line.
async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("PYLON_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(())) => Some(url),
        Ok(Err(e)) => {
            skip(test, "redis", &e.to_string());
            None
        }
        Err(_) => {
            skip(test, "redis", "no answer within 3 s");
            None
        }
    }
}

/// A namespace no other test (or earlier run) uses.
fn namespace(test: &str) -> String {
    format!("pylon-test-{test}-{}", InstanceId::mint())
}

fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap()
}

async fn connect(url: &str, ns: &str, id: &str) -> ClusterBus {
    ClusterBus::connect(Some(url), ns, InstanceId::new(id)).await.unwrap()
}

/// Polls `condition` (yielding to the runtime between polls) until it holds; panics
/// with `what` after `within`.
async fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next envelope, within `within`.
async fn next(rx: &mut broadcast::Receiver<Arc<Envelope>>, within: Duration) -> Arc<Envelope> {
    tokio::time::timeout(within, rx.recv()).await.expect("no envelope in time").unwrap()
}

/// A local port nothing listens on (just released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` child on its own port, killed on every path (Drop).
struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one (waiting until it accepts), or `None` after a SKIPPED line.
    async fn start(test: &str, extra: &[&str]) -> Option<Self> {
        if !std::path::Path::new(REDIS_SERVER).exists() {
            skip(test, "redis-server", "not installed");
            return None;
        }
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut server = Self { child: None, port: free_port(), extra };
        server.spawn().await;
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir", &std::env::temp_dir().to_string_lossy()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server on {port} did not start");
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

/// Two buses (two instance ids) on one namespace: what A publishes reaches B with A's
/// instance id, kind, topic and payload; A does not receive its own (it counts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_hear_each_other_but_not_themselves() {
    let Some(url) = redis_url("two_instances_hear_each_other_but_not_themselves").await else {
        return;
    };
    let ns = namespace("pair");
    let (a, b) = (connect(&url, &ns, "a").await, connect(&url, &ns, "b").await);
    let (mut from_a, mut from_b) = (a.subscribe(), b.subscribe());
    assert_eq!(a.status().generation, 1);
    assert!(a.status().up && b.status().up);

    let payload = json!({"seq": 7, "entity": "Todo", "row_id": "r1", "kind": "insert"});
    assert_eq!(a.publish(Kind::Change, "Todo", raw(&payload)), PublishOutcome::Queued);
    let got = next(&mut from_b, Duration::from_secs(5)).await;
    assert_eq!(got.instance_id.as_str(), "a");
    assert_eq!((got.kind, got.topic.as_str()), (Kind::Change, "Todo"));
    assert_eq!(got.payload_as::<Value>().unwrap(), payload);

    eventually("A drops its own envelope", Duration::from_secs(5), || a.status().own_dropped == 1)
        .await;
    assert!(matches!(from_a.try_recv(), Err(TryRecvError::Empty)));
    let (sa, sb) = (a.status(), b.status());
    assert_eq!((sa.published, sa.received, sb.received, sb.own_dropped), (1, 0, 1, 0));

    b.publish_json(Kind::Presence, "room-1", &json!({"type": "presence"})).unwrap();
    let got = next(&mut from_a, Duration::from_secs(5)).await;
    assert_eq!(
        (got.instance_id.as_str(), got.kind, got.topic.as_str()),
        ("b", Kind::Presence, "room-1")
    );
    a.close().await;
    b.close().await;
}

/// Two namespaces on one Redis do not see each other: after X (namespace 1) has sent an
/// envelope, the first thing Y (namespace 2) receives is W's later one on namespace 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_do_not_hear_each_other() {
    let Some(url) = redis_url("namespaces_do_not_hear_each_other").await else {
        return;
    };
    let (ns1, ns2) = (namespace("ns-one"), namespace("ns-two"));
    let x = connect(&url, &ns1, "x").await;
    let x_peer = connect(&url, &ns1, "x-peer").await;
    let (y, w) = (connect(&url, &ns2, "y").await, connect(&url, &ns2, "w").await);
    let (mut at_peer, mut at_y) = (x_peer.subscribe(), y.subscribe());

    for kind in Kind::ALL {
        x.publish(kind, "t", raw(&json!("from ns1")));
    }
    eventually("X's envelopes reach Redis", Duration::from_secs(5), || x.status().published == 3)
        .await;
    assert_eq!(next(&mut at_peer, Duration::from_secs(5)).await.instance_id.as_str(), "x");
    w.publish(Kind::Change, "t", raw(&json!("from ns2")));
    let first = next(&mut at_y, Duration::from_secs(5)).await;
    assert_eq!(first.instance_id.as_str(), "w", "ns2 heard ns1");
    let y_status = y.status();
    assert_eq!((y_status.received, y_status.malformed), (1, 0));
}

/// The no-op bus: connecting without a URL does no I/O and returns at once, publish is
/// accepted and goes nowhere, nothing is received, it is always up and counts nothing.
#[tokio::test]
async fn noop_bus_costs_nothing() {
    let started = Instant::now();
    let bus = ClusterBus::connect(None, "pylon", InstanceId::mint()).await.unwrap();
    let empty = ClusterBus::connect(Some(""), "pylon", InstanceId::mint()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!((bus.mode(), empty.mode()), (BusMode::Noop, BusMode::Noop));
    assert_eq!(bus.address(), None);
    let mut rx = bus.subscribe();
    let generations = bus.generations();
    for kind in Kind::ALL {
        assert_eq!(bus.publish(kind, "t", raw(&json!({"a": 1}))), PublishOutcome::Skipped);
    }
    assert_eq!(bus.publish_json(Kind::Change, "t", &[1, 2]).unwrap(), PublishOutcome::Skipped);
    tokio::task::yield_now().await;
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let status = bus.status();
    assert!(status.up);
    assert_eq!((status.generation, status.published, status.dropped_down), (0, 0, 0));
    assert!(!generations.has_changed().unwrap());
    bus.close().await;
}

/// A closed local port is refused at connect, fast, with a message naming the cause and
/// the address; a bad scheme, an unparsable URL (without echoing its password) and a bad
/// namespace are refused before any I/O.
#[tokio::test]
async fn unreachable_bus_is_refused_at_connect() {
    let port = free_port();
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{port}");
    let err = ClusterBus::connect(Some(&url), "pylon", InstanceId::mint()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, BusError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("refused") && message.contains(&port.to_string()), "{message}");

    let err = ClusterBus::connect(Some("nats://x"), "pylon", InstanceId::mint()).await.unwrap_err();
    assert!(matches!(err, BusError::UnsupportedScheme { .. }), "{err:?}");
    let bad_port = "redis://:hunter2-secret@127.0.0.1:99999";
    let err = ClusterBus::connect(Some(bad_port), "pylon", InstanceId::mint()).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = ClusterBus::connect(Some(&url), "a b", InstanceId::mint()).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidNamespace { .. }), "{err:?}");
}

/// A server that accepts but never answers is refused as a timeout within 5 s.
#[tokio::test]
async fn silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{port}");
    let err = ClusterBus::connect(Some(&url), "pylon", InstanceId::mint()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(matches!(err, BusError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("timeout"), "{err}");
    holder.abort();
}

/// A server that wants a password refuses a URL without one, and one with the wrong one,
/// as an auth error that does not repeat the password; the right one connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_as_auth() {
    let test = "wrong_credentials_are_refused_as_auth";
    let Some(server) = RedisServer::start(test, &["--requirepass", "right-horse"]).await else {
        return;
    };
    let base = format!("127.0.0.1:{}", server.port);
    for url in [format!("redis://{base}"), format!("redis://:hunter2-battery@{base}")] {
        let err = ClusterBus::connect(Some(&url), "pylon", InstanceId::mint()).await.unwrap_err();
        assert!(matches!(err, BusError::Auth { .. }), "{url}: {err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    let bus = connect(&format!("redis://:right-horse@{base}"), &namespace("auth"), "ok").await;
    assert!(bus.status().up);
    bus.close().await;
}

/// Messages written straight into the channels that are not envelopes of that channel
/// (garbage, another wire version, the wrong kind, a missing field) are counted and
/// dropped; a hand-written valid envelope (the documented wire form) still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_and_dropped() {
    let Some(url) = redis_url("malformed_messages_are_counted_and_dropped").await else {
        return;
    };
    let ns = namespace("malformed");
    let bus = connect(&url, &ns, "b").await;
    let mut rx = bus.subscribe();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw_conn = client.get_multiplexed_async_connection().await.unwrap();
    let change = format!("{ns}:change");
    let bad: [&[u8]; 5] = [
        b"not json",
        b"\xff\x00",
        br#"{"v":2,"instance_id":"z","kind":"change","topic":"","payload":1}"#,
        br#"{"v":1,"instance_id":"z","kind":"presence","topic":"","payload":1}"#,
        br#"{"v":1,"kind":"change","topic":"","payload":1}"#,
    ];
    for message in bad {
        redis::cmd("PUBLISH")
            .arg(&change)
            .arg(message)
            .query_async::<()>(&mut raw_conn)
            .await
            .unwrap();
    }
    let good = r#"{"v":1,"instance_id":"z","kind":"change","topic":"Todo","payload":{"seq":1}}"#;
    redis::cmd("PUBLISH").arg(&change).arg(good).query_async::<()>(&mut raw_conn).await.unwrap();

    let got = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!((got.instance_id.as_str(), got.topic.as_str()), ("z", "Todo"));
    assert_eq!(got.payload.get(), r#"{"seq":1}"#);
    let status = bus.status();
    assert_eq!((status.malformed, status.received), (5, 1));
    assert!(status.up);
    bus.close().await;
}

/// Publishing never waits: on a runtime whose only thread is busy publishing, the queue
/// takes exactly `PUBLISH_QUEUE` envelopes and drops (and counts) the rest at once; the
/// queued ones all reach the other instance afterwards.
#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let Some(url) = redis_url("a_full_queue_drops_and_counts").await else {
        return;
    };
    let ns = namespace("full");
    let (a, b) = (connect(&url, &ns, "a").await, connect(&url, &ns, "b").await);
    let started = Instant::now();
    let outcomes: Vec<_> =
        (0..PUBLISH_QUEUE + 10).map(|i| a.publish(Kind::Change, "t", raw(&json!(i)))).collect();
    assert!(started.elapsed() < Duration::from_secs(2));
    let queued = outcomes.iter().filter(|o| **o == PublishOutcome::Queued).count();
    assert_eq!(queued, PUBLISH_QUEUE);
    assert_eq!(outcomes.last(), Some(&PublishOutcome::DroppedFull));
    assert_eq!(a.status().dropped_full, 10);
    assert_eq!(a.status().queued, PUBLISH_QUEUE);
    let total = u64::try_from(PUBLISH_QUEUE).unwrap();
    eventually("B receives every queued envelope", Duration::from_secs(10), || {
        b.status().received == total
    })
    .await;
    assert_eq!(a.status().published, total);
}

/// Close ends the tasks: receivers are told the bus closed, later publishes are dropped
/// as down, and closing twice is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_bus() {
    let Some(url) = redis_url("close_ends_the_bus").await else {
        return;
    };
    let bus = connect(&url, &namespace("close"), "c").await;
    let mut rx = bus.subscribe();
    bus.close().await;
    let closed = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap();
    assert!(matches!(closed, Err(broadcast::error::RecvError::Closed)));
    assert_eq!(bus.publish(Kind::Change, "t", raw(&json!(1))), PublishOutcome::DroppedDown);
    let status = bus.status();
    assert!(!status.up && status.dropped_down == 1);
    bus.close().await;
}

/// An outage of a Redis the test runs: within 5 s of killing it both buses read down,
/// publishing returns at once and counts a drop; within 10 s of restarting it on the same
/// port both are up again with an advanced generation (the watch fires), and an envelope
/// published after the return is received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_noticed_and_recovered() {
    let Some(mut server) = RedisServer::start("outage_is_noticed_and_recovered", &[]).await else {
        return;
    };
    let (url, ns) = (server.url(), namespace("outage"));
    let (a, b) = (connect(&url, &ns, "a").await, connect(&url, &ns, "b").await);
    let mut at_b = b.subscribe();
    let mut generations = b.generations();
    a.publish(Kind::Notification, "before", raw(&json!(1)));
    assert_eq!(next(&mut at_b, Duration::from_secs(5)).await.topic, "before");

    server.kill();
    let killed = Instant::now();
    let down = |bus: &ClusterBus| {
        let status = bus.status();
        !status.up && !status.publisher_up && !status.subscriber_up
    };
    eventually("both buses read down", Duration::from_secs(5), || down(&a) && down(&b)).await;
    eprintln!("outage: both down {:?} after the kill", killed.elapsed());
    let started = Instant::now();
    assert_eq!(a.publish(Kind::Change, "lost", raw(&json!(2))), PublishOutcome::DroppedDown);
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(a.status().dropped_down >= 1);
    let before = (a.status().generation, b.status().generation);
    generations.mark_unchanged();

    server.spawn().await;
    let restarted = Instant::now();
    let both_up = || a.status().up && b.status().up;
    eventually("both buses up again", Duration::from_secs(10), both_up).await;
    eprintln!("outage: both up {:?} after the restart", restarted.elapsed());
    assert!(a.status().generation > before.0 && b.status().generation > before.1);
    assert!(generations.has_changed().unwrap());
    assert_eq!(a.publish(Kind::Change, "after", raw(&json!(3))), PublishOutcome::Queued);
    let got = next(&mut at_b, Duration::from_secs(5)).await;
    assert_eq!((got.topic.as_str(), got.payload.get()), ("after", "3"));
    a.close().await;
    b.close().await;
}

/// Sends `signal` (`STOP`, `CONT`) to the test's redis-server.
fn signal(server: &RedisServer, signal: &str) {
    let pid = server.child.as_ref().unwrap().id().to_string();
    let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A Redis that stops answering without closing its sockets (frozen with SIGSTOP, as in
/// a network partition) is noticed by the heartbeat alone: both buses read down within
/// about a second (asserted within 3 s, for loaded machines); once it thaws they come back with an advanced generation and deliver again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_is_noticed_by_the_heartbeat() {
    let test = "a_silent_redis_is_noticed_by_the_heartbeat";
    let Some(server) = RedisServer::start(test, &[]).await else {
        return;
    };
    let (url, ns) = (server.url(), namespace("frozen"));
    let (a, b) = (connect(&url, &ns, "a").await, connect(&url, &ns, "b").await);
    let mut at_b = b.subscribe();

    signal(&server, "STOP");
    let frozen = Instant::now();
    let both_down = || !a.status().up && !b.status().up && !a.status().publisher_up;
    eventually("both buses read down", Duration::from_secs(3), both_down).await;
    eprintln!("frozen: down {:?} after SIGSTOP", frozen.elapsed());
    assert_eq!(a.publish(Kind::Change, "lost", raw(&json!(1))), PublishOutcome::DroppedDown);

    signal(&server, "CONT");
    let thawed = Instant::now();
    let both_up = || a.status().up && b.status().up;
    eventually("both buses up again", Duration::from_secs(10), both_up).await;
    eprintln!("frozen: up {:?} after SIGCONT", thawed.elapsed());
    assert!(a.status().generation >= 2 && b.status().generation >= 2);
    a.publish(Kind::Change, "after", raw(&json!(2)));
    assert_eq!(next(&mut at_b, Duration::from_secs(5)).await.topic, "after");
    a.close().await;
    b.close().await;
}
