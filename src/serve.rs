//! `pylon serve` and `pylon dev`: wires the crates into a running server and prints the
//! start-up lines (what listens where, the manifest, the data, the games, a next step).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use pylon_api::{ApiConfig, Listeners, Matches, Matchmaking, MatchmakingConfig, Policies, Server};
use pylon_shard::GameRegistry;
use pylon_sync::matchmaker::{
    Clock, GameRules, MemoryQueue, Queue, QueueOptions, RedisOptions, RedisQueue, SystemClock,
};
use pylon_tick::{MonotonicClock, PersistSink, TickConfig, TickPool};

use crate::config::{Config, LogFormat};
use crate::setup::{self, DevManifest};

/// Persistence records that may wait for the persister (saved states, results); beyond
/// this, tick threads skip and count instead of waiting.
const PERSIST_QUEUE: usize = 4096;

/// Installs the log subscriber (stderr; JSON or pretty).
pub(crate) fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set, which cannot happen here.
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// What an [`crate::App`] hands the server.
pub(crate) struct AppParts {
    pub games: GameRegistry,
    pub dev: DevManifest,
    pub version: &'static str,
    /// Matchmaker rules replacing a game's declaration, by game name.
    pub matchmaking: Vec<(String, GameRules)>,
}

/// The matchmaker: rules from `games` (and the App's overrides); its queue in Redis under
/// the cluster namespace when there is a bus (one matcher per queue in the fleet, this
/// process matching its own region), else in memory.
async fn matchmaker(
    config: &Config,
    games: &GameRegistry,
    overrides: &[(String, GameRules)],
    instance: &str,
) -> anyhow::Result<Matchmaking> {
    let rules = pylon_api::matchmaking::rules_from(games, overrides, config.ticket_timeout)
        .context("matchmaker rules (App::matchmaking_rules)")?;
    let rules = Arc::new(rules);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queue: Queue = match config.cluster_bus.as_deref() {
        Some(url) => {
            let mut options = RedisOptions::new(&config.cluster_namespace, instance);
            options.regions = vec![config.regions.local.clone()];
            let connect = RedisQueue::connect(url, rules, clock, options);
            let queue = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
                .await
                .context("PYLON_CLUSTER_BUS: the matchmaker queue did not connect within 5 s")?
                .context("PYLON_CLUSTER_BUS (the matchmaker queue)")?;
            queue.into()
        }
        None => MemoryQueue::new(rules, clock, QueueOptions::default()).into(),
    };
    let games: Vec<&str> = queue.rules().games().collect();
    let backend = if config.cluster_bus.is_some() { "redis" } else { "memory" };
    tracing::info!(games = %games.join(", "), queue = backend, "matchmaker");
    let settings =
        MatchmakingConfig { seat_hold: config.seat_hold, ..MatchmakingConfig::default() };
    Ok(Matchmaking::new(queue, settings))
}

