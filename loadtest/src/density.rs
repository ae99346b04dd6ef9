//! The density benchmark: N arena matches in this process on the real tick threads, every
//! player sending synthetic inputs at a fixed rate, and one summary line of what the tick
//! threads achieved. No sockets: it measures the simulation core alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use pylon_shard::codec::InputPayload;
use pylon_shard::games::arena::ArenaParams;
use pylon_shard::{Auth, GameRegistry, MatchConfig, Outgoing, SubscriberKey};
use pylon_tick::mailbox::{DEFAULT_RELIABLE_CAPACITY, Mailbox};
use pylon_tick::{HistogramSnapshot, InputFrom, MonotonicClock, ShardHandle, TickConfig, TickPool};

use crate::procfs;

/// Density run settings.
#[derive(Debug, Clone)]
pub struct DensityConfig {
    /// Matches to run.
    pub matches: usize,
    /// Players per match.
    pub players: usize,
    /// Tick rate of every match.
    pub hz: u32,
    /// Inputs per second per player.
    pub input_hz: u32,
    /// Measured seconds (after warm-up).
    pub secs: u64,
    /// Warm-up seconds (inputs flow, figures are not kept).
    pub warmup_secs: u64,
    /// Tick threads (0 = available cores).
    pub threads: usize,
}

/// What a density run measured.
#[derive(Debug, Clone)]
pub struct DensityReport {
    /// The settings.
    pub config: DensityConfig,
    /// Tick threads used.
    pub threads: usize,
    /// Shard steps per second across all threads.
    pub ticks_per_sec: f64,
    /// Tick lateness histogram (microseconds) over the measured window.
    pub lateness_us: HistogramSnapshot,
    /// Step duration histogram (microseconds).
    pub tick_us: HistogramSnapshot,
    /// Input hand-off to application (microseconds).
    pub input_latency_us: HistogramSnapshot,
    /// Ticks skipped after stalls.
    pub skipped: u64,
    /// Steps longer than their period.
    pub overruns: u64,
    /// Inputs applied per second.
    pub inputs_per_sec: f64,
    /// Inputs refused in the measured window (tick channel full, or by the shard).
    pub inputs_rejected: u64,
    /// CPU of the tick threads, percent of one core.
    pub tick_cpu_pct: f64,
    /// CPU of the whole process (includes the input generator), percent of one core.
    pub process_cpu_pct: f64,
    /// Resident memory per match, bytes (process growth from before the first match).
    pub rss_per_match: u64,
}

struct Player {
    shard: usize,
    key: SubscriberKey,
}

/// Runs the benchmark.
///
/// # Errors
/// When the pool cannot start, a match cannot be created, or joins do not complete.
pub fn run(config: &DensityConfig) -> anyhow::Result<DensityReport> {
    let tick_config = TickConfig {
        threads: if config.threads == 0 { TickConfig::default().threads } else { config.threads },
        ..TickConfig::default()
    };
    let rss_before = procfs::rss_bytes();
    let pool = TickPool::start(&tick_config, Arc::new(MonotonicClock::new()))?;
    let (handles, players, mailboxes) = populate(&pool, config)?;
    eprintln!(
        "density: {} matches, {} players joined; warming up {} s",
        handles.len(),
        players.len(),
        config.warmup_secs
    );

    let stop_at = Instant::now() + Duration::from_secs(config.warmup_secs + config.secs);
    let generator = spawn_generator(handles.clone(), players, config.input_hz, stop_at)?;
    std::thread::sleep(Duration::from_secs(config.warmup_secs));
    let start = Window::take(&pool, true);
    std::thread::sleep(Duration::from_secs(config.secs));
    let end = Window::take(&pool, false);
    let rss_after = procfs::rss_bytes();
    let sent = generator.join().map_err(|_| anyhow::anyhow!("input generator panicked"))?;
    eprintln!("density: the generator sent {sent} inputs in all (warm-up included)");
    drop(mailboxes);
    pool.shutdown(Duration::from_secs(5));
    Ok(report(config, tick_config.threads, &start, &end, rss_after.saturating_sub(rss_before)))
}

type Populated = (Vec<ShardHandle>, Vec<Player>, Vec<Arc<Mailbox<Outgoing>>>);

