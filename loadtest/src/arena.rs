//! `arena`: bots over real sockets. Each bot is a guest (`POST /api/auth/guest`), joins
//! an arena match created over HTTP (or, with `--matchmaker`, the match the matchmaker
//! gives it: `crate::matchmade`), connects the way the stock web client does (the
//! `bearer.` subprotocol, `?shard=&sid=`), sends inputs with `client_seq` at a fixed rate
//! and measures input -> ack latency: from sending seq k to the first frame whose ack is
//! at least k. Compat JSON (binary frames), text, MessagePack and MessagePack + delta
//! (either patch format).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use pylon_shard::Game;
use pylon_shard::codec::{
    FrameKind, FrameType, WireMode, decode_server_frame, encode_client_frame,
};
use pylon_shard::games::arena::{Arena, ArenaInput};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procfs;
use crate::report::{CpuWatch, Latency, round};

/// The wire modes by their command-line names: `json` (compat binary frames, what stock
/// clients speak), `text` (`format=json`), `msgpack`, `delta` (MessagePack with deltas in
/// the first patch format, `delta=1`: what earlier runs measured as `delta`), `delta2`
/// (the denser second format, `delta=2`).
pub const MODES: [(&str, WireMode); 5] = [
    ("json", WireMode::Binary),
    ("text", WireMode::Text),
    ("msgpack", WireMode::MsgPack),
    ("delta", WireMode::MsgPackDelta),
    ("delta2", WireMode::MsgPackDeltaV2),
];

/// The wire mode named `name` (see [`MODES`]).
///
/// # Errors
/// An unknown name, listing the known ones.
pub fn parse_mode(name: &str) -> Result<WireMode, String> {
    MODES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m).ok_or_else(|| {
        let known: Vec<&str> = MODES.iter().map(|(n, _)| *n).collect();
        format!("unknown mode {name:?}: one of {}", known.join(", "))
    })
}

/// The command-line name of `mode`.
#[must_use]
pub fn mode_name(mode: WireMode) -> &'static str {
    MODES.iter().find(|(_, m)| *m == mode).map_or("json", |(n, _)| n)
}

/// Scenario settings.
#[derive(Debug, Clone)]
pub struct ArenaConfig {
    /// `http://host:port` of the server's main port.
    pub url: String,
    /// Bots.
    pub bots: usize,
    /// Players per match.
    pub players: usize,
    /// Match tick rate.
    pub hz: u32,
    /// Inputs per second per bot.
    pub input_hz: u32,
    /// Measured seconds.
    pub secs: u64,
    /// Seconds before measuring.
    pub warmup: u64,
    /// Wire mode.
    pub mode: WireMode,
    /// Spread sockets over 127.0.0.1 .. 127.0.0.N (0 or 1: the OS picks).
    pub source_ips: u8,
    /// The admin token: matches are created with it, and the bots' guest sign-ins carry it
    /// (exempt from the server's per-address guest limit). Without it a guest creates the
    /// matches (at most `PYLON_MAX_MATCHES_PER_USER` of them) and at most
    /// `PYLON_GUESTS_PER_MINUTE_PER_IP` bots sign in per source address.
    pub token: Option<String>,
    /// The server's pid, to report its CPU and RSS.
    pub server_pid: Option<u32>,
    /// Where the shard sockets are: `ws://host:port/` (the shard port, default: the main
    /// port + 3, or the `ws_url` the matchmaker names) or `ws://host:port/shard` (the
    /// single-port shape behind one proxy).
    pub shard_url: Option<String>,
    /// Seats from the matchmaker (tickets, SSE push) instead of created matches; the
    /// match size is then the game's (arena: 8), not `players`.
    pub matchmaker: bool,
}

/// Where one bot plays: its guest, its match and the socket base URL.
#[derive(Debug, Clone)]
pub struct Seat {
    /// The guest's token.
    pub token: String,
    /// The guest's user id (the sid).
    pub user: String,
    /// The match id.
    pub shard: String,
    /// The shard socket base URL (`ws://host:port` or `…/shard`).
    pub ws_base: String,
    /// The loopback address its socket is bound to (`--source-ips`).
    pub source: Option<IpAddr>,
}