/// Runs the server until SIGTERM or Ctrl-C.
pub(crate) async fn serve(config: Config, app: AppParts) -> anyhow::Result<()> {
    let AppParts { games, dev, version, matchmaking } = app;
    let loaded = setup::load_manifest(&config, dev).await?;
    let store = setup::open_store(&config, loaded.manifest).await?;
    let sessions = setup::open_sessions(&config, &store).await?;
    // Before listening: an unreachable bus refuses the start (logs the instance id).
    let bus = pylon_api::cluster::connect(config.cluster_bus.as_deref(), &config.cluster_namespace)
        .await
        .context("PYLON_CLUSTER_BUS")?;
    let matchmaker = matchmaker(&config, &games, &matchmaking, bus.instance_id().as_str()).await?;
    let (policies, warnings) = Policies::compile(store.manifest(), config.dev_mode);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners::bind(config.host, config.port).await.context("PYLON_PORT")?;

    let tick_config = TickConfig {
        threads: config.tick_threads,
        idle_timeout: config.match_idle,
        ..TickConfig::default()
    };
    let (persist_tx, persist_rx) = crossbeam_channel::bounded(PERSIST_QUEUE);
    let sink = PersistSink { tx: persist_tx, every_ticks: config.persist_every_ticks };
    let pool =
        TickPool::start_with_persistence(&tick_config, Arc::new(MonotonicClock::new()), Some(sink))
            .context("cannot start the tick threads")?;
    let game_names: Vec<&str> = games.names().collect();
    let game_names = game_names.join(", ");
    let matches = Matches::new(pool, games, config.regions.prefix());
    setup::restore_matches(&store, &matches, &config.regions).await;
    let api = ApiConfig {
        dev_mode: config.dev_mode,
        admin_token: Some(config.admin_token.clone()),
        cors_origins: config.cors_origins.clone(),
        regions: config.regions.clone(),
        limits: config.limits.clone(),
        session_ttl: config.guest_session_ttl,
        trusted_proxies: config.trusted_proxies.clone(),
        ..ApiConfig::default()
    };
    let data = data_location(&config, &store);
    let feeds = pylon_sync::Feeds::new(store, Arc::new(policies), pylon_sync::DEFAULT_BUFFER);
    let server = Server::new(api, matches, sessions, version)
        .with_entities(feeds)
        .with_bus(bus)
        .with_matchmaker(matchmaker)
        .with_persistence(persist_rx, config.persist_at_shutdown);

    let main_addr = listeners.main.local_addr().context("PYLON_PORT")?;
    let banner = Banner { config: &config, main: main_addr, manifest: &loaded.source, data: &data };
    println!("{}", banner.render(version, &game_names));
    tracing::info!(%main_addr, tick_threads = config.tick_threads, dev = config.dev_mode, games = %game_names, "listening");
    server.run(listeners, shutdown_signal(), config.shutdown_grace).await;
    Ok(())
}

/// Where the data lives, for the start-up lines.
fn data_location(config: &Config, store: &pylon_storage::Store) -> String {
    match store.sqlite_path() {
        Some(path) => {
            format!("SQLite {} (sessions: {})", path.display(), config.session_db.display())
        }
        None => "Postgres (DATABASE_URL): entities, change log and sessions".to_owned(),
    }
}

/// The start-up lines.
struct Banner<'a> {
    config: &'a Config,
    main: SocketAddr,
    manifest: &'a str,
    data: &'a str,
}

impl Banner<'_> {
    fn render(&self, version: &str, games: &str) -> String {
        let config = self.config;
        // A wildcard listen address is reached as localhost from this machine.
        let host = match config.host {
            IpAddr::V4(ip) if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V6(ip) if ip.is_unspecified() => "localhost".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip @ IpAddr::V4(_) => ip.to_string(),
        };
        let port = self.main.port();
        let mut out = String::new();
        if config.admin_token_generated {
            out.push_str(&format!(
                "pylon dev: admin token (generated for this run): {}\n",
                config.admin_token
            ));
        }
        let mode = if config.dev_mode { "dev mode, " } else { "" };
        out.push_str(&format!(
            "pylon {version} listening ({mode}{} tick threads):\n",
            config.tick_threads
        ));
        out.push_str(&format!(
            "  API            http://{host}:{port}/api  (also /shard, /ws, /events on this port)\n"
        ));
        out.push_str(&format!("  sync socket    ws://{host}:{}/\n", port + 1));
        out.push_str(&format!("  SSE            http://{host}:{}/\n", port + 2));
        out.push_str(&format!(
            "  shard sockets  ws://{host}:{}/?shard=<match id>&sid=<user id>\n",
            port + 3
        ));
        out.push_str(&format!("  manifest       {}\n", self.manifest));
        out.push_str(&format!("  data           {}\n", self.data));
        out.push_str(&format!("  games          {games}\n"));
        let token = if config.admin_token_generated {
            config.admin_token.clone()
        } else {
            "$PYLON_ADMIN_TOKEN".to_owned()
        };
        let game = games.split(", ").next().unwrap_or("arena");
        out.push_str(&format!(
            "Next: create a match, then connect to it (README, Connecting a client):\n  \
             curl -s -XPOST http://{host}:{port}/api/shards -H \"authorization: Bearer {token}\" \
             -H 'content-type: application/json' -d '{{\"game\":\"{game}\"}}'"
        ));
        out
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
