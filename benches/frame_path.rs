//! The frame path, isolated (issue 14): one tick's frames from a real in-process server to N
//! real WebSocket clients on loopback, with no bots and no simulation worth the name, so
//! that a regression in the socket layer shows here on its own.
//!
//! What runs:
//! - **The server** is `pylon_api::Server` in this process, wired as `pylon serve` wires it
//!   (`src/serve.rs`) minus what is not on the frame path: no entity store, no cluster bus,
//!   no matchmaker, no persister; sessions in an in-memory SQLite (only the admin token is
//!   used). Its tokio runtime has the binary's shape (threads `pylon-io`, one worker per
//!   core) and its tick pool one thread (`pylon-tick-0`: one match needs one). It listens
//!   on `127.0.0.1:0` (main port and shard socket port; the sync and SSE ports are left
//!   unbound) and is shut down as the binary is (`Server::run`'s signal) at the end of each
//!   benchmark. Limits are the defaults except: 4,096 sockets per address (every client is
//!   127.0.0.1), and pings and the idle timeout pushed past the run (no ping lands inside
//!   a measured tick).
//! - **The game** (`FramePath`, below) is event-driven (`tick_rate_hz` 0: one step per
//!   input), takes every subscriber as a spectator, and shares one snapshot shaped like an
//!   arena snapshot of 8 players (ids, positions, scores, pickups; about 870 bytes of
//!   JSON with the `ack` key), refilled in place every step so that a warm step allocates
//!   nothing. Each step moves the players, so no two snapshots are equal.
//! - **The clients**: N tokio-tungstenite sockets on a runtime of their own (one thread,
//!   `bench-client`), all subscribed to one match with the admin token (which may take any
//!   sid), in one wire mode per benchmark: `json` (compat binary, the stock clients'
//!   default: 8 bytes of tick, then the JSON) or `msgpack`. A client reads each frame's
//!   tick from its header and nothing else, so client work stays small.
//!
//! **One iteration** = one tick's frames reaching all N sockets: the bench thread hands
//! one input to the match exactly as a socket task does after decoding a client frame
//! (`ShardHandle::input`, by sid), which wakes the tick thread; the match steps, delivers
//! into N mailboxes, N socket tasks encode and send, and the iteration ends when the last
//! of the N clients has read the frame of that tick (the bench thread parks until then).
//! The client-to-server hop of the input is not in it. Criterion reports the time per
//! iteration and, as throughput, frames delivered per second.
//!
//! Wall time mixes in the clients, which share the 2 cores with the server. So each
//! benchmark also prints (stderr, once) the server's own CPU time per delivered frame:
//! the run time of the threads named `pylon-io*` and `pylon-tick*`
//! (`/proc/self/task/*/schedstat`, user and kernel) over every iteration it ran, warm-up
//! included, and the kernel's share of it (`/proc/self/task/*/stat`, 10 ms resolution).
//!
//! Run: `cargo bench --bench frame_path` (about 30 s; `-- --quick` for less). Parameters:
//! `MODES` and `SUBSCRIBERS` below.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benches fail loudly")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use pylon::GameRegistry;
use pylon::codec::InputPayload;
use pylon::prelude::*;
use pylon_api::matches::MatchEntry;
use pylon_api::{ApiConfig, Limits, Listeners, Matches};
use pylon_storage::{Sessions, SqliteSessionStore};
use pylon_tick::{InputFrom, MonotonicClock, TickConfig, TickPool};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[global_allocator]
static GLOBAL: pylon::MiMalloc = pylon::MiMalloc;

/// Subscribers of the one match, per benchmark.
const SUBSCRIBERS: [usize; 2] = [100, 1000];
/// Wire modes: name, the socket URL's query, how a client reads a frame's tick.
const MODES: [(&str, &str, TickReader); 2] =
    [("json", "", compat_tick), ("msgpack", "&format=msgpack", msgpack_tick)];
