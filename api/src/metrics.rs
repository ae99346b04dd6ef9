//! The server's counters and the Prometheus text exposition of `GET /metrics`: the tick
//! threads' histograms and counters (read from `pylon_tick::ThreadMetrics`), matches by
//! game, subscribers, sockets, frames and bytes, rejected inputs by reason and HTTP
//! requests by route and status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pylon_tick::{HistogramSnapshot, ThreadMetrics};

/// Why the socket layer refused an input before it reached a tick thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketReject {
    /// Over the connection's input rate (the socket is closed with 4429).
    RateLimited = 0,
    /// The tick thread's command queue was full (the input is dropped).
    Overloaded = 1,
    /// The frame did not decode (the socket is closed with 4400).
    Malformed = 2,
}

impl SocketReject {
    /// Every reason, in index order.
    pub const ALL: [Self; 3] = [Self::RateLimited, Self::Overloaded, Self::Malformed];

    /// The metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Malformed => "malformed",
        }
    }
}

/// The limits whose refusals are counted (`pylon_limit_refusals_total{limit=…}`).
pub const LIMITS: [&str; 8] = [
    "http_connections",
    "guests",
    "match_rate",
    "matches_per_user",
    "matches_total",
    "http_inputs",
    "limiter_full",
    "tickets",
];

/// Index into [`LIMITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// TCP connections per client address.
    HttpConnections = 0,
    /// Guest sessions per address per minute.
    Guests = 1,
    /// Match creations per session per minute.
    MatchRate = 2,
    /// Running matches per session.
    MatchesPerUser = 3,
    /// Running matches in the process.
    MatchesTotal = 4,
    /// HTTP inputs per subscriber per second.
    HttpInputs = 5,
    /// A keyed limiter refused a new key because its map was full.
    LimiterFull = 6,
    /// Matchmaker tickets per address per second.
    Tickets = 7,
}

/// Counters kept by the I/O layer.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Shard sockets open now.
    pub sockets_open: AtomicU64,
    /// Shard sockets accepted since start.
    pub sockets_total: AtomicU64,
    /// SSE snapshot streams open now.
    pub sse_open: AtomicU64,
    /// Frames sent to clients.
    pub frames_out: AtomicU64,
    /// Bytes sent to clients (payloads).
    pub bytes_out: AtomicU64,
    /// Frames received from clients.
    pub frames_in: AtomicU64,
    /// Bytes received from clients (payloads).
    pub bytes_in: AtomicU64,
    /// Snapshots replaced in a subscriber's mailbox before they were sent (slow readers),
    /// added when the subscription ends.
    pub snapshots_replaced: AtomicU64,
    /// Inputs refused by the socket layer, by [`SocketReject`].
    pub inputs_rejected: [AtomicU64; 3],
    /// Errors from `accept` (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
    /// Requests or connections refused by a limit, by [`LIMITS`].
    pub refusals: [AtomicU64; 8],
    /// Expired sessions deleted by the periodic purge.
    pub sessions_purged: AtomicU64,
    /// Sessions whose live connections were ended: by logout, by expiry.
    pub sessions_ended: [AtomicU64; 2],
    /// Sockets closed, by close code.
    closes: Mutex<BTreeMap<u16, u64>>,
    /// HTTP requests by (route, status).
    http: Mutex<BTreeMap<(String, u16), u64>>,
}

impl ApiMetrics {
    /// Counts one socket closed with `code`.
    pub fn count_close(&self, code: u16) {
        *lock(&self.closes).entry(code).or_default() += 1;
    }

    /// Counts one HTTP request.
    pub fn count_http(&self, route: &str, status: u16) {
        let mut map = lock(&self.http);
        match map.get_mut(&(route.to_owned(), status)) {
            Some(n) => *n += 1,
            None => {
                map.insert((route.to_owned(), status), 1);
            }
        }
    }

