//! Configuration from the environment. The only module in pylon that reads environment
//! variables; everything else receives typed config.
//!
//! Every refusal is one line that names the variable. Every variable, with its default,
//! is in the README's Configuration table (and the limits in docs/SECURITY.md).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use pylon_api::{Limits, Regions};

/// Which command is starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `pylon serve`: production defaults.
    Serve,
    /// `pylon dev`: dev defaults (permissive CORS, generated admin token, pretty logs).
    Dev,
    /// `pylon migrate|backup|restore`: no server, so no admin token needed.
    Tool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (`serve`).
    Json,
    /// Human-readable (`dev`).
    Pretty,
}

/// Everything the binary needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dev mode (`pylon dev`, or `PYLON_DEV_MODE=true`).
    pub dev_mode: bool,
    /// `PYLON_HOST`: address to listen on (default 0.0.0.0).
    pub host: IpAddr,
    /// `PYLON_PORT`: the HTTP port (default 4321); shard sockets listen on `+3`.
    pub port: u16,
    /// `PYLON_TICK_THREADS`: tick threads (default: available cores; 1 to 256).
    pub tick_threads: usize,
    /// `PYLON_ADMIN_TOKEN`, or the one `pylon dev` generated.
    pub admin_token: String,
    /// Whether `admin_token` was generated here (print it).
    pub admin_token_generated: bool,
    /// `PYLON_CORS_ORIGIN`: allowed origins, comma separated.
    pub cors_origins: Vec<String>,
    /// `PYLON_SESSION_DB`: the session database file (default `.pylon/sessions.db`;
    /// `:memory:` keeps sessions in memory).
    pub session_db: PathBuf,
    /// `PYLON_DB_PATH`: the entity database (SQLite; default `.pylon/pylon.db`).
    pub db_path: PathBuf,
    /// `PYLON_MANIFEST`: the entity manifest (dev default: the bundled example; serve
    /// default: no entities).
    pub manifest: Option<PathBuf>,
    /// `DATABASE_URL`, when it names Postgres (used by the storage issue's backend).
    pub database_url: Option<String>,
    /// `PYLON_REGION`, `PYLON_INSTANCE`, `PYLON_REGIONS` and `PYLON_REGION_WS_URLS`.
    pub regions: Regions,
    /// `PYLON_CLUSTER_BUS` (`redis://…`), connected at start (unreachable: refused).
    pub cluster_bus: Option<String>,
    /// `PYLON_CLUSTER_NAMESPACE`: the prefix of the bus's channels (default `pylon`).
    pub cluster_namespace: String,
    /// Socket and HTTP limits.
    pub limits: Limits,
    /// `PYLON_TRUSTED_PROXIES`: reverse proxies whose `X-Forwarded-For` is believed for
    /// the per-address limits (default none).
    pub trusted_proxies: Vec<IpAddr>,
    /// `PYLON_GUEST_SESSION_TTL_SECS`: lifetime of a guest session (default 86,400: a day).
    pub guest_session_ttl: Duration,
    /// `PYLON_SHUTDOWN_GRACE_SECS`: cap on in-flight work at shutdown (default 30).
    pub shutdown_grace: Duration,
    /// `PYLON_MATCH_IDLE_SECS`: a match with no subscriber and no accepted input for this
    /// long is stopped (default 60; a created match nobody joins too).
    pub match_idle: Duration,
    /// `PYLON_PERSIST_EVERY_TICKS`: save running matches every N ticks (default 100, five
    /// seconds at 20 Hz; 0: only at shutdown).
    pub persist_every_ticks: u64,
    /// `PYLON_SHUTDOWN_MATCHES`: `persist` (default: saved, resumed after a restart) or
    /// `stop` (ended) at shutdown.
    pub persist_at_shutdown: bool,
    /// `PYLON_TICKET_TIMEOUT_SECS`: a matchmaker ticket still queued this long expires
    /// (default 120; every game but those an `App` gave its own rules).
    pub ticket_timeout: Duration,
    /// `PYLON_SEAT_HOLD_SECS`: a seat the matchmaker assigned is held for its player this
    /// long (the status's `expires_at`); then a backfill game offers it again (default 20).
    pub seat_hold: Duration,
    /// `PYLON_LOG`: log filter (default `info`).
    pub log_filter: String,
    /// `PYLON_LOG_FORMAT`: `json` (serve default) or `pretty` (dev default).
    pub log_format: LogFormat,
}