/// Threads of the clients' runtime.
const CLIENT_THREADS: usize = 1;
/// Sockets connecting at once while a benchmark sets up.
const CONNECT_BATCH: usize = 64;
/// Longest wait for one tick's frames (or for set-up, or shutdown) before failing.
const DEADLINE: Duration = Duration::from_secs(20);
const ADMIN: &str = "frame-path-bench-admin-token-0123456789";

// ---------------------------------------------------------------------------------------
// The game.

/// The bench's game: event-driven, spectators only, one shared snapshot.
struct FramePath;

/// Players and pickups in the snapshot: 8 players like an arena match, pickups enough to
/// bring it to about 870 bytes of JSON.
const PLAYERS: usize = 8;
const PICKUPS: usize = 24;

/// The shared snapshot (the arena's shape).
#[derive(Clone, Serialize)]
struct View {
    time_left_secs: f32,
    players: Vec<PlayerView>,
    pickups: Vec<[f32; 2]>,
}

#[derive(Clone, Serialize)]
struct PlayerView {
    id: Arc<str>,
    x: f32,
    y: f32,
    score: u32,
}

/// The match state: the next snapshot, kept up to date by each step.
#[derive(Resource)]
struct Board(View);

/// Moves every player along its circle, by tick (no clock: `MatchClock`).
fn drift(clock: Res<MatchClock>, mut board: ResMut<Board>) {
    let t = clock.tick as f32;
    board.0.time_left_secs = 300.0 - t * 0.05;
    for (i, player) in board.0.players.iter_mut().enumerate() {
        let phase = t * 0.05 + i as f32;
        player.x = 250.0 + 200.0 * phase.cos();
        player.y = 250.0 + 200.0 * phase.sin();
    }
}

impl Game for FramePath {
    type Params = ();
    /// Any number: the player it names (mod 8) scores.
    type Input = u32;
    type Snapshot = View;
    type Outcome = ();

    const NAME: &'static str = "frame_path";
    const ACK_KEY: Option<&'static str> = Some("ack");

    fn tick_rate_hz(_: &()) -> u32 {
        0
    }

    fn limits(_: &()) -> ShardLimits {
        let most = SUBSCRIBERS.iter().max().copied().unwrap_or(0);
        ShardLimits { max_subscribers: most + 16, ..ShardLimits::default() }
    }

    fn setup(_: &(), world: &mut World, schedule: &mut Schedule) {
        let players = (0..PLAYERS)
            .map(|i| PlayerView { id: format!("player-{i}").into(), x: 0.0, y: 0.0, score: 0 })
            .collect();
        let pickups =
            (0..PICKUPS).map(|i| [12.5 + 27.25 * i as f32, 487.75 - 26.5 * i as f32]).collect();
        world.insert_resource(Board(View { time_left_secs: 300.0, players, pickups }));
        schedule.add_systems(drift);
    }

    fn handle_join(_: &mut World, _: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        Ok(None)
    }

    fn apply_input(world: &mut World, _: &Subscriber, input: u32) {
        let mut board = world.resource_mut::<Board>();
        let players = &mut board.0.players;
        let n = players.len();
        if let Some(player) = players.get_mut(input as usize % n.max(1)) {
            player.score += 1;
        }
    }

    fn snapshot(world: &mut World) -> View {
        world.resource::<Board>().0.clone()
    }

    fn snapshot_into(world: &mut World, into: &mut View) {
        // Refills the vectors in place (ids are reference counts): no allocation.
        into.clone_from(&world.resource::<Board>().0);
    }

    fn outcome(_: &mut World) -> Option<()> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// The server.

/// A server in this process with one match of `FramePath`; shut down on drop.
struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
    shard_addr: SocketAddr,
    entry: MatchEntry,
}

