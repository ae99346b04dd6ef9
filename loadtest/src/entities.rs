//! `entities`: a CRUD mix over HTTP at a fixed concurrency against the entity API (the
//! `Player` entity of the example manifest that `pylon dev` loads). `--mix mixed` (70%
//! reads by id, 10% list pages, 10% creates, 10% updates), `read` (reads by id only) or
//! `write` (single-row creates only). Reports operations per second and latency per
//! operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::report::{CpuWatch, Latency, round};

/// The operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// 70% reads by id, 10% list pages, 10% creates, 10% updates.
    Mixed,
    /// Reads by id only.
    Read,
    /// Single-row creates only.
    Write,
}

/// Scenario settings.
#[derive(Debug, Clone)]
pub struct EntitiesConfig {
    /// `http://host:port`.
    pub url: String,
    /// A token allowed to write `Player` rows (the admin token).
    pub token: String,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Measured seconds.
    pub secs: u64,
    /// The operation mix.
    pub mix: Mix,
    /// The server's pid, to report its CPU and RSS.
    pub server_pid: Option<u32>,
}

const OPS: [&str; 4] = ["read", "list", "create", "update"];

fn player(tag: &str, n: u64) -> Value {
    json!({"displayName": format!("lt-{tag}-{n}"), "createdAt": "2026-11-25T00:00:00Z", "level": n % 50, "xp": n})
}

struct Run {
    http: reqwest::Client,
    base: String,
    token: String,
    tag: String,
    mix: Mix,
    ids: Vec<String>,
    hist: Vec<Mutex<Latency>>,
    errors: AtomicU64,
    created: AtomicU64,
}

impl Run {
    /// 200 rows to read and update.
    async fn seed(&mut self) -> anyhow::Result<()> {
        for n in 0..200 {
            let url = format!("{}/api/entities/Player", self.base);
            let reply = self
                .http
                .post(url)
                .bearer_auth(&self.token)
                .json(&player(&self.tag, n))
                .send()
                .await?;
            if !reply.status().is_success() {
                bail!(
                    "seeding Player rows: {} {}",
                    reply.status(),
                    reply.text().await.unwrap_or_default()
                );
            }
            let v: Value = reply.json().await?;
            self.ids.push(v["id"].as_str().context("no id")?.to_owned());
        }
        Ok(())
    }

    async fn worker(self: Arc<Self>, w: u64, deadline: Instant) {
        let mut i = w * 7919;
        while Instant::now() < deadline {
            i += 1;
            let op = match (self.mix, i % 10) {
                (Mix::Read, _) | (Mix::Mixed, 0..=6) => 0,
                (Mix::Mixed, 7) => 1,
                (Mix::Write, _) | (Mix::Mixed, 8) => 2,
                _ => 3,
            };
            let id = &self.ids[(i as usize * 31) % self.ids.len()];
            let base = &self.base;
            let req = match op {
                0 => self.http.get(format!("{base}/api/entities/Player/{id}")),
                1 => {
                    self.http.get(format!("{base}/api/entities/Player?limit=20&offset={}", i % 100))
                }
                2 => {
                    let n = self.created.fetch_add(1, Ordering::Relaxed);
                    self.http
                        .post(format!("{base}/api/entities/Player"))
                        .json(&player(&self.tag, n))
                }
                _ => self
                    .http
                    .patch(format!("{base}/api/entities/Player/{id}"))
                    .json(&json!({"level": i % 99})),
            };
            let started = Instant::now();
            match req.bearer_auth(&self.token).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    if let Ok(mut h) = self.hist[op].lock() {
                        h.record_us(started.elapsed().as_micros() as u64);
                    }
                }
                _ => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs the scenario.
///
/// # Errors
/// The server cannot be reached or refuses the seed rows.
pub async fn run(config: &EntitiesConfig) -> anyhow::Result<Map<String, Value>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(config.concurrency)
        .build()?;
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    );
    let mut run = Run {
        http,
        base: config.url.trim_end_matches('/').to_owned(),
        token: config.token.clone(),
        tag,
        mix: config.mix,
        ids: Vec::new(),
        hist: OPS.iter().map(|_| Mutex::new(Latency::default())).collect(),
        errors: AtomicU64::new(0),
        created: AtomicU64::new(1_000_000),
    };
    run.seed().await?;
    let run = Arc::new(run);
    let deadline = Instant::now() + Duration::from_secs(config.secs);
    let watch = CpuWatch::start(config.server_pid);
    let workers: Vec<_> = (0..config.concurrency as u64)
        .map(|w| tokio::spawn(Arc::clone(&run).worker(w, deadline)))
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let wall = config.secs as f64;
    let mut out = Map::new();
    watch.put(&mut out);
    out.insert("concurrency".into(), json!(config.concurrency));
    out.insert("mix".into(), json!(format!("{:?}", config.mix).to_lowercase()));
    let mut total = 0;
    for (op, h) in OPS.iter().zip(run.hist.iter()) {
        let h = h.lock().map(|h| h.clone()).unwrap_or_default();
        if h.count() == 0 {
            continue;
        }
        total += h.count();
        out.insert(format!("{op}_ops_s"), json!(round(h.count() as f64 / wall)));
        out.insert(format!("{op}_p50_ms"), json!(round(h.ms(0.5))));
        out.insert(format!("{op}_p99_ms"), json!(round(h.ms(0.99))));
    }
    out.insert("ops_s".into(), json!(round(total as f64 / wall)));
    out.insert("errors".into(), json!(run.errors.load(Ordering::Relaxed)));
    Ok(out)
}