fn populate(pool: &TickPool, config: &DensityConfig) -> anyhow::Result<Populated> {
    let registry = GameRegistry::builtin();
    let params = ArenaParams {
        tick_rate_hz: config.hz,
        max_players: config.players,
        score_limit: u32::MAX,
        time_limit_secs: u32::try_from(config.secs * 4 + config.warmup_secs * 4 + 600)
            .unwrap_or(u32::MAX),
        ..ArenaParams::default()
    };
    let params = serde_json::to_value(params)?;
    let mut handles = Vec::with_capacity(config.matches);
    let mut pending = Vec::with_capacity(config.matches * config.players);
    for m in 0..config.matches {
        let match_config =
            MatchConfig { seed: m as u64, params: params.clone(), record_replay: false };
        // A burst of creates can fill a tick thread's channel: wait for room, as a server
        // would answer "try again" to the client.
        let deadline = Instant::now() + Duration::from_secs(30);
        let handle = loop {
            match pool.spawn(registry.create("arena", &match_config)?) {
                Ok(handle) => break handle,
                Err(pylon_tick::SendError::Full) if Instant::now() < deadline => {
                    std::thread::yield_now()
                }
                Err(e) => return Err(e).context("creating a match"),
            }
        };
        for p in 0..config.players {
            let sid: Arc<str> = format!("m{m}p{p}").into();
            let mailbox = Arc::new(Mailbox::new(DEFAULT_RELIABLE_CAPACITY));
            let auth = Auth { user_id: sid.clone(), is_admin: false };
            retry(|| handle.join(sid.clone(), auth.clone(), mailbox.clone()))?;
            pending.push((m, mailbox));
        }
        handles.push(handle);
    }
    let (players, mailboxes) = await_joins(pending)?;
    Ok((handles, players, mailboxes))
}

fn retry(mut send: impl FnMut() -> Result<(), pylon_tick::SendError>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match send() {
            Ok(()) => return Ok(()),
            Err(pylon_tick::SendError::Full) if Instant::now() < deadline => {
                std::thread::yield_now()
            }
            Err(e) => return Err(e).context("sending a join"),
        }
    }
}

type Outbox = Arc<Mailbox<Outgoing>>;

fn await_joins(pending: Vec<(usize, Outbox)>) -> anyhow::Result<(Vec<Player>, Vec<Outbox>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut players = Vec::with_capacity(pending.len());
    let mut mailboxes = Vec::with_capacity(pending.len());
    for (shard, mailbox) in pending {
        let key = loop {
            match mailbox.try_recv() {
                Some(Outgoing::Joined { key, .. }) => break key,
                Some(Outgoing::Snapshot(_)) => {}
                Some(other) => bail!("join refused: {other:?}"),
                None if Instant::now() > deadline => bail!("joins did not complete within 60 s"),
                None => std::thread::yield_now(),
            }
        };
        players.push(Player { shard, key });
        mailboxes.push(mailbox);
    }
    Ok((players, mailboxes))
}

