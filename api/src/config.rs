//! What the API layer needs to know, already validated (the binary's `src/config.rs`
//! reads the environment and builds this).

use std::net::IpAddr;
use std::time::Duration;

/// Regions: this process's and where the others live (`PYLON_REGION`, `PYLON_INSTANCE`,
/// `PYLON_REGIONS`, `PYLON_REGION_WS_URLS`; docs/REGIONS.md).
///
/// A match id starts with the **prefix** of the process that runs it: its region
/// (`eu-abcdefghijkl`), or, for one of several processes of a region, region and
/// instance (`eu_2-abcdefghijkl`). `urls` names regions (`eu`) and may name single
/// processes (`eu_2`) too.
#[derive(Debug, Clone)]
pub struct Regions {
    /// This process's region.
    pub local: String,
    /// This process's instance within its region, when the region runs several.
    pub instance: Option<String>,
    /// Every known region (and any listed process) and its public base URL
    /// (`https://eu.example.com`).
    pub urls: Vec<(String, String)>,
    /// Shard socket base URLs that are not derived from `urls` (see [`Regions::ws_url`]).
    pub ws_urls: Vec<(String, String)>,
}

impl Default for Regions {
    fn default() -> Self {
        Self { local: "local".into(), instance: None, urls: Vec::new(), ws_urls: Vec::new() }
    }
}

/// The shard socket base URL of a region whose base URL is `url`: the scheme made
/// `ws`/`wss` and `/shard` appended (the socket path every listener and proxy shape
/// serves).
#[must_use]
pub fn ws_url_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let socket = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("http", rest)) => format!("ws://{rest}"),
        _ => url.to_owned(),
    };
    format!("{socket}/shard")
}

impl Regions {
    /// The match-id prefix of this process: `<region>` or `<region>_<instance>`.
    #[must_use]
    pub fn prefix(&self) -> String {
        match &self.instance {
            Some(instance) => format!("{}_{instance}", self.local),
            None => self.local.clone(),
        }
    }

    /// Whether `match_id` is one of this process's (its prefix is this process's): what
    /// a process restores from a database it may share with others.
    #[must_use]
    pub fn owns(&self, match_id: &str) -> bool {
        match_id.split_once('-').is_some_and(|(prefix, _)| prefix == self.prefix())
    }

    /// The URL of the process or region that runs `match_id`, when that is known and not
    /// this process. An id naming a process of another region goes to that process's own
    /// entry, else to its region's; an id naming another process of this region only to
    /// that process's own entry (this region's URL leads back here). Ids without a known
    /// prefix are local.
    #[must_use]
    pub fn elsewhere(&self, match_id: &str) -> Option<&str> {
        let prefix = match_id.split_once('-')?.0;
        if prefix == self.prefix() {
            return None;
        }
        let url = |name: &str| self.urls.iter().find(|(n, _)| n == name).map(|(_, u)| u.as_str());
        let region = prefix.split_once('_').map_or(prefix, |(region, _)| region);
        if prefix != self.local
            && let Some(found) = url(prefix)
        {
            return Some(found);
        }
        if region == self.local {
            return None;
        }
        url(region)
    }

    /// The shard socket base URL of `region`: its `PYLON_REGION_WS_URLS` entry, else
    /// derived from its URL ([`ws_url_of`]).
    #[must_use]
    pub fn ws_url(&self, region: &str) -> Option<String> {
        if let Some((_, ws)) = self.ws_urls.iter().find(|(n, _)| n == region) {
            return Some(ws.clone());
        }
        self.urls.iter().find(|(n, _)| n == region).map(|(_, url)| ws_url_of(url))
    }

