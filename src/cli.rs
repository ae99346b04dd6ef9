//! The command line: the subcommands every pylon binary has (`dev`, `serve`, `migrate`,
//! `backup`, `restore`, `version`) and the help text that lists the environment.
//!
//! A mistyped subcommand is answered with the closest one (clap's suggestions).

use clap::{Parser, Subcommand};

/// The command line of a pylon server.
#[derive(Parser)]
#[command(
    name = "pylon",
    about = "pylon: realtime game shards",
    arg_required_else_help = true,
    after_help = ENV_HELP,
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the server (production defaults; configuration from the environment).
    #[command(after_help = ENV_HELP)]
    Serve,
    /// Run the server with development defaults: a generated admin token, any CORS
    /// origin, pretty logs, data under ./.pylon/, the example manifest.
    #[command(after_help = ENV_HELP)]
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

/// The environment, grouped, with defaults (the README's Configuration table says more).
pub(crate) const ENV_HELP: &str = "\
Environment (defaults in brackets; README, Configuration, says more):
  Server
    PYLON_PORT [4321]            HTTP port; sync socket +1, SSE +2, shard sockets +3
    PYLON_HOST [0.0.0.0]         listen address
    PYLON_ADMIN_TOKEN            operators' token, 16+ characters (required by serve)
    PYLON_DEV_MODE [false]       dev mode under serve
    PYLON_CORS_ORIGIN            allowed origins, comma separated (* only in dev mode)
    PYLON_TICK_THREADS [cores]   tick threads (1 to 256)
    PYLON_SHUTDOWN_GRACE_SECS [30]  cap on in-flight work after SIGTERM
    PYLON_LOG [info]             level, or target=level pairs (info,pylon_api=debug)
    PYLON_LOG_FORMAT [json; dev: pretty]  json or pretty
  Storage
    PYLON_DB_PATH [.pylon/pylon.db]           entity database (SQLite)
    PYLON_SESSION_DB [.pylon/sessions.db]     session database (:memory: for throwaway)
    DATABASE_URL                 postgres://... puts everything in Postgres
    PYLON_MANIFEST               entity manifest [the database's; dev: the example]
  Matches
    PYLON_MATCH_IDLE_SECS [60]   stop a match with no subscriber and no input
    PYLON_PERSIST_EVERY_TICKS [100]  save running matches every N ticks (0: at shutdown)
    PYLON_SHUTDOWN_MATCHES [persist]  persist (resume after restart) or stop
    PYLON_TICKET_TIMEOUT_SECS [120]   matchmaker tickets expire after this
    PYLON_SEAT_HOLD_SECS [20]         a matched player's seat is held this long
    PYLON_MATCHES_PER_MINUTE [20]     matches a session may create a minute
    PYLON_MAX_MATCHES_PER_USER [5]    matches a session may have running
    PYLON_MAX_MATCHES [20000]         running matches in the process
  Regions and fleet
    PYLON_REGION [local]         this region (match ids start with it)
    PYLON_INSTANCE               this process's instance in its region (ids eu_2-...)
    PYLON_REGIONS                eu=https://eu.example.com,us=https://us.example.com
    PYLON_REGION_WS_URLS         shard socket URLs for GET /api/regions, when not derived
    PYLON_CLUSTER_BUS            redis://... shares feeds, presence, logouts
    PYLON_CLUSTER_NAMESPACE [pylon]  channel prefix on a shared Redis
  Limits
    PYLON_MAX_CONNS_PER_IP [256]       long-lived sockets per client address
    PYLON_MAX_HTTP_CONNS_PER_IP [512]  TCP connections per client address
    PYLON_TRUSTED_PROXIES              proxies whose X-Forwarded-For is believed
    PYLON_MAX_FRAME_BYTES [65536]      largest client frame
    PYLON_MAX_INPUTS_PER_SEC [120]     inputs per second per subscriber
    PYLON_MAX_BODY_BYTES [1048576]     largest HTTP body
    PYLON_BODY_TIMEOUT_SECS [10]       time to receive a request body
    PYLON_HANDSHAKE_TIMEOUT_SECS [10]  time for request headers and a join
    PYLON_IDLE_TIMEOUT_SECS [60]       idle sockets closed
    PYLON_PING_INTERVAL_SECS [20]      ping interval
    PYLON_GUESTS_PER_MINUTE_PER_IP [20]    guest sessions per address a minute
    PYLON_GUEST_SESSION_TTL_SECS [86400]   guest session lifetime
    PYLON_TICKETS_PER_SEC_PER_IP [5]       matchmaker tickets per address a second
";

#[cfg(test)]
mod tests {
    use super::ENV_HELP;

    /// Every variable the configuration reads is in the help text.
    #[test]
    fn help_lists_every_variable() {
        let source = include_str!("config.rs");
        let mut missing = Vec::new();
        for chunk in source.split('"').skip(1).step_by(2) {
            let is_var = (chunk.starts_with("PYLON_") || chunk == "DATABASE_URL")
                && chunk.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            if is_var && !ENV_HELP.contains(chunk) {
                missing.push(chunk);
            }
        }
        assert!(missing.is_empty(), "not in the help text: {missing:?}");
    }
}