impl Config {
    /// Reads and validates the environment.
    ///
    /// # Errors
    /// One line naming the variable and what is wrong with it.
    pub fn from_env(mode: Mode) -> anyhow::Result<Self> {
        Self::from_lookup(mode, |name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any lookup (tests pass a map).
    ///
    /// # Errors
    /// One line naming the variable and what is wrong with it.
    pub fn from_lookup(mode: Mode, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let dev_flag = match get("PYLON_DEV_MODE").as_deref() {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => bail!("PYLON_DEV_MODE must be true or false, got {other:?}"),
        };
        let dev_mode = mode == Mode::Dev || dev_flag;

        let tick_threads = number(&get, "PYLON_TICK_THREADS", 1, 256)?
            .map_or_else(|| pylon_tick::TickConfig::default().threads, |n| n as usize);
        let port = number(&get, "PYLON_PORT", 1, 65_532)?.map_or(4321, |p| p as u16);
        let host = match get("PYLON_HOST") {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(raw) => raw
                .parse()
                .with_context(|| format!("PYLON_HOST must be an IP address, got {raw:?}"))?,
        };

        let cors_origins: Vec<String> = get("PYLON_CORS_ORIGIN")
            .map(|v| v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect())
            .unwrap_or_default();
        if !dev_mode && cors_origins.iter().any(|o| o == "*") {
            bail!(
                "PYLON_CORS_ORIGIN=* is only allowed in dev mode; list the allowed origins instead"
            );
        }

        let (admin_token, admin_token_generated) = admin_token(mode, dev_flag, &get)?;
        let (session_db, db_path, manifest, database_url) = storage(&get)?;

        let regions = regions(&get)?;
        let cluster_bus = match get("PYLON_CLUSTER_BUS") {
            None => None,
            Some(url) if url.starts_with("redis://") => Some(url),
            Some(url) => bail!("PYLON_CLUSTER_BUS must be a redis:// URL, got {url:?}"),
        };
        let cluster_namespace = cluster_namespace(&get)?;

        let limits = limits(&get)?;
        let (trusted_proxies, guest_session_ttl) = (trusted_proxies(&get)?, guest_ttl(&get)?);
        let Lifetimes { shutdown_grace, match_idle, persist_every_ticks, persist_at_shutdown } =
            lifetimes(&get)?;

        let (log_filter, log_format) = logging(dev_mode, &get)?;
        let ticket_timeout = number(&get, "PYLON_TICKET_TIMEOUT_SECS", 1, 86_400)?
            .map_or(pylon_sync::matchmaker::DEFAULT_TICKET_TIMEOUT, Duration::from_secs);
        let seat_hold = number(&get, "PYLON_SEAT_HOLD_SECS", 1, 3_600)?
            .map_or(pylon_api::matchmaking::DEFAULT_SEAT_HOLD, Duration::from_secs);

        Ok(Self {
            dev_mode,
            host,
            port,
            tick_threads,
            admin_token,
            admin_token_generated,
            cors_origins,
            session_db,
            db_path,
            manifest,
            database_url,
            regions,
            cluster_bus,
            cluster_namespace,
            limits,
            trusted_proxies,
            guest_session_ttl,
            shutdown_grace,
            match_idle,
            persist_every_ticks,
            persist_at_shutdown,
            ticket_timeout,
            seat_hold,
            log_filter,
            log_format,
        })
    }
}

/// How long matches and the server live: idle stops, saves, shutdown.
struct Lifetimes {
    shutdown_grace: Duration,
    match_idle: Duration,
    persist_every_ticks: u64,
    persist_at_shutdown: bool,
}

fn lifetimes(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Lifetimes> {
    let shutdown_grace = number(get, "PYLON_SHUTDOWN_GRACE_SECS", 1, 3600)?
        .map_or(Duration::from_secs(30), Duration::from_secs);
    let match_idle = number(get, "PYLON_MATCH_IDLE_SECS", 1, 86_400)?
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let persist_every_ticks = match get("PYLON_PERSIST_EVERY_TICKS") {
        Some(raw) if raw == "0" => 0,
        _ => number(get, "PYLON_PERSIST_EVERY_TICKS", 1, 1_000_000)?.unwrap_or(100),
    };
    let persist_at_shutdown = match get("PYLON_SHUTDOWN_MATCHES").as_deref() {
        None | Some("persist") => true,
        Some("stop") => false,
        Some(other) => bail!("PYLON_SHUTDOWN_MATCHES must be persist or stop, got {other:?}"),
    };
    Ok(Lifetimes { shutdown_grace, match_idle, persist_every_ticks, persist_at_shutdown })
}

/// `PYLON_SESSION_DB`, `PYLON_DB_PATH`, `PYLON_MANIFEST`, `DATABASE_URL`.
type StoragePaths = (PathBuf, PathBuf, Option<PathBuf>, Option<String>);

fn storage(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<StoragePaths> {
    let session_db =
        get("PYLON_SESSION_DB").map_or_else(|| PathBuf::from(".pylon/sessions.db"), PathBuf::from);
    let db_path =
        get("PYLON_DB_PATH").map_or_else(|| PathBuf::from(".pylon/pylon.db"), PathBuf::from);
    let manifest = get("PYLON_MANIFEST").map(PathBuf::from);
    if let Some(path) = &manifest
        && !path.is_file()
    {
        bail!("PYLON_MANIFEST={} is not a readable file", path.display());
    }
    let database_url = match get("DATABASE_URL") {
        None => None,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Some(url)
        }
        Some(url) if url.starts_with("sqlite:") => None,
        Some(_) => bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:"),
    };
    Ok((session_db, db_path, manifest, database_url))
}

/// `PYLON_ADMIN_TOKEN`, or a generated one in `pylon dev`: (token, generated).
fn admin_token(
    mode: Mode,
    dev_flag: bool,
    get: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(String, bool)> {
    if mode == Mode::Tool {
        return Ok((get("PYLON_ADMIN_TOKEN").unwrap_or_default(), false));
    }
    Ok(match get("PYLON_ADMIN_TOKEN") {
        Some(token) if token.len() < 16 => {
            bail!("PYLON_ADMIN_TOKEN must be at least 16 characters")
        }
        Some(token) => (token, false),
        None if mode == Mode::Serve && dev_flag => bail!(
            "PYLON_DEV_MODE=true under `pylon serve` needs PYLON_ADMIN_TOKEN (or run `pylon dev`, which generates one)"
        ),
        None if mode == Mode::Serve => {
            bail!(
                "PYLON_ADMIN_TOKEN is required outside dev mode (set a random secret of 16+ characters)"
            )
        }
        None => (
            pylon_storage::sessions::random_token()
                .context("PYLON_ADMIN_TOKEN: cannot generate one (no OS randomness)")?,
            true,
        ),
    })
}

/// `PYLON_LOG` and `PYLON_LOG_FORMAT`.
fn logging(
    dev_mode: bool,
    get: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(String, LogFormat)> {
    let log_filter = get("PYLON_LOG").unwrap_or_else(|| "info".into());
    if !valid_log_filter(&log_filter)
        || tracing_subscriber::EnvFilter::try_new(&log_filter).is_err()
    {
        bail!(
            "PYLON_LOG must be a level (error, warn, info, debug, trace, off) or target=level \
             pairs separated by commas (e.g. info,pylon_api=debug), got {log_filter:?}"
        );
    }
    let log_format = match get("PYLON_LOG_FORMAT").as_deref() {
        None if dev_mode => LogFormat::Pretty,
        None => LogFormat::Json,
        Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(other) => bail!("PYLON_LOG_FORMAT must be json or pretty, got {other:?}"),
    };
    Ok((log_filter, log_format))
}

/// A log filter of levels and `target=level` pairs. A bare word that is not a level is
/// refused: the filter library would take it as a target name and silence every log.
fn valid_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    filter.split(',').map(str::trim).filter(|d| !d.is_empty()).all(|directive| {
        match directive.split_once('=') {
            Some((target, l)) => !target.trim().is_empty() && level(l),
            None => level(directive),
        }
    })
}

/// `PYLON_TRUSTED_PROXIES`: comma-separated IP addresses.
fn trusted_proxies(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<IpAddr>> {
    let Some(raw) = get("PYLON_TRUSTED_PROXIES") else { return Ok(Vec::new()) };
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse().with_context(|| {
                format!("PYLON_TRUSTED_PROXIES entries must be IP addresses (no ranges), got {p:?}")
            })
        })
        .collect()
}

/// `PYLON_GUEST_SESSION_TTL_SECS`: 1 s to a year, default a day.
fn guest_ttl(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Duration> {
    Ok(number(get, "PYLON_GUEST_SESSION_TTL_SECS", 1, 365 * 86_400)?
        .map_or(Duration::from_secs(86_400), Duration::from_secs))
}

/// An optional whole number in `[min, max]`, as `u32`.
fn count(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    min: u32,
    max: u32,
    default: u32,
) -> anyhow::Result<u32> {
    Ok(number(get, name, u64::from(min), u64::from(max))?.map_or(default, |n| n as u32))
}

/// The socket and HTTP limits (`PYLON_MAX_*`, timeouts, rates).
fn limits(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Limits> {
    let defaults = Limits::default();
    let secs = |name: &str, default: Duration, max: u64| -> anyhow::Result<Duration> {
        Ok(number(get, name, 1, max)?.map_or(default, Duration::from_secs))
    };
    let limits = Limits {
        max_http_conns_per_ip: count(
            get,
            "PYLON_MAX_HTTP_CONNS_PER_IP",
            1,
            1_000_000,
            defaults.max_http_conns_per_ip,
        )?,
        body_timeout: secs("PYLON_BODY_TIMEOUT_SECS", defaults.body_timeout, 3600)?,
        matches_per_minute: count(
            get,
            "PYLON_MATCHES_PER_MINUTE",
            1,
            1_000_000,
            defaults.matches_per_minute,
        )?,
        max_matches_per_user: count(
            get,
            "PYLON_MAX_MATCHES_PER_USER",
            1,
            1_000_000,
            defaults.max_matches_per_user,
        )?,
        max_matches: count(get, "PYLON_MAX_MATCHES", 1, 10_000_000, defaults.max_matches)?,
        guests_per_minute_per_ip: count(
            get,
            "PYLON_GUESTS_PER_MINUTE_PER_IP",
            1,
            1_000_000,
            defaults.guests_per_minute_per_ip,
        )?,
        tickets_per_sec_per_ip: count(
            get,
            "PYLON_TICKETS_PER_SEC_PER_IP",
            1,
            1_000_000,
            defaults.tickets_per_sec_per_ip,
        )?,
        max_frame_bytes: number(get, "PYLON_MAX_FRAME_BYTES", 256, 16 << 20)?
            .map_or(defaults.max_frame_bytes, |n| n as usize),
        max_inputs_per_sec: number(get, "PYLON_MAX_INPUTS_PER_SEC", 1, 100_000)?
            .map_or(defaults.max_inputs_per_sec, |n| n as u32),
        max_conns_per_ip: number(get, "PYLON_MAX_CONNS_PER_IP", 1, 1_000_000)?
            .map_or(defaults.max_conns_per_ip, |n| n as u32),
        handshake_timeout: secs("PYLON_HANDSHAKE_TIMEOUT_SECS", defaults.handshake_timeout, 300)?,
        idle_timeout: secs("PYLON_IDLE_TIMEOUT_SECS", defaults.idle_timeout, 3600)?,
        ping_interval: secs("PYLON_PING_INTERVAL_SECS", defaults.ping_interval, 3600)?,
        max_body_bytes: number(get, "PYLON_MAX_BODY_BYTES", 1024, 1 << 30)?
            .map_or(defaults.max_body_bytes, |n| n as usize),
        sse_heartbeat: defaults.sse_heartbeat,
    };
    if limits.max_http_conns_per_ip < limits.max_conns_per_ip {
        bail!(
            "PYLON_MAX_HTTP_CONNS_PER_IP ({}) must be at least PYLON_MAX_CONNS_PER_IP ({}): an upgraded socket counts in both",
            limits.max_http_conns_per_ip,
            limits.max_conns_per_ip
        );
    }
    if limits.ping_interval >= limits.idle_timeout {
        bail!(
            "PYLON_PING_INTERVAL_SECS ({}) must be shorter than PYLON_IDLE_TIMEOUT_SECS ({})",
            limits.ping_interval.as_secs(),
            limits.idle_timeout.as_secs()
        );
    }
    Ok(limits)
}

/// An optional whole number in `[min, max]`.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    min: u64,
    max: u64,
) -> anyhow::Result<Option<u64>> {
    let Some(raw) = get(name) else { return Ok(None) };
    let n: u64 =
        raw.parse().with_context(|| format!("{name} must be a whole number, got {raw:?}"))?;
    if !(min..=max).contains(&n) {
        bail!("{name} must be between {min} and {max}, got {n}");
    }
    Ok(Some(n))
}

fn region_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A `PYLON_REGIONS` name: a region (`eu`) or one process of a region (`eu_2`).
fn region_entry_ok(name: &str) -> bool {
    match name.split_once('_') {
        Some((region, instance)) => region_name_ok(region) && region_name_ok(instance),
        None => region_name_ok(name),
    }
}

fn regions(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Regions> {
    let local = get("PYLON_REGION").unwrap_or_else(|| "local".into());
    if !region_name_ok(&local) {
        bail!("PYLON_REGION must be 1 to 32 lowercase letters or digits, got {local:?}");
    }
    let instance = get("PYLON_INSTANCE");
    if let Some(instance) = &instance
        && !region_name_ok(instance)
    {
        bail!("PYLON_INSTANCE must be 1 to 32 lowercase letters or digits, got {instance:?}");
    }
    let urls = region_urls(get, "PYLON_REGIONS", &["http://", "https://"])?;
    let ws_urls = region_urls(get, "PYLON_REGION_WS_URLS", &["ws://", "wss://"])?;
    Ok(Regions { local, instance, urls, ws_urls })
}

/// `name=url` pairs, comma separated, each URL starting with one of `schemes`.
fn region_urls(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    schemes: &[&str],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut urls = Vec::new();
    let Some(raw) = get(variable) else { return Ok(urls) };
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("{variable} entries are region=url, got {part:?}");
        };
        let (name, url) = (name.trim(), url.trim());
        if !region_entry_ok(name) {
            bail!(
                "{variable}: names are a region (lowercase letters or digits) or region_instance, got {name:?}"
            );
        }
        if !schemes.iter().any(|scheme| url.starts_with(scheme)) {
            let schemes = schemes.join(" or ");
            bail!("{variable}: the URL of {name} must start with {schemes}, got {url:?}");
        }
        urls.push((name.to_owned(), url.trim_end_matches('/').to_owned()));
    }
    Ok(urls)
}

/// `PYLON_CLUSTER_NAMESPACE`: 1 to 128 bytes of letters, digits, `.`, `_`, `-` or `:`
/// (it prefixes every channel name on the bus).
fn cluster_namespace(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let Some(namespace) = get("PYLON_CLUSTER_NAMESPACE") else {
        return Ok(pylon_sync::bus::DEFAULT_NAMESPACE.to_owned());
    };
    let ok = namespace.len() <= pylon_sync::bus::MAX_NAMESPACE_LEN
        && namespace.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if !ok {
        bail!(
            "PYLON_CLUSTER_NAMESPACE must be 1 to 128 letters, digits, '.', '_', '-' or ':', got {namespace:?}"
        );
    }
    Ok(namespace)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    const TOKEN: (&str, &str) = ("PYLON_ADMIN_TOKEN", "0123456789abcdef0123");

    /// Defaults: port 4321, JSON logs in serve, pretty and a generated token in dev.
    #[test]
    fn defaults() {
        let serve = Config::from_lookup(Mode::Serve, with(&[TOKEN])).unwrap();
        assert_eq!(serve.port, 4321);
        assert!(!serve.dev_mode);
        assert_eq!(serve.log_format, LogFormat::Json);
        let dev = Config::from_lookup(Mode::Dev, with(&[])).unwrap();
        assert!(dev.dev_mode && dev.admin_token_generated);
        assert_eq!(dev.admin_token.len(), 64);
        assert_eq!(dev.log_format, LogFormat::Pretty);
    }

    /// Each refusal names its variable.
    #[test]
    fn refusals_name_the_variable() {
        type Case<'a> = (Mode, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (Mode::Serve, &[], "PYLON_ADMIN_TOKEN"),
            (Mode::Serve, &[("PYLON_DEV_MODE", "true")], "PYLON_DEV_MODE"),
            (Mode::Serve, &[TOKEN, ("PYLON_CORS_ORIGIN", "*")], "PYLON_CORS_ORIGIN"),
            (Mode::Serve, &[TOKEN, ("PYLON_TICK_THREADS", "0")], "PYLON_TICK_THREADS"),
            (Mode::Serve, &[TOKEN, ("PYLON_PORT", "70000")], "PYLON_PORT"),
            (Mode::Serve, &[TOKEN, ("PYLON_LOG_FORMAT", "xml")], "PYLON_LOG_FORMAT"),
            (Mode::Serve, &[TOKEN, ("PYLON_REGIONS", "eu")], "PYLON_REGIONS"),
            (Mode::Serve, &[TOKEN, ("PYLON_CLUSTER_BUS", "http://x")], "PYLON_CLUSTER_BUS"),
            (Mode::Serve, &[("PYLON_ADMIN_TOKEN", "short")], "PYLON_ADMIN_TOKEN"),
            (
                Mode::Dev,
                &[("PYLON_IDLE_TIMEOUT_SECS", "5"), ("PYLON_PING_INTERVAL_SECS", "9")],
                "PYLON_PING_INTERVAL_SECS",
            ),
            (Mode::Dev, &[("PYLON_BODY_TIMEOUT_SECS", "0")], "PYLON_BODY_TIMEOUT_SECS"),
            (Mode::Dev, &[("PYLON_MATCHES_PER_MINUTE", "x")], "PYLON_MATCHES_PER_MINUTE"),
            (Mode::Dev, &[("PYLON_MAX_MATCHES_PER_USER", "0")], "PYLON_MAX_MATCHES_PER_USER"),
            (Mode::Dev, &[("PYLON_MAX_MATCHES", "-5")], "PYLON_MAX_MATCHES"),
            (
                Mode::Dev,
                &[("PYLON_GUESTS_PER_MINUTE_PER_IP", "1.5")],
                "PYLON_GUESTS_PER_MINUTE_PER_IP",
            ),
            (Mode::Dev, &[("PYLON_GUEST_SESSION_TTL_SECS", "0")], "PYLON_GUEST_SESSION_TTL_SECS"),
            (Mode::Dev, &[("PYLON_TRUSTED_PROXIES", "10.0.0.0/8")], "PYLON_TRUSTED_PROXIES"),
            (
                Mode::Dev,
                &[("PYLON_MAX_HTTP_CONNS_PER_IP", "100"), ("PYLON_MAX_CONNS_PER_IP", "200")],
                "PYLON_MAX_HTTP_CONNS_PER_IP",
            ),
        ];
        for (mode, env, var) in cases {
            let err = Config::from_lookup(*mode, with(env)).unwrap_err().to_string();
            assert!(err.contains(var), "{env:?}: {err}");
        }
        // `*` is fine in dev mode.
        assert!(Config::from_lookup(Mode::Dev, with(&[("PYLON_CORS_ORIGIN", "*")])).is_ok());
    }

    /// The limits of issue 11: documented defaults, and each variable read into its field.
    #[test]
    fn security_limits_defaults_and_overrides() {
        let d = Config::from_lookup(Mode::Serve, with(&[TOKEN])).unwrap();
        assert_eq!(d.limits.body_timeout, Duration::from_secs(10));
        assert_eq!(d.limits.max_http_conns_per_ip, 512);
        assert_eq!(d.limits.max_conns_per_ip, 256);
        assert_eq!(d.limits.matches_per_minute, 20);
        assert_eq!(d.limits.max_matches_per_user, 5);
        assert_eq!(d.limits.max_matches, 20_000);
        assert_eq!(d.limits.guests_per_minute_per_ip, 20);
        assert_eq!(d.limits.tickets_per_sec_per_ip, 5);
        assert_eq!(
            (d.ticket_timeout, d.seat_hold),
            (Duration::from_secs(120), Duration::from_secs(20))
        );
        assert_eq!(d.guest_session_ttl, Duration::from_secs(86_400));
        assert!(d.trusted_proxies.is_empty());
        let c = Config::from_lookup(
            Mode::Serve,
            with(&[
                TOKEN,
                ("PYLON_BODY_TIMEOUT_SECS", "3"),
                ("PYLON_MAX_HTTP_CONNS_PER_IP", "300"),
                ("PYLON_MATCHES_PER_MINUTE", "7"),
                ("PYLON_MAX_MATCHES_PER_USER", "2"),
                ("PYLON_MAX_MATCHES", "99"),
                ("PYLON_GUESTS_PER_MINUTE_PER_IP", "4"),
                ("PYLON_TICKETS_PER_SEC_PER_IP", "50"),
                ("PYLON_TICKET_TIMEOUT_SECS", "30"),
                ("PYLON_SEAT_HOLD_SECS", "5"),
                ("PYLON_GUEST_SESSION_TTL_SECS", "3600"),
                ("PYLON_TRUSTED_PROXIES", " 10.0.0.1, ::1 ,"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.body_timeout, Duration::from_secs(3));
        assert_eq!(c.limits.max_http_conns_per_ip, 300);
        assert_eq!(c.limits.matches_per_minute, 7);
        assert_eq!(c.limits.max_matches_per_user, 2);
        assert_eq!(c.limits.max_matches, 99);
        assert_eq!(c.limits.guests_per_minute_per_ip, 4);
        assert_eq!(c.limits.tickets_per_sec_per_ip, 50);
        assert_eq!(
            (c.ticket_timeout, c.seat_hold),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
        assert_eq!(c.guest_session_ttl, Duration::from_secs(3600));
        let proxies: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(c.trusted_proxies, proxies);
    }

    /// Regions, instances, socket URLs and the bus namespace: defaults, overrides, and
    /// each refusal naming its variable.
    #[test]
    fn regions_and_cluster_bus() {
        let d = Config::from_lookup(Mode::Serve, with(&[TOKEN])).unwrap();
        assert_eq!((d.regions.prefix(), d.cluster_namespace.as_str()), ("local".into(), "pylon"));
        let c = Config::from_lookup(
            Mode::Serve,
            with(&[
                TOKEN,
                ("PYLON_REGION", "eu"),
                ("PYLON_INSTANCE", "2"),
                ("PYLON_REGIONS", "eu=https://eu.example.com/, us=https://us.example.com,eu_1=http://10.0.0.1:4321"),
                ("PYLON_REGION_WS_URLS", "us=wss://us.example.com:4324"),
                ("PYLON_CLUSTER_NAMESPACE", "game-prod:eu"),
            ]),
        )
        .unwrap();
        assert_eq!(c.regions.prefix(), "eu_2");
        assert_eq!(c.regions.elsewhere("eu_1-x"), Some("http://10.0.0.1:4321"));
        assert_eq!(c.regions.ws_url("us").as_deref(), Some("wss://us.example.com:4324"));
        assert_eq!(c.regions.ws_url("eu").as_deref(), Some("wss://eu.example.com/shard"));
        assert_eq!(c.cluster_namespace, "game-prod:eu");
        for (var, value) in [
            ("PYLON_INSTANCE", "Two"),
            ("PYLON_REGIONS", "eu_=http://x"),
            ("PYLON_REGION_WS_URLS", "eu=http://x"),
            ("PYLON_CLUSTER_NAMESPACE", "has space"),
        ] {
            let err = Config::from_lookup(Mode::Serve, with(&[TOKEN, (var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}