    /// Counts one refusal by `limit`.
    pub fn count_refusal(&self, limit: Limit) {
        self.refusals[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one input refused by the socket layer.
    pub fn count_socket_reject(&self, why: SocketReject) {
        self.inputs_rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned counter map is still a valid map of counts.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `render` reads besides [`ApiMetrics`].
pub struct Sources<'a> {
    /// The tick threads.
    pub threads: &'a [std::sync::Arc<ThreadMetrics>],
    /// Running matches per game.
    pub matches_by_game: &'a [(&'static str, u64)],
    /// Subscribers across running matches.
    pub subscribers: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// Renders everything in the Prometheus text format (version 0.0.4).
#[must_use]
pub fn render(api: &ApiMetrics, src: &Sources<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    tick_section(&mut out, api, src);
    api_section(&mut out, api, src);
    limits_section(&mut out, api);
    out
}

/// The tick threads' metrics (and the inputs refused anywhere, in one family).
fn tick_section(out: &mut String, api: &ApiMetrics, src: &Sources<'_>) {
    let sum = |f: &dyn Fn(&ThreadMetrics) -> u64| -> u64 { src.threads.iter().map(|t| f(t)).sum() };
    let merged = |f: &dyn Fn(&ThreadMetrics) -> HistogramSnapshot| -> HistogramSnapshot {
        let mut all = HistogramSnapshot::default();
        for t in src.threads {
            all.merge(&f(t));
        }
        all
    };

    gauge(out, "pylon_uptime_seconds", "Seconds since the process started.", src.uptime_secs);
    gauge(out, "pylon_tick_threads", "Tick threads.", src.threads.len() as u64);
    histogram(
        out,
        "pylon_tick_duration_seconds",
        "Duration of one shard step.",
        &merged(&|t| t.tick_duration_us.snapshot()),
    );
    histogram(
        out,
        "pylon_tick_lateness_seconds",
        "How late a shard step started after its deadline.",
        &merged(&|t| t.lateness_us.snapshot()),
    );
    histogram(
        out,
        "pylon_input_latency_seconds",
        "From an input's hand-off to its application in a tick.",
        &merged(&|t| t.input_latency_us.snapshot()),
    );
    counter(
        out,
        "pylon_ticks_total",
        "Shard steps run.",
        sum(&|t| t.ticks.load(Ordering::Relaxed)),
    );
    counter(
        out,
        "pylon_tick_overruns_total",
        "Steps longer than their shard's tick period.",
        sum(&|t| t.overruns.load(Ordering::Relaxed)),
    );
    counter(
        out,
        "pylon_skipped_ticks_total",
        "Ticks skipped after a stall.",
        sum(&|t| t.skipped_ticks.load(Ordering::Relaxed)),
    );
    counter(
        out,
        "pylon_commands_rejected_total",
        "Commands refused because a tick thread's queue was full.",
        sum(&|t| t.commands_rejected.load(Ordering::Relaxed)),
    );
    counter(
        out,
        "pylon_inputs_applied_total",
        "Inputs applied by a tick.",
        sum(&|t| t.inputs_applied.load(Ordering::Relaxed)),
    );
    counter(
        out,
        "pylon_shard_panics_total",
        "Matches stopped because a game system panicked.",
        sum(&|t| t.panics.load(Ordering::Relaxed)),
    );

    inputs_section(out, api, src);
}

/// Inputs refused, by reason, from the tick threads and the socket layer; shards per
/// thread.
fn inputs_section(out: &mut String, api: &ApiMetrics, src: &Sources<'_>) {
    let sum = |f: &dyn Fn(&ThreadMetrics) -> u64| -> u64 { src.threads.iter().map(|t| f(t)).sum() };
    header(out, "pylon_inputs_rejected_total", "Inputs refused, by reason.", "counter");
    for (i, reason) in ThreadMetrics::REJECT_REASONS.iter().enumerate() {
        let n = sum(&|t| t.inputs_rejected[i].load(Ordering::Relaxed));
        let _ = writeln!(out, "pylon_inputs_rejected_total{{reason=\"{reason}\"}} {n}");
    }
    let unauthorized = sum(&|t| t.inputs_unauthorized.load(Ordering::Relaxed));
    let _ = writeln!(out, "pylon_inputs_rejected_total{{reason=\"unauthorized\"}} {unauthorized}");
    for why in SocketReject::ALL {
        let n = api.inputs_rejected[why as usize].load(Ordering::Relaxed);
        let _ = writeln!(out, "pylon_inputs_rejected_total{{reason=\"{}\"}} {n}", why.as_str());
    }

    header(out, "pylon_shards", "Shards per tick thread.", "gauge");
    for (i, t) in src.threads.iter().enumerate() {
        let _ =
            writeln!(out, "pylon_shards{{thread=\"{i}\"}} {}", t.shards.load(Ordering::Relaxed));
    }
}

/// Matches, subscribers, sockets, frames and HTTP requests.
fn api_section(out: &mut String, api: &ApiMetrics, src: &Sources<'_>) {
    header(out, "pylon_matches", "Running matches by game.", "gauge");
    for (game, n) in src.matches_by_game {
        let _ = writeln!(out, "pylon_matches{{game=\"{game}\"}} {n}");
    }
    gauge(out, "pylon_subscribers", "Subscribers of running matches.", src.subscribers);
    gauge(
        out,
        "pylon_socket_connections",
        "Shard sockets open.",
        api.sockets_open.load(Ordering::Relaxed),
    );
    counter(
        out,
        "pylon_socket_connections_total",
        "Shard sockets accepted.",
        api.sockets_total.load(Ordering::Relaxed),
    );
    gauge(
        out,
        "pylon_sse_streams",
        "SSE snapshot streams open.",
        api.sse_open.load(Ordering::Relaxed),
    );
    counter(out, "pylon_frames_out_total", "Frames sent.", api.frames_out.load(Ordering::Relaxed));
    counter(
        out,
        "pylon_bytes_out_total",
        "Payload bytes sent.",
        api.bytes_out.load(Ordering::Relaxed),
    );
    counter(
        out,
        "pylon_frames_in_total",
        "Frames received.",
        api.frames_in.load(Ordering::Relaxed),
    );
    counter(
        out,
        "pylon_bytes_in_total",
        "Payload bytes received.",
        api.bytes_in.load(Ordering::Relaxed),
    );

    counter(
        out,
        "pylon_snapshots_replaced_total",
        "Snapshots replaced unsent in a slow subscriber's mailbox (counted when it leaves).",
        api.snapshots_replaced.load(Ordering::Relaxed),
    );
    header(out, "pylon_socket_closes_total", "Shard sockets closed, by close code.", "counter");
    for (code, n) in lock(&api.closes).iter() {
        let _ = writeln!(out, "pylon_socket_closes_total{{code=\"{code}\"}} {n}");
    }
    header(out, "pylon_http_requests_total", "HTTP requests by route and status.", "counter");
    for ((route, status), n) in lock(&api.http).iter() {
        let route = route.replace('\\', "\\\\").replace('"', "\\\"");
        let _ =
            writeln!(out, "pylon_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
    }
}

/// Accept errors, limit refusals, session purges and ends.
fn limits_section(out: &mut String, api: &ApiMetrics) {
    counter(
        out,
        "pylon_accept_errors_total",
        "Errors accepting a connection (each followed by a back-off).",
        api.accept_errors.load(Ordering::Relaxed),
    );
    header(
        out,
        "pylon_limit_refusals_total",
        "Requests or connections refused by a limit.",
        "counter",
    );
    for (limit, n) in LIMITS.iter().zip(&api.refusals) {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(out, "pylon_limit_refusals_total{{limit=\"{limit}\"}} {n}");
    }
    counter(
        out,
        "pylon_sessions_purged_total",
        "Expired sessions deleted from the session store.",
        api.sessions_purged.load(Ordering::Relaxed),
    );
    header(
        out,
        "pylon_sessions_ended_total",
        "Sessions whose live connections were closed.",
        "counter",
    );
    for (why, n) in ["logout", "expired"].iter().zip(&api.sessions_ended) {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(out, "pylon_sessions_ended_total{{why=\"{why}\"}} {n}");
    }
}

pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

pub(crate) fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

/// Microsecond buckets exported as seconds: a fixed, coarse ladder over the tick
/// crate's fine log-linear buckets (cumulative counts, as Prometheus wants).
const LADDER_US: [u64; 14] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000];

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    header(out, name, help, "histogram");
    for le in LADDER_US {
        let n = count_at_most(h, le);
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", le as f64 / 1e6);
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// Values in buckets whose upper bound is at most `le_us` (a bucket straddling `le_us`
/// counts in the next ladder step: the export never over-reports how fast things were).
fn count_at_most(h: &HistogramSnapshot, le_us: u64) -> u64 {
    h.buckets
        .iter()
        .enumerate()
        .take_while(|(i, _)| pylon_tick::metrics::bucket_upper_bound(*i) <= le_us)
        .map(|(_, n)| *n)
        .sum()
}