/// Sends `input_hz` inputs per second per player, spread evenly over time (not in bursts),
/// until `stop_at`. Returns how many it sent (refusals are counted by the pool's metrics).
fn spawn_generator(
    handles: Vec<ShardHandle>,
    players: Vec<Player>,
    input_hz: u32,
    stop_at: Instant,
) -> anyhow::Result<std::thread::JoinHandle<u64>> {
    let thread = std::thread::Builder::new().name("pylon-loadgen".into()).spawn(move || {
        // Static payloads: cloning them touches no shared reference count, as a real
        // socket frame (owned by one connection) would not either.
        let payloads: [Bytes; 4] = [
            Bytes::from_static(br#"{"dx":1,"dy":0}"#),
            Bytes::from_static(br#"{"dx":0,"dy":1}"#),
            Bytes::from_static(br#"{"dx":-1,"dy":0.5}"#),
            Bytes::from_static(br#"{"dx":0.25,"dy":-1}"#),
        ];
        let per_sec = players.len() as f64 * f64::from(input_hz);
        let started = Instant::now();
        let (mut sent, mut seq) = (0_u64, 0_u64);
        while Instant::now() < stop_at {
            let target = (started.elapsed().as_secs_f64() * per_sec) as u64;
            while sent < target {
                let player = &players[(sent % players.len() as u64) as usize];
                if sent % players.len() as u64 == 0 {
                    seq += 1;
                }
                let payload = InputPayload::json(payloads[(seq % 4) as usize].clone());
                // A refusal is counted by the pool (`commands_rejected`); the bot moves on.
                let _ = handles[player.shard].input(InputFrom::Key(player.key), Some(seq), payload);
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    })?;
    Ok(thread)
}

/// Cumulative pool figures at one instant; two of them bound the measured window.
struct Window {
    at: Instant,
    cpu_tick: f64,
    cpu_process: f64,
    ticks: u64,
    skipped: u64,
    overruns: u64,
    applied: u64,
    rejected: u64,
    lateness: HistogramSnapshot,
    tick: HistogramSnapshot,
    input: HistogramSnapshot,
}

impl Window {
    /// `reset_max`: start a new window for the histograms' max values.
    fn take(pool: &TickPool, reset_max: bool) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let mut w = Self {
            at: Instant::now(),
            cpu_tick: procfs::threads_cpu_secs("pylon-tick-"),
            cpu_process: procfs::process_cpu_secs(),
            ticks: 0,
            skipped: 0,
            overruns: 0,
            applied: 0,
            rejected: 0,
            lateness: HistogramSnapshot::default(),
            tick: HistogramSnapshot::default(),
            input: HistogramSnapshot::default(),
        };
        for m in pool.metrics() {
            w.ticks += m.ticks.load(Relaxed);
            w.skipped += m.skipped_ticks.load(Relaxed);
            w.overruns += m.overruns.load(Relaxed);
            w.applied += m.inputs_applied.load(Relaxed);
            w.rejected += m.inputs_rejected.iter().map(|c| c.load(Relaxed)).sum::<u64>();
            w.rejected += m.commands_rejected.load(Relaxed);
            w.lateness.merge(&m.lateness_us.snapshot());
            w.tick.merge(&m.tick_duration_us.snapshot());
            w.input.merge(&m.input_latency_us.snapshot());
            if reset_max {
                m.lateness_us.take_max();
                m.tick_duration_us.take_max();
                m.input_latency_us.take_max();
            }
        }
        w
    }
}

fn report(
    config: &DensityConfig,
    threads: usize,
    start: &Window,
    end: &Window,
    rss_growth: u64,
) -> DensityReport {
    let secs = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
    DensityReport {
        config: config.clone(),
        threads,
        ticks_per_sec: (end.ticks - start.ticks) as f64 / secs,
        lateness_us: end.lateness.since(&start.lateness),
        tick_us: end.tick.since(&start.tick),
        input_latency_us: end.input.since(&start.input),
        skipped: end.skipped - start.skipped,
        overruns: end.overruns - start.overruns,
        inputs_per_sec: (end.applied - start.applied) as f64 / secs,
        inputs_rejected: end.rejected - start.rejected,
        tick_cpu_pct: 100.0 * (end.cpu_tick - start.cpu_tick) / secs,
        process_cpu_pct: 100.0 * (end.cpu_process - start.cpu_process) / secs,
        rss_per_match: rss_growth / config.matches.max(1) as u64,
    }
}

impl DensityReport {
    /// The one-line summary.
    #[must_use]
    pub fn summary(&self) -> String {
        let c = &self.config;
        format!(
            "density matches={} players={} hz={} threads={} secs={} ticks/s={:.0} \
             lateness_us p50={} p99={} max={} skipped={} overruns={} tick_us p50={} p99={} \
             cpu tick_threads={:.0}% process={:.0}% rss_per_match_kib={:.1} \
             inputs/s={:.0} rejected={} input_applied_ms p50={:.1} p99={:.1}",
            c.matches,
            c.matches * c.players,
            c.hz,
            self.threads,
            c.secs,
            self.ticks_per_sec,
            self.lateness_us.quantile(0.5),
            self.lateness_us.quantile(0.99),
            self.lateness_us.max,
            self.skipped,
            self.overruns,
            self.tick_us.quantile(0.5),
            self.tick_us.quantile(0.99),
            self.tick_cpu_pct,
            self.process_cpu_pct,
            self.rss_per_match as f64 / 1024.0,
            self.inputs_per_sec,
            self.inputs_rejected,
            self.input_latency_us.quantile(0.5) as f64 / 1000.0,
            self.input_latency_us.quantile(0.99) as f64 / 1000.0,
        )
    }
}