#[derive(Default)]
struct Shared {
    latency: Mutex<Latency>,
    interval: Mutex<Latency>,
    frames: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    connected: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// Runs the scenario; returns the figures.
///
/// # Errors
/// The server cannot be reached, or setup requests fail.
pub async fn run(config: &ArenaConfig) -> anyhow::Result<Map<String, Value>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let base = config.url.trim_end_matches('/').to_owned();
    let rss_before = config.server_pid.map(procfs::pid_rss_bytes);
    let mut out = Map::new();
    let seats = if config.matchmaker {
        let seated = crate::matchmade::seat(&base, config).await?;
        seated.time_to_match.put(&mut out, "time_to_match_");
        out.insert("unmatched".into(), json!(seated.unmatched));
        out.insert("matches".into(), json!(seated.matches));
        eprintln!(
            "matchmaker: {} bots seated in {} matches, {} unmatched; time to match {}",
            seated.seats.len(),
            seated.matches,
            seated.unmatched,
            seated.time_to_match.line()
        );
        seated.seats
    } else {
        let ids = create_matches(&http, &base, config).await?;
        out.insert("matches".into(), json!(ids.len()));
        created_seats(&http, &base, config, &ids).await?
    };
    let shared = Arc::new(Shared::default());
    let (tasks, connect_times) = connect_bots(config, seats, &shared).await?;
    let watch = measure(config, &shared).await;
    let wall = config.secs as f64;
    watch.put(&mut out);
    shared.stop.store(true, Ordering::Relaxed);
    // One deadline for all bots, not one per bot: a hung server must not hold the run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for t in tasks {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    let latency = shared.latency.lock().map(|l| l.clone()).unwrap_or_default();
    let connected = shared.connected.load(Ordering::Relaxed) as f64;
    if let (Some(pid), Some(before)) = (config.server_pid, rss_before) {
        // Memory the server holds per connected client (sessions, sockets, subscribers).
        let grown = procfs::pid_rss_bytes(pid).saturating_sub(before) as f64;
        out.insert(
            "server_kib_per_client".into(),
            json!(round(grown / 1024.0 / connected.max(1.0))),
        );
    }
    out.insert("bots".into(), json!(config.bots));
    out.insert("matchmaker".into(), json!(config.matchmaker));
    out.insert("mode".into(), json!(mode_name(config.mode)));
    out.insert("connected".into(), json!(connected));
    latency.put(&mut out, "");
    out.insert("acks".into(), json!(latency.count()));
    out.insert("connect_p99_ms".into(), json!(round(connect_times.ms(0.99))));
    let per_client = |n: u64| round(n as f64 / wall / connected.max(1.0));
    out.insert(
        "frames_per_client_s".into(),
        json!(per_client(shared.frames.load(Ordering::Relaxed))),
    );
    out.insert(
        "bytes_per_client_s".into(),
        json!(per_client(shared.bytes.load(Ordering::Relaxed))),
    );
    out.insert("errors".into(), json!(shared.errors.load(Ordering::Relaxed)));
    out.insert("disconnects".into(), json!(shared.disconnects.load(Ordering::Relaxed)));
    Ok(out)
}

/// One match per `players` bots, created over HTTP.
async fn create_matches(
    http: &reqwest::Client,
    base: &str,
    config: &ArenaConfig,
) -> anyhow::Result<Vec<String>> {
    let creator = match &config.token {
        Some(t) => t.clone(),
        None => guest(http, base, None).await?.0,
    };
    let matches = config.bots.div_ceil(config.players.max(1));
    let mut ids = Vec::with_capacity(matches);
    for _ in 0..matches {
        ids.push(create_match(http, base, &creator, config.hz).await?);
    }
    Ok(ids)
}

/// A guest for every bot, seated in the created matches (`players` to a match).
async fn created_seats(
    http: &reqwest::Client,
    base: &str,
    config: &ArenaConfig,
    ids: &[String],
) -> anyhow::Result<Vec<Seat>> {
    let ws_base = match &config.shard_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let (host, port) = crate::report::host_port(base)?;
            format!("ws://{host}:{}", port + 3)
        }
    };
    let mut seats = Vec::with_capacity(config.bots);
    for i in 0..config.bots {
        let (token, user) = guest(http, base, config.token.as_deref()).await?;
        let shard = ids[i / config.players.max(1)].clone();
        let source = source_ip(i, config.source_ips);
        seats.push(Seat { token, user, shard, ws_base: ws_base.clone(), source });
    }
    Ok(seats)
}

