//! `fanout`: one writer, N change-feed subscribers (half on the sync WebSocket, half on
//! SSE). The writer puts its send time (microseconds since the run started) in each row;
//! every subscriber reports write -> receive latency, and how many events it missed.
//!
//! With `--across <url>` the subscribers connect to another process of the fleet than the
//! writer (which writes to `--url`): every change crosses the cluster bus, and the figures
//! are the fleet's write -> receive latency.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{CpuWatch, Latency};

/// Scenario settings.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// `http://host:port` of the main port (the writer's process).
    pub url: String,
    /// `http://host:port` of the subscribers' process, when it is another one.
    pub across: Option<String>,
    /// The admin token (the writer; subscribers read as admin too).
    pub token: String,
    /// Subscribers.
    pub subscribers: usize,
    /// Writes per second.
    pub writes_per_sec: u32,
    /// Spread subscriber sockets over 127.0.0.1 .. 127.0.0.N (0 or 1: the OS picks).
    pub source_ips: u8,
    /// Measured seconds.
    pub secs: u64,
    /// The server's pid, to report its CPU and RSS.
    pub server_pid: Option<u32>,
}

struct Shared {
    start: Instant,
    latency: Mutex<Latency>,
    received: AtomicU64,
    errors: AtomicU64,
    ready: AtomicU64,
}

fn record(shared: &Shared, change: &Value) {
    let Some(sent) = change["data"]["xp"].as_u64() else { return };
    if change["entity"] != "Player" || change["data"]["region"] != "fanout" {
        return;
    }
    let now = shared.start.elapsed().as_micros() as u64;
    shared.received.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut h) = shared.latency.lock() {
        h.record_us(now.saturating_sub(sent));
    }
}

async fn ws_subscriber(
    url: String,
    token: String,
    source: Option<IpAddr>,
    shared: Arc<Shared>,
    until: Instant,
) {
    let Ok(mut ws) = crate::arena::connect(&url, &token, source).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    shared.ready.fetch_add(1, Ordering::Relaxed);
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), ws.next()).await
    {
        if let Message::Text(t) = msg
            && let Ok(v) = serde_json::from_str::<Value>(&t)
        {
            record(&shared, &v);
        }
    }
}

async fn sse_subscriber(
    http: reqwest::Client,
    url: String,
    token: String,
    shared: Arc<Shared>,
    until: Instant,
) {
    let resp = match http.get(url).bearer_auth(token).send().await {
        Ok(resp) if resp.status().is_success() => resp,
        Ok(resp) => {
            // Refused (429 over the per-address cap, 401, …): an error, not a subscriber.
            eprintln!("SSE subscriber refused: {}", resp.status());
            shared.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), body.next()).await
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:"))
                && let Ok(v) = serde_json::from_str::<Value>(data.trim())
            {
                record(&shared, &v);
            }
        }
    }
}

/// Starts the subscribers (even: WebSocket on `+1`, odd: SSE on `+2`) and waits, at most
/// 30 s, until each is connected or failed.
async fn subscribe(
    config: &FanoutConfig,
    host: &str,
    port: u16,
    shared: &Arc<Shared>,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    // One HTTP client per source address (reqwest binds a client, not a request).
    let spread = usize::from(config.source_ips.max(1));
    let clients: Vec<reqwest::Client> = (0..spread)
        .map(|k| {
            let source = crate::arena::source_ip(k, config.source_ips);
            reqwest::Client::builder().local_address(source).build().unwrap_or_default()
        })
        .collect();
    let subs: Vec<_> = (0..config.subscribers)
        .map(|i| {
            let (token, shared) = (config.token.clone(), Arc::clone(shared));
            // Even and odd subscribers alternate transports; each pair shares an address.
            let slot = (i / 2) % spread;
            if i % 2 == 0 {
                tokio::spawn(ws_subscriber(
                    format!("ws://{host}:{}/", port + 1),
                    token,
                    crate::arena::source_ip(slot, config.source_ips),
                    shared,
                    until,
                ))
            } else {
                tokio::spawn(sse_subscriber(
                    clients[slot].clone(),
                    format!("http://{host}:{}/", port + 2),
                    token,
                    shared,
                    until,
                ))
            }
        })
        .collect();
    let ready_by = Instant::now() + Duration::from_secs(30);
    while shared.ready.load(Ordering::Relaxed) + shared.errors.load(Ordering::Relaxed)
        < config.subscribers as u64
        && Instant::now() < ready_by
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    subs
}

/// Writes at the configured rate for the run; how many writes succeeded, and how long
/// each took to be acknowledged (committed durably), the floor under write -> receive.
async fn write_loop(config: &FanoutConfig, base: &str, shared: &Shared) -> (u64, Latency) {
    let http = reqwest::Client::new();
    let mut every = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(config.writes_per_sec.max(1)),
    ));
    let until = Instant::now() + Duration::from_secs(config.secs);
    let tag = shared.start.elapsed().as_nanos();
    let mut writes = 0u64;
    let mut acked = Latency::default();
    while Instant::now() < until {
        every.tick().await;
        let started = Instant::now();
        let sent = shared.start.elapsed().as_micros() as u64;
        let row = json!({"displayName": format!("fan-{tag}-{writes}"), "region": "fanout", "createdAt": "2026-11-25T00:00:00Z", "level": 1, "xp": sent});
        match http
            .post(format!("{base}/api/entities/Player"))
            .bearer_auth(&config.token)
            .json(&row)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                writes += 1;
                acked.record_us(started.elapsed().as_micros() as u64);
            }
            _ => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (writes, acked)
}

/// Runs the scenario.
///
/// # Errors
/// The server cannot be reached.
pub async fn run(config: &FanoutConfig) -> anyhow::Result<Map<String, Value>> {
    let base = config.url.trim_end_matches('/').to_owned();
    let subscribed = config.across.as_deref().unwrap_or(&base).trim_end_matches('/');
    let (host, port) = crate::report::host_port(subscribed)?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        latency: Mutex::new(Latency::default()),
        received: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        ready: AtomicU64::new(0),
    });
    let until = Instant::now() + Duration::from_secs(config.secs + 40);
    let subs = subscribe(config, &host, port, &shared, until).await;
    if shared.ready.load(Ordering::Relaxed) == 0 && config.subscribers > 0 {
        anyhow::bail!("no subscriber could connect to {host}:{} or {host}:{}", port + 1, port + 2);
    }
    let watch = CpuWatch::start(config.server_pid);
    let (writes, write_acked) = write_loop(config, &base, &shared).await;
    let mut out = Map::new();
    watch.put(&mut out);
    let expected = writes * shared.ready.load(Ordering::Relaxed);
    let drain_by = Instant::now() + Duration::from_secs(10);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < drain_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in subs {
        s.abort();
    }
    let latency = shared.latency.lock().map(|h| h.clone()).unwrap_or_default();
    let received = shared.received.load(Ordering::Relaxed);
    out.insert("subscribers".into(), json!(shared.ready.load(Ordering::Relaxed)));
    out.insert("writes".into(), json!(writes));
    out.insert("delivered".into(), json!(received));
    out.insert("missing".into(), json!(expected.saturating_sub(received)));
    latency.put(&mut out, "");
    write_acked.put(&mut out, "write_");
    out.insert("errors".into(), json!(shared.errors.load(Ordering::Relaxed)));
    Ok(out)
}
