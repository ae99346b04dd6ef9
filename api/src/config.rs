//! What the API layer needs to know, already validated (the binary's `src/config.rs`
//! reads the environment and builds this).

use std::time::Duration;

/// Regions: this process's and where the others live (DESIGN.md section 5).
#[derive(Debug, Clone)]
pub struct Regions {
    /// This process's region; new match ids start with `<local>-`.
    pub local: String,
    /// Every known region and its public base URL (`https://eu.example.com`).
    pub urls: Vec<(String, String)>,
}

impl Default for Regions {
    fn default() -> Self {
        Self { local: "local".into(), urls: Vec::new() }
    }
}

impl Regions {
    /// The URL of the region `match_id` belongs to, when that is a known region other than
    /// this one. Ids without a known region prefix are local.
    #[must_use]
    pub fn elsewhere(&self, match_id: &str) -> Option<&str> {
        let prefix = match_id.split_once('-')?.0;
        if prefix == self.local {
            return None;
        }
        self.urls.iter().find(|(name, _)| name == prefix).map(|(_, url)| url.as_str())
    }
}

/// Limits that protect a public server. Every field has a sane default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest WebSocket message or frame a client may send, bytes (default 64 KiB);
    /// larger closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Sustained inputs per second per connection (default 120). A connection may burst
    /// to twice this for a moment (the grace); beyond that it is closed with 4429.
    pub max_inputs_per_sec: u32,
    /// Shard sockets per client address (`PYLON_MAX_CONNS_PER_IP`, default 256).
    pub max_conns_per_ip: u32,
    /// Time allowed for a connection's request headers, and for the shard's join answer
    /// (default 10 s).
    pub handshake_timeout: Duration,
    /// A socket that sends nothing, not even a pong, for this long is closed with 4408
    /// (default 60 s).
    pub idle_timeout: Duration,
    /// How often the server pings each socket (default 20 s).
    pub ping_interval: Duration,
    /// Largest HTTP request body, bytes (default 1 MiB); larger is 413.
    pub max_body_bytes: usize,
    /// SSE heartbeat comment interval (default 15 s).
    pub sse_heartbeat: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_inputs_per_sec: 120,
            max_conns_per_ip: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            sse_heartbeat: Duration::from_secs(15),
        }
    }
}

/// The API layer's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Dev mode: permissive CORS, verbose errors.
    pub dev_mode: bool,
    /// The operators' token (`PYLON_ADMIN_TOKEN`). `None` only in dev mode without one.
    pub admin_token: Option<String>,
    /// Allowed CORS origins (`PYLON_CORS_ORIGIN`, comma separated); `*` only in dev.
    pub cors_origins: Vec<String>,
    /// Regions and their URLs.
    pub regions: Regions,
    /// Socket and HTTP limits.
    pub limits: Limits,
    /// Lifetime of a guest session (default 30 days).
    pub session_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            dev_mode: false,
            admin_token: None,
            cors_origins: Vec::new(),
            regions: Regions::default(),
            limits: Limits::default(),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