    /// The regions `GET /api/regions` lists, in configuration order: (region, url,
    /// ws_url). Entries naming a single process (`eu_2`) are routing details, not listed.
    #[must_use]
    pub fn listed(&self) -> Vec<(String, String, String)> {
        self.urls
            .iter()
            .filter(|(name, _)| !name.contains('_'))
            .map(|(name, url)| {
                let ws = self.ws_url(name).unwrap_or_else(|| ws_url_of(url));
                (name.clone(), url.clone(), ws)
            })
            .collect()
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
    /// Long-lived sockets per client address: shard sockets, feed sockets and SSE streams
    /// together (`PYLON_MAX_CONNS_PER_IP`, default 256). Protects memory and file
    /// descriptors from one address holding thousands of subscriptions.
    pub max_conns_per_ip: u32,
    /// TCP connections per client address on every port (`PYLON_MAX_HTTP_CONNS_PER_IP`,
    /// default 512; at least `max_conns_per_ip`, since an upgraded socket counts in both).
    /// Counted in the accept loop, before any header is read, so behind a proxy it counts
    /// the proxy. Over it: a minimal 429 `TOO_MANY_CONNECTIONS`, then close. Protects file
    /// descriptors and tasks from idle or slow connections opened by the thousand.
    pub max_http_conns_per_ip: u32,
    /// Time allowed for a connection's request headers (also the longest an idle
    /// keep-alive connection stays open between requests), and for the shard's join
    /// answer (`PYLON_HANDSHAKE_TIMEOUT_SECS`, default 10 s). Protects against slowloris
    /// heads and silent connections.
    pub handshake_timeout: Duration,
    /// Total time allowed for reading a request body, from its head
    /// (`PYLON_BODY_TIMEOUT_SECS`, default 10 s); over it: 408 `REQUEST_TIMEOUT`, the
    /// connection closed. Protects against bodies that never finish.
    pub body_timeout: Duration,
    /// A socket that sends nothing, not even a pong, for this long is closed with 4408
    /// (default 60 s).
    pub idle_timeout: Duration,
    /// How often the server pings each socket (default 20 s).
    pub ping_interval: Duration,
    /// Largest HTTP request body, bytes (default 1 MiB); larger is 413.
    pub max_body_bytes: usize,
    /// Matches one session may create per minute (`PYLON_MATCHES_PER_MINUTE`, default
    /// 20: a burst of 20, then one every 3 s; the admin token is exempt). Protects the
    /// tick threads and memory from a create flood.
    pub matches_per_minute: u32,
    /// Matches one session may have running at once (`PYLON_MAX_MATCHES_PER_USER`,
    /// default 5; the admin token is exempt).
    pub max_matches_per_user: u32,
    /// Matches running in this process at once, whoever created them
    /// (`PYLON_MAX_MATCHES`, default 20,000; the admin token is not exempt). Protects the
    /// tick threads' budget: beyond it every match's ticks would be late.
    pub max_matches: u32,
    /// Guest sessions one client address may create per minute
    /// (`PYLON_GUESTS_PER_MINUTE_PER_IP`, default 20: a burst of 20, then one every 3 s;
    /// a request carrying the admin token is exempt, for load tools). Protects the
    /// session store from a sign-up flood.
    pub guests_per_minute_per_ip: u32,
    /// SSE heartbeat comment interval (default 15 s).
    pub sse_heartbeat: Duration,
    /// Matchmaker tickets one client address may file per second, with a burst of twice
    /// that (`PYLON_TICKETS_PER_SEC_PER_IP`, default 5: a burst of 10; a request carrying
    /// the admin token is exempt). Protects the queues and the session store (every
    /// party member is looked up) from a ticket flood.
    pub tickets_per_sec_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_inputs_per_sec: 120,
            max_conns_per_ip: 256,
            max_http_conns_per_ip: 512,
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            matches_per_minute: 20,
            max_matches_per_user: 5,
            max_matches: 20_000,
            guests_per_minute_per_ip: 20,
            sse_heartbeat: Duration::from_secs(15),
            tickets_per_sec_per_ip: 5,
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
    /// Lifetime of a guest session (`PYLON_GUEST_SESSION_TTL_SECS`, default 24 hours).
    /// When it ends, the session's live sockets and streams are closed too.
    pub session_ttl: Duration,
    /// How often expired sessions are deleted from the session store (default 10
    /// minutes). Keeps the store from growing with sessions nobody can use.
    pub session_purge_interval: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`PYLON_TRUSTED_PROXIES`,
    /// default none). For a connection from one of them, the per-address limits (socket
    /// cap, guest sessions) count the right-most address in `X-Forwarded-For` that is not
    /// itself a trusted proxy; the HTTP connection cap, decided before any header is
    /// read, counts the proxy.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            dev_mode: false,
            admin_token: None,
            cors_origins: Vec::new(),
            regions: Regions::default(),
            limits: Limits::default(),
            session_ttl: Duration::from_secs(24 * 3600),
            session_purge_interval: Duration::from_secs(600),
            trusted_proxies: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(local: &str, instance: Option<&str>) -> Regions {
        let urls = [
            ("eu", "https://eu.example.com"),
            ("us", "http://us:4321/"),
            ("eu_2", "http://10.0.0.2:4321"),
        ];
        Regions {
            local: local.into(),
            instance: instance.map(Into::into),
            urls: urls.iter().map(|(n, u)| ((*n).into(), (*u).into())).collect(),
            ws_urls: vec![("us".into(), "wss://us.example.com:4324/".into())],
        }
    }

    /// Ids of another region go to that region; another process of this region only to
    /// its own entry; this process's own ids and unknown prefixes stay.
    #[test]
    fn elsewhere_by_prefix() {
        let eu = regions("eu", None);
        assert_eq!(eu.elsewhere("us-abc"), Some("http://us:4321/"));
        assert_eq!(eu.elsewhere("us_7-abc"), Some("http://us:4321/"));
        assert_eq!(eu.elsewhere("eu-abc"), None);
        assert_eq!(eu.elsewhere("eu_2-abc"), Some("http://10.0.0.2:4321"));
        assert_eq!(eu.elsewhere("eu_3-abc"), None);
        assert_eq!(eu.elsewhere("mars-abc"), None);
        assert_eq!(eu.elsewhere("noprefix"), None);
        let eu1 = regions("eu", Some("1"));
        assert_eq!(eu1.prefix(), "eu_1");
        assert_eq!(eu1.elsewhere("eu-abc"), None, "never back to this region's own URL");
        assert_eq!(eu1.elsewhere("eu_1-abc"), None);
        assert!(eu1.owns("eu_1-abc") && !eu1.owns("eu-abc") && !eu1.owns("eu_2-abc"));
        assert!(eu.owns("eu-abc") && !eu.owns("eu_1-abc") && !eu.owns("us-abc"));
    }

    /// Socket URLs are derived from the region URL unless given; processes are not
    /// listed.
    #[test]
    fn listed_with_socket_urls() {
        let listed = regions("eu", None).listed();
        assert_eq!(
            listed,
            [
                ("eu".into(), "https://eu.example.com".into(), "wss://eu.example.com/shard".into()),
                ("us".into(), "http://us:4321/".into(), "wss://us.example.com:4324/".into()),
            ]
        );
        assert_eq!(ws_url_of("http://127.0.0.1:4321/"), "ws://127.0.0.1:4321/shard");
    }
}