/// Sockets for every seat (64 handshakes at a time); the running bot tasks and the
/// connect-time histogram.
async fn connect_bots(
    config: &ArenaConfig,
    seats: Vec<Seat>,
    shared: &Arc<Shared>,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Latency)> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut pending = Vec::with_capacity(seats.len());
    for seat in seats {
        let ws_base = match &config.shard_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => seat.ws_base.trim_end_matches('/').to_owned(),
        };
        let query = config.mode.query();
        let url = format!(
            "{ws_base}{}?shard={}&sid={}{}{query}",
            path_sep(&ws_base),
            seat.shard,
            seat.user,
            if query.is_empty() { "" } else { "&" },
        );
        let gate = Arc::clone(&gate);
        pending.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let started = Instant::now();
            let ws = connect(&url, &seat.token, seat.source).await;
            (ws, started.elapsed())
        }));
    }
    let mut connect_times = Latency::default();
    let mut tasks = Vec::with_capacity(pending.len());
    for p in pending {
        match p.await? {
            (Ok(ws), took) => {
                connect_times.record_us(took.as_micros() as u64);
                shared.connected.fetch_add(1, Ordering::Relaxed);
                tasks.push(tokio::spawn(bot(ws, Arc::clone(shared), config.mode, config.input_hz)));
            }
            (Err(e), _) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("connect failed: {e:#}");
            }
        }
    }
    Ok((tasks, connect_times))
}

/// Warm-up, then the measured window with a progress line a second; the CPU watch of the
/// measured window.
async fn measure(config: &ArenaConfig, shared: &Shared) -> CpuWatch {
    tokio::time::sleep(Duration::from_secs(config.warmup)).await;
    let watch = CpuWatch::start(config.server_pid);
    shared.frames.store(0, Ordering::Relaxed);
    shared.bytes.store(0, Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Relaxed);
    let mut last_frames = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for second in 1..=config.secs {
        tick.tick().await;
        let frames = shared.frames.load(Ordering::Relaxed);
        let p99 =
            shared.interval.lock().map(|mut h| std::mem::take(&mut *h).ms(0.99)).unwrap_or(0.0);
        eprintln!(
            "[{second:>3}s] bots {} frames/s {} p99 {p99:.1} ms errors {} disconnects {}",
            shared.connected.load(Ordering::Relaxed),
            frames - last_frames,
            shared.errors.load(Ordering::Relaxed),
            shared.disconnects.load(Ordering::Relaxed)
        );
        last_frames = frames;
    }
    shared.measuring.store(false, Ordering::Relaxed);
    watch
}

/// A guest session. With the admin token (`--token`) the request is exempt from the
/// server's guest sessions per address per minute, so thousands of bots can sign in from
/// one machine; without it, runs beyond that limit are refused with 429.
async fn guest(
    http: &reqwest::Client,
    base: &str,
    admin: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let mut request = http.post(format!("{base}/api/auth/guest"));
    if let Some(token) = admin {
        request = request.bearer_auth(token);
    }
    let reply: Value = request.send().await?.error_for_status()?.json().await?;
    let token = reply["token"].as_str().context("guest reply has no token")?.to_owned();
    let user = reply["user_id"].as_str().context("guest reply has no user_id")?.to_owned();
    Ok((token, user))
}

async fn create_match(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    hz: u32,
) -> anyhow::Result<String> {
    let body = json!({"game": "arena", "params": {"tick_rate_hz": hz, "score_limit": 1_000_000, "time_limit_secs": 86_400, "max_players": 64}});
    let reply =
        http.post(format!("{base}/api/shards")).bearer_auth(token).json(&body).send().await?;
    if !reply.status().is_success() {
        bail!("creating a match: {} {}", reply.status(), reply.text().await.unwrap_or_default());
    }
    let info: Value = reply.json().await?;
    Ok(info["id"].as_str().context("create reply has no id")?.to_owned())
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// `/` after a bare `ws://host:port`, nothing after a URL that has a path (`…/shard`).
fn path_sep(base: &str) -> &'static str {
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    if rest.contains('/') { "" } else { "/" }
}

/// The loopback source address of socket `i` when spreading over `n` (0 or 1: `None`, the
/// OS picks): 127.0.0.1, 127.0.0.2, … 127.0.0.n, round robin.
pub fn source_ip(i: usize, n: u8) -> Option<IpAddr> {
    (n > 1).then(|| {
        let k = u8::try_from(i % usize::from(n)).unwrap_or(0);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k))
    })
}

