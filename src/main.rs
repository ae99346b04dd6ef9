//! `pylon`: the server binary. `src/main.rs` is the CLI; `src/config.rs` reads the
//! environment; wiring of the crates happens here and only here.
//!
//! `pylon serve` runs the server with production defaults, `pylon dev` with development
//! defaults (a generated admin token printed at start, permissive CORS, pretty logs,
//! SQLite under `./.pylon/`), `pylon version` prints the version.

mod config;
mod tools;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Config, LogFormat, Mode};
use pylon_api::{ApiConfig, Listeners, Matches, Policies, Server};
use pylon_shard::GameRegistry;
use pylon_storage::postgres::PgSessionStore;
use pylon_storage::{Backend, Manifest, Sessions, SqliteSessionStore, Store, stored_manifest};
use pylon_tick::{MonotonicClock, PersistSink, TickConfig, TickPool};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pylon",
    version,
    about = "pylon: realtime game shards",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (production defaults; configuration from the environment).
    Serve,
    /// Run the server with development defaults.
    Dev,
    /// Create or migrate the entity tables to the manifest (refuses changes that lose data).
    Migrate {
        /// Report what would change without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the databases (entities, change log, sessions) into DIR, online.
    Backup {
        /// A new or empty directory.
        dir: std::path::PathBuf,
    },
    /// Restore a backup made by `pylon backup` into an empty data location.
    Restore {
        /// The backup directory.
        dir: std::path::PathBuf,
    },
    /// Print the version.
    Version,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, naming what is wrong (config errors name the variable).
            eprintln!("pylon: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mode = match cli.command {
        Command::Version => {
            println!("pylon {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Command::Dev => Mode::Dev,
        Command::Serve => Mode::Serve,
        Command::Migrate { dry_run } => {
            return tools::migrate(&Config::from_env(Mode::Tool)?, dry_run);
        }
        Command::Backup { dir } => return tools::backup(&Config::from_env(Mode::Tool)?, &dir),
        Command::Restore { dir } => return tools::restore(&Config::from_env(Mode::Tool)?, &dir),
    };
    let config = Config::from_env(mode)?;
    if let Some(url) = &config.cluster_bus {
        config::check_cluster_bus(url)?;
    }
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pylon-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log_filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set, which cannot happen here.
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let sessions = open_sessions(&config, &store).await?;
    let (policies, warnings) = Policies::compile(store.manifest(), config.dev_mode);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let listeners = Listeners::bind(config.host, config.port).await.context("PYLON_PORT")?;

    let tick_config = TickConfig { threads: config.tick_threads, ..TickConfig::default() };
    let (persist_tx, persist_rx) = crossbeam_channel::bounded(PERSIST_QUEUE);
    let sink = PersistSink { tx: persist_tx, every_ticks: config.persist_every_ticks };
    let pool =
        TickPool::start_with_persistence(&tick_config, Arc::new(MonotonicClock::new()), Some(sink))
            .context("cannot start the tick threads")?;
    let matches = Matches::new(pool, GameRegistry::builtin(), config.regions.local.clone());
    restore_matches(&store, &matches).await;
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
    let entities = pylon_sync::Feeds::new(store, Arc::new(policies), pylon_sync::DEFAULT_BUFFER);
    let server = Server::new(api, matches, sessions, env!("CARGO_PKG_VERSION"))
        .with_entities(entities)
        .with_persistence(persist_rx, config.persist_at_shutdown);

    if config.admin_token_generated {
        println!("pylon dev: admin token (generated for this run): {}", config.admin_token);
    }
    let main_addr = listeners.main.local_addr().context("PYLON_PORT")?;
    let shard_addr = listeners.shard.local_addr().context("PYLON_PORT")?;
    println!(
        "pylon {} listening: http://{main_addr} (API, /shard), ws://{shard_addr} (shard sockets); {} tick threads{}",
        env!("CARGO_PKG_VERSION"),
        config.tick_threads,
        if config.dev_mode { "; dev mode" } else { "" }
    );
    tracing::info!(%main_addr, %shard_addr, tick_threads = config.tick_threads, dev = config.dev_mode, "listening");
    server.run(listeners, shutdown_signal(), config.shutdown_grace).await;
    Ok(())
}

/// The example manifest `pylon dev` loads when `PYLON_MANIFEST` is not set.
const EXAMPLE_MANIFEST: &str = include_str!("../examples/pylon.manifest.json");
/// What `pylon serve` runs with when `PYLON_MANIFEST` is not set: no entities.
const EMPTY_MANIFEST: &str = r#"{"manifest_version":1,"name":"pylon","version":"0","entities":[]}"#;

/// The database the configuration names: Postgres when `DATABASE_URL` does, else the
/// SQLite file at `PYLON_DB_PATH`.
pub(crate) fn backend(config: &Config) -> Backend {
    match &config.database_url {
        Some(url) => Backend::Postgres { url: url.clone(), schema: None },
        None => Backend::Sqlite(config.db_path.clone()),
    }
}

/// The manifest, the same rule for every command: `PYLON_MANIFEST` when set; else the
/// manifest the database was last migrated to (so `pylon migrate`, `backup` or `serve`
/// after `pylon dev` keep what `dev` loaded); else the mode's default (dev: the bundled
/// example; otherwise no entities).
pub(crate) async fn load_manifest(config: &Config) -> anyhow::Result<Manifest> {
    let (manifest, warnings) = match &config.manifest {
        Some(path) => {
            Manifest::load(path).with_context(|| format!("PYLON_MANIFEST={}", path.display()))?
        }
        None => match stored_manifest(&backend(config)).await.context(database_variable(config))? {
            Some(text) => Manifest::parse(&text).context("the manifest the database recorded")?,
            None if config.dev_mode => {
                Manifest::parse(EXAMPLE_MANIFEST).context("the bundled example manifest")?
            }
            None => Manifest::parse(EMPTY_MANIFEST).context("the empty manifest")?,
        },
    };
    for warning in warnings {
        tracing::warn!("manifest: {warning}");
    }
    Ok(manifest)
}

/// The variable naming the database, for error context.
fn database_variable(config: &Config) -> String {
    match &config.database_url {
        Some(_) => "DATABASE_URL".to_owned(),
        None => format!("PYLON_DB_PATH={}", config.db_path.display()),
    }
}

/// Opens the entity store (migrating it to the manifest; a refused migration stops
/// start-up): Postgres when `DATABASE_URL` names it, else SQLite at `PYLON_DB_PATH`.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let manifest = Arc::new(load_manifest(config).await?);
    match &config.database_url {
        Some(url) => Store::open(&Backend::Postgres { url: url.clone(), schema: None }, manifest)
            .await
            .context("DATABASE_URL"),
        None => Store::open(&Backend::Sqlite(config.db_path.clone()), manifest)
            .await
            .with_context(|| format!("PYLON_DB_PATH={}", config.db_path.display())),
    }
}

/// The session store: Postgres (beside the entities) when `DATABASE_URL` names it,
/// else SQLite at `PYLON_SESSION_DB`.
async fn open_sessions(config: &Config, store: &Store) -> anyhow::Result<Sessions> {
    if let Store::Postgres(pg) = store {
        let sessions =
            PgSessionStore::open(pg.pool().clone()).await.context("DATABASE_URL (sessions)")?;
        return Ok(sessions.into());
    }
    if config.session_db.as_os_str() == ":memory:" {
        return Ok(SqliteSessionStore::in_memory().context("PYLON_SESSION_DB")?.into());
    }
    let path = &config.session_db;
    let sessions = SqliteSessionStore::open(path)
        .await
        .with_context(|| format!("PYLON_SESSION_DB={}", path.display()))?;
    Ok(sessions.into())
}

/// Persistence records that may wait for the persister (saved states, results); beyond
/// this, tick threads skip and count instead of waiting.
const PERSIST_QUEUE: usize = 4096;

/// Resumes the matches a previous run saved. A state that no longer restores (a game
/// removed or changed) is logged and left in place for an operator.
async fn restore_matches(store: &Store, matches: &Matches) {
    let saved = match store.saved_matches().await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(error = %e, "cannot read saved matches; none resumed");
            return;
        }
    };
    let mut resumed = 0usize;
    for (id, text) in saved {
        let restored = serde_json::from_str::<pylon_shard::SavedMatch>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| matches.restore(&id, &s).map_err(|e| e.to_string()));
        match restored {
            Ok(_) => resumed += 1,
            Err(e) => tracing::error!(shard = %id, error = %e, "saved match not resumed"),
        }
    }
    if resumed > 0 {
        tracing::info!(resumed, "resumed saved matches");
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