impl Server {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pylon-io")
            .build()
            .unwrap();
        let pool = TickPool::start(
            &TickConfig { threads: 1, ..TickConfig::default() },
            Arc::new(MonotonicClock::new()),
        )
        .unwrap();
        let mut games = GameRegistry::empty();
        games.register::<FramePath>();
        let matches = Matches::new(pool, games, "bench".to_owned());
        let entry = matches.create(FramePath::NAME, serde_json::Value::Null, None, Some(1), false);
        let entry = entry.unwrap();
        let limits = Limits {
            max_conns_per_ip: 4096,
            max_http_conns_per_ip: 8192,
            ping_interval: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(7200),
            ..Limits::default()
        };
        let config =
            ApiConfig { admin_token: Some(ADMIN.to_owned()), limits, ..ApiConfig::default() };
        let sessions = Sessions::Sqlite(SqliteSessionStore::in_memory().unwrap());
        let server = pylon_api::Server::new(config, matches, sessions, "frame-path-bench");
        let (listeners, shard_addr) = runtime.block_on(async {
            let bind = || TcpListener::bind("127.0.0.1:0");
            let (main, shard) = (bind().await.unwrap(), bind().await.unwrap());
            let addr = shard.local_addr().unwrap();
            (Listeners { main, shard, sync: None, events: None }, addr)
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async {
            let _ = stopped.await;
        };
        let running = runtime.spawn(server.run(listeners, signal, Duration::from_secs(5)));
        Self { runtime: Some(runtime), stop: Some(stop), running: Some(running), shard_addr, entry }
    }

    /// Hands the match one input from subscriber `sid`, as a socket task does: the match
    /// steps once.
    fn step(&self, sid: &Arc<str>, input: &InputPayload) {
        let from = InputFrom::Sid(Arc::clone(sid));
        self.entry.handle.input(from, None, input.clone()).unwrap();
    }

    fn tick(&self) -> u64 {
        self.entry.handle.status().tick()
    }

    /// Waits until `n` subscribers have joined and the match has stepped for all of them.
    fn await_subscribers(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while (self.entry.handle.status().subscribers() as usize) < n {
            assert!(Instant::now() < deadline, "{n} subscribers did not join in time");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every join is a step: wait for the last one.
        let mut tick = self.tick();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.tick();
            if now == tick {
                return;
            }
            tick = now;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            let stopped = runtime.block_on(async { tokio::time::timeout(DEADLINE, running).await });
            if stopped.is_err() {
                eprintln!("frame_path: the server did not stop within {DEADLINE:?}");
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------------------
// The clients.

/// Reads the tick of a snapshot frame, `None` for any other frame.
type TickReader = fn(&[u8]) -> Option<u64>;

/// Compat binary: 8 bytes of big-endian tick, then the snapshot (docs/PROTOCOL.md).
fn compat_tick(frame: &[u8]) -> Option<u64> {
    frame.first_chunk::<8>().map(|tick| u64::from_be_bytes(*tick))
}

/// MessagePack: `[kind, tick, ack, base, body]`; kind 1 (snapshot) or 2 (delta) carries
/// the tick as a MessagePack uint (docs/PROTOCOL.md).
fn msgpack_tick(frame: &[u8]) -> Option<u64> {
    let (&[0x95, kind], rest) = frame.split_first_chunk::<2>()? else { return None };
    if kind != 1 && kind != 2 {
        return None;
    }
    let be = |len: usize| -> Option<u64> {
        let bytes = rest.get(1..=len)?;
        Some(bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
    };
    match *rest.first()? {
        fixint @ 0x00..=0x7f => Some(u64::from(fixint)),
        0xcc => be(1),
        0xcd => be(2),
        0xce => be(4),
        0xcf => be(8),
        _ => None,
    }
}

/// What the clients report to the bench thread.
struct Progress {
    n: usize,
    /// The tick the bench thread waits for.
    target: AtomicU64,
    /// Clients that have read a frame of `target` or later.
    reached: AtomicUsize,
    /// The newest tick any client read, and the size of the last frame read.
    newest: AtomicU64,
    frame_bytes: AtomicUsize,
    /// Clients whose socket ended.
    ended: AtomicUsize,
    /// The bench thread, unparked by the client that completes a tick.
    waiter: Mutex<Option<Thread>>,
}

impl Progress {
    fn wake(&self) {
        if let Some(waiter) = &*self.waiter.lock().unwrap() {
            waiter.unpark();
        }
    }

    /// Parks until every client has read tick `target` or later.
    fn wait_all(&self, target: u64) {
        let deadline = Instant::now() + DEADLINE;
        while self.reached.load(Ordering::Acquire) < self.n {
            let ended = self.ended.load(Ordering::Acquire);
            assert_eq!(ended, 0, "{ended} client sockets ended while waiting for tick {target}");
            let reached = self.reached.load(Ordering::Acquire);
            assert!(
                Instant::now() < deadline,
                "{reached} of {} clients read tick {target}",
                self.n
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}

/// One client: reads frames until its socket ends, counting each tick it reads first.
async fn client(mut ws: Ws, progress: Arc<Progress>, tick_of: TickReader) {
    let mut counted = 0;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Binary(frame) = message else { continue };
        let Some(tick) = tick_of(&frame) else { continue };
        progress.newest.fetch_max(tick, Ordering::Relaxed);
        progress.frame_bytes.store(frame.len(), Ordering::Relaxed);
        let target = progress.target.load(Ordering::Acquire);
        if tick >= target && counted < target {
            counted = target;
            if progress.reached.fetch_add(1, Ordering::AcqRel) + 1 == progress.n {
                progress.wake();
            }
        }
    }
    progress.ended.fetch_add(1, Ordering::AcqRel);
    progress.wake();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: String) -> Ws {
    let mut request = url.into_client_request().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {ADMIN}")).unwrap();
    request.headers_mut().insert("authorization", bearer);
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// N clients on a runtime of their own; dropped after the server.
struct Clients {
    runtime: Option<tokio::runtime::Runtime>,
    progress: Arc<Progress>,
}

impl Clients {
    fn connect(server: &Server, n: usize, query: &str, tick_of: TickReader) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(CLIENT_THREADS)
            .enable_all()
            .thread_name("bench-client")
            .build()
            .unwrap();
        let progress = Arc::new(Progress {
            n,
            target: AtomicU64::new(u64::MAX),
            reached: AtomicUsize::new(0),
            newest: AtomicU64::new(0),
            frame_bytes: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            waiter: Mutex::new(None),
        });
        let (addr, id) = (server.shard_addr, &server.entry.id);
        for first in (0..n).step_by(CONNECT_BATCH) {
            let urls = (first..n.min(first + CONNECT_BATCH))
                .map(|i| format!("ws://{addr}/?shard={id}&sid=s{i}{query}"));
            let sockets = runtime.block_on(futures_util::future::join_all(urls.map(connect)));
            for ws in sockets {
                runtime.spawn(client(ws, Arc::clone(&progress), tick_of));
            }
        }
        Self { runtime: Some(runtime), progress }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Server CPU time, by thread name.

/// CPU time of the server's threads so far: I/O and tick threads, total and in the kernel.
#[derive(Clone, Copy, Default)]
struct ServerCpu {
    io_ns: u64,
    tick_ns: u64,
    /// Clock ticks (`/proc/.../stat`), user and system, of both.
    user_ticks: u64,
    system_ticks: u64,
}

fn server_cpu() -> ServerCpu {
    let mut cpu = ServerCpu::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return cpu };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let io = comm.starts_with("pylon-io");
        if !io && !comm.starts_with("pylon-tick") {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let ran_ns: u64 = schedstat.split(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        *(if io { &mut cpu.io_ns } else { &mut cpu.tick_ns }) += ran_ns;
        // utime and stime: fields 14 and 15, the 12th and 13th after the name's ')'.
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let mut fields = after_name.split_whitespace().skip(11);
        let mut next = || fields.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        cpu.user_ticks += next();
        cpu.system_ticks += next();
    }
    cpu
}

impl ServerCpu {
    fn since(self, before: Self) -> Self {
        Self {
            io_ns: self.io_ns.saturating_sub(before.io_ns),
            tick_ns: self.tick_ns.saturating_sub(before.tick_ns),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(before.system_ticks),
        }
    }

    fn add(&mut self, more: Self) {
        self.io_ns += more.io_ns;
        self.tick_ns += more.tick_ns;
        self.user_ticks += more.user_ticks;
        self.system_ticks += more.system_ticks;
    }
}

// ---------------------------------------------------------------------------------------
// The benchmark.

/// One benchmark's server and clients, and what its iterations added up to. Fields drop
/// in order: the server first, while the clients still read (they answer its close
/// frames), then the clients.
struct Fixture {
    server: Server,
    clients: Clients,
    /// The input that steps the match, and the subscriber it comes from.
    input: InputPayload,
    sid: Arc<str>,
    /// The match's tick: one step per input, and nothing else steps it once set up.
    tick: u64,
    /// Iterations run, and the server's CPU time over them.
    ticks: u64,
    cpu: ServerCpu,
}

impl Fixture {
    fn start(n: usize, query: &str, tick_of: TickReader) -> Self {
        let server = Server::start();
        let clients = Clients::connect(&server, n, query, tick_of);
        server.await_subscribers(n);
        let input = InputPayload::json(&b"3"[..]);
        let tick = server.tick();
        let (sid, ticks, cpu) = (Arc::from("s0"), 0, ServerCpu::default());
        Self { server, clients, input, sid, tick, ticks, cpu }
    }

    /// Runs `iters` ticks; the time from each input to its last frame read, summed.
    fn run(&mut self, iters: u64) -> Duration {
        let progress = Arc::clone(&self.clients.progress);
        *progress.waiter.lock().unwrap() = Some(std::thread::current());
        let before = server_cpu();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let target = self.tick + 1;
            progress.reached.store(0, Ordering::Release);
            progress.target.store(target, Ordering::Release);
            let start = Instant::now();
            self.server.step(&self.sid, &self.input);
            progress.wait_all(target);
            total += start.elapsed();
            self.tick = target;
        }
        self.cpu.add(server_cpu().since(before));
        self.ticks += iters;
        total
    }

    /// One line on stderr: server CPU per delivered frame over every iteration run.
    fn report(&self, name: &str) {
        let progress = &self.clients.progress;
        let newest = progress.newest.load(Ordering::Relaxed);
        assert_eq!(newest, self.tick, "the newest tick read is the match's last");
        let frames = (self.ticks * progress.n as u64).max(1) as f64;
        let cpu = self.cpu;
        let per_frame_us = |ns: u64| ns as f64 / frames / 1000.0;
        let clock_ticks = (cpu.user_ticks + cpu.system_ticks).max(1) as f64;
        eprintln!(
            "{name}: server CPU {:.2} us per delivered frame (pylon-io {:.2}, pylon-tick {:.2}; \
             kernel {:.0}%), {} ticks x {} sockets, {} B frames",
            per_frame_us(cpu.io_ns + cpu.tick_ns),
            per_frame_us(cpu.io_ns),
            per_frame_us(cpu.tick_ns),
            100.0 * cpu.system_ticks as f64 / clock_ticks,
            self.ticks,
            progress.n,
            progress.frame_bytes.load(Ordering::Relaxed),
        );
    }
}

fn bench_frame_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_path");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (mode, query, tick_of) in MODES {
        for n in SUBSCRIBERS {
            group.throughput(Throughput::Elements(n as u64));
            let mut fixture: Option<Fixture> = None;
            group.bench_with_input(BenchmarkId::new(mode, n), &n, |b, &n| {
                let fixture = fixture.get_or_insert_with(|| Fixture::start(n, query, tick_of));
                b.iter_custom(|iters| fixture.run(iters));
            });
            if let Some(fixture) = fixture.take() {
                fixture.report(&format!("frame_path/{mode}/{n}"));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_frame_path);
criterion_main!(benches);