/// Connects the way the stock client does: the token in the `bearer.` subprotocol.
pub(crate) async fn connect(url: &str, token: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let mut request = url.into_client_request()?;
    // What the stock client sends: `bearer.` + encodeURIComponent(token).
    let entry = format!("bearer.{}", percent(token));
    request.headers_mut().insert("sec-websocket-protocol", entry.parse()?);
    let uri = request.uri().clone();
    let host = uri.host().context("url has no host")?;
    let port = uri.port_u16().context("url has no port")?;
    let addr: SocketAddr =
        tokio::net::lookup_host((host, port)).await?.next().context("no address")?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The tick and ack a snapshot or delta frame carries; `None` for other frames.
fn ack_of(mode: WireMode, msg: &Message) -> Option<(u64, Option<u64>)> {
    let (kind, bytes): (FrameType, &[u8]) = match msg {
        Message::Binary(b) => (FrameType::Binary, b),
        Message::Text(t) => (FrameType::Text, t.as_bytes()),
        _ => return None,
    };
    let frame = decode_server_frame(mode, kind, bytes, Arena::ACK_KEY).ok()?;
    matches!(frame.kind, FrameKind::Snapshot | FrameKind::Delta).then_some((frame.tick, frame.ack))
}

/// Sequence numbers sent and not yet acknowledged, with when each left.
type Sent = VecDeque<(u64, Instant)>;

/// Frames, bytes and latency samples a bot collected and has not yet added to the
/// shared totals; batched so thousands of bots do not meet on one cache line per frame.
#[derive(Default)]
struct Batch {
    frames: u64,
    bytes: u64,
    samples: Vec<u64>,
}

impl Batch {
    const FLUSH_FRAMES: u64 = 16;

    fn flush(&mut self, shared: &Shared) {
        if self.frames > 0 {
            shared.frames.fetch_add(self.frames, Ordering::Relaxed);
            shared.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        }
        if !self.samples.is_empty()
            && let Ok(mut h) = shared.interval.lock()
        {
            self.samples.iter().for_each(|us| h.record_us(*us));
        }
        self.frames = 0;
        self.bytes = 0;
        self.samples.clear();
    }
}

/// The next input frame, as the codec writes it for `mode`; in delta mode it also
/// acknowledges the newest tick the bot holds as its base.
fn input_frame(mode: WireMode, seq: u64, base: u64) -> Message {
    let dx = if (seq / 40).is_multiple_of(2) { 1.0 } else { -1.0 };
    let input = ArenaInput { dx, dy: 0.5 };
    let mut out = Vec::with_capacity(48);
    match encode_client_frame(mode, Some(seq), (base > 0).then_some(base), &input, &mut out) {
        Ok(FrameType::Text) => Message::text(String::from_utf8(out).unwrap_or_default()),
        Ok(FrameType::Binary) => Message::binary(out),
        Err(_) => Message::text("{}"),
    }
}

/// Latencies (us) of every sent seq that `ack` acknowledges for the first time.
fn acknowledged(sent: &mut Sent, ack: u64, out: &mut Vec<u64>) {
    let now = Instant::now();
    while let Some(&(seq, at)) = sent.front()
        && seq <= ack
    {
        sent.pop_front();
        out.push(now.duration_since(at).as_micros() as u64);
    }
}

/// What a bot tracks between frames.
#[derive(Default)]
struct BotState {
    sent: Sent,
    base: u64,
    local: Latency,
    batch: Batch,
    acked: Vec<u64>,
}

impl BotState {
    /// Handles what the socket read; `false` ends the bot.
    fn received(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        shared: &Shared,
        mode: WireMode,
    ) -> bool {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let msg = match msg {
            None | Some(Ok(Message::Close(_)) | Err(_)) if stopping => return false,
            Some(Ok(Message::Close(_))) | None => {
                shared.disconnects.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Some(Err(_)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Some(Ok(msg)) => msg,
        };
        if stopping {
            return false;
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if measuring {
            self.batch.frames += 1;
            self.batch.bytes += msg.len() as u64;
        }
        if let Some((tick, ack)) = ack_of(mode, &msg) {
            self.base = tick;
            if let Some(ack) = ack {
                self.acked.clear();
                acknowledged(&mut self.sent, ack, &mut self.acked);
                if measuring {
                    self.acked.iter().for_each(|us| self.local.record_us(*us));
                    self.batch.samples.extend_from_slice(&self.acked);
                }
            }
        }
        if !measuring || self.batch.frames >= Batch::FLUSH_FRAMES {
            self.batch.flush(shared);
        }
        true
    }
}

/// One bot, one task: sends inputs at `input_hz` (0: an idle client that only reads)
/// and reads frames until stopped.
async fn bot(mut ws: Ws, shared: Arc<Shared>, mode: WireMode, input_hz: u32) {
    let mut state = BotState::default();
    let mut seq = 0u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(input_hz.max(1)));
    let mut every = tokio::time::interval(period);
    loop {
        tokio::select! {
            biased;
            msg = ws.next() => {
                if !state.received(msg, &shared, mode) {
                    break;
                }
            }
            _ = every.tick(), if input_hz > 0 => {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                seq += 1;
                state.sent.push_back((seq, Instant::now()));
                if state.sent.len() > 256 {
                    state.sent.pop_front();
                }
                if ws.send(input_frame(mode, seq, state.base)).await.is_err() {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    state.batch.flush(&shared);
    if let Ok(mut all) = shared.latency.lock() {
        all.merge(&state.local);
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}
