//! `pylon-loadtest`: command-line entry to the load scenarios. Each socket scenario prints
//! a progress line while it runs, then one summary line; `--json FILE` writes the figures
//! and `--assert 'p99_ms<=60,errors==0'` makes the exit code say whether they hold.

use clap::{Args, Parser, Subcommand};
use pylon_loadtest::arena::{self, ArenaConfig};
use pylon_loadtest::density::{self, DensityConfig};
use pylon_loadtest::entities::{self, EntitiesConfig, Mix};
use pylon_loadtest::fanout::{self, FanoutConfig};
use pylon_loadtest::report;
use pylon_shard::codec::WireMode;
use serde_json::{Map, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pylon-loadtest", version, about = "Load scenarios for pylon")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// The shape of the matches and their load (arena and density).
#[derive(Args, Clone, Copy)]
struct GameLoad {
    /// Players per match.
    #[arg(long, default_value_t = 8)]
    players: usize,
    /// Match tick rate (1 to 128).
    #[arg(long, default_value_t = 20)]
    hz: u32,
    /// Inputs per second per player (arena: 0 makes idle clients that only read).
    #[arg(long, default_value_t = 20)]
    input_hz: u32,
}

/// Flags every socket scenario has.
#[derive(Args, Clone)]
struct Common {
    /// The server's main port.
    #[arg(long, default_value = "http://127.0.0.1:4321")]
    url: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Conditions that must hold, e.g. 'p99_ms<=60,errors==0' (exit 1 otherwise).
    #[arg(long)]
    assert: Option<String>,
    /// The server's pid, to report its CPU and RSS during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Admin token (`PYLON_ADMIN_TOKEN` of the server).
    #[arg(long, env = "PYLON_LOADTEST_TOKEN")]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Bots in arena matches over real sockets; input -> ack latency.
    Arena {
        #[command(flatten)]
        common: Common,
        /// Bots.
        #[arg(long, default_value_t = 200)]
        bots: usize,
        #[command(flatten)]
        game: GameLoad,
        /// Warm-up seconds before measuring.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Wire mode: json (compat binary frames), text, msgpack, delta (patch format 1,
        /// `delta=1`) or delta2 (the denser format 2, `delta=2`).
        #[arg(long, default_value = "json", value_parser = arena::parse_mode)]
        mode: WireMode,
        /// Spread sockets over 127.0.0.1 .. 127.0.0.N.
        #[arg(long, default_value_t = 1)]
        source_ips: u8,
        /// Where the shard sockets are, when not on the main port + 3: e.g.
        /// `ws://127.0.0.1:8080/shard` behind a proxy that serves one port.
        #[arg(long)]
        shard_url: Option<String>,
        /// Seat the bots through the matchmaker (a ticket each, the assignment pushed on
        /// its SSE stream) instead of creating matches; reports time to match. The match
        /// size is arena's (8); `--players` is ignored.
        #[arg(long)]
        matchmaker: bool,
    },
    /// A CRUD mix on the entity API at a fixed concurrency.
    Entities {
        #[command(flatten)]
        common: Common,
        /// Concurrent callers.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Operation mix.
        #[arg(long, value_enum, default_value_t = Mix::Mixed)]
        mix: Mix,
    },
    /// One writer, N change-feed subscribers (half WebSocket, half SSE).
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Subscribers.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Writes per second.
        #[arg(long, default_value_t = 20)]
        writes_per_sec: u32,
        /// Spread subscriber sockets over 127.0.0.1 .. 127.0.0.N (the server caps sockets
        /// per address, 256 by default).
        #[arg(long, default_value_t = 1)]
        source_ips: u8,
        /// The subscribers connect to this process (`http://host:port`, the main port),
        /// the writer to `--url`: write -> receive across the cluster bus.
        #[arg(long)]
        across: Option<String>,
    },
    /// N arena matches in-process on the real tick threads, synthetic inputs, one summary line.
    Density {
        /// Matches to run.
        #[arg(long, default_value_t = 1000)]
        matches: usize,
        #[command(flatten)]
        game: GameLoad,
        /// Measured seconds.
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// Warm-up seconds before measuring.
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// Tick threads (0 = available cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pylon-loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints, writes and checks a socket scenario's figures; whether the asserts held.
fn finish(name: &str, common: &Common, figures: &Map<String, Value>) -> anyhow::Result<bool> {
    println!("{}", report::summary_line(name, figures));
    if let Some(path) = &common.json {
        let doc = serde_json::json!({ "scenario": name, "figures": figures });
        std::fs::write(path, format!("{doc:#}\n"))?;
    }
    match common.assert.as_deref().map(|spec| report::check(figures, spec)) {
        Some(Err(failed)) => {
            for f in failed {
                eprintln!("assert failed: {f}");
            }
            Ok(false)
        }
        _ => Ok(true),
    }
}

fn token(common: &Common) -> anyhow::Result<String> {
    common.token.clone().ok_or_else(|| {
        anyhow::anyhow!("--token (or PYLON_LOADTEST_TOKEN) is required: the server's admin token")
    })
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.scenario {
        Scenario::Arena { common, bots, game, warmup, mode, source_ips, shard_url, matchmaker } => {
            let GameLoad { players, hz, input_hz } = game;
            anyhow::ensure!(bots > 0 && players > 0, "--bots and --players must be positive");
            let config = ArenaConfig {
                url: common.url.clone(),
                bots,
                players,
                hz,
                input_hz,
                secs: common.secs,
                warmup,
                mode,
                source_ips,
                token: common.token.clone(),
                server_pid: common.server_pid,
                shard_url,
                matchmaker,
            };
            let figures = rt.block_on(arena::run(&config))?;
            finish("arena", &common, &figures)
        }
        Scenario::Entities { common, concurrency, mix } => {
            let config = EntitiesConfig {
                url: common.url.clone(),
                token: token(&common)?,
                concurrency: concurrency.max(1),
                secs: common.secs,
                mix,
                server_pid: common.server_pid,
            };
            let figures = rt.block_on(entities::run(&config))?;
            finish("entities", &common, &figures)
        }
        Scenario::Fanout { common, subscribers, writes_per_sec, source_ips, across } => {
            let config = FanoutConfig {
                url: common.url.clone(),
                across,
                token: token(&common)?,
                subscribers,
                writes_per_sec,
                source_ips,
                secs: common.secs,
                server_pid: common.server_pid,
            };
            let figures = rt.block_on(fanout::run(&config))?;
            finish("fanout", &common, &figures)
        }
        Scenario::Density { matches, game, secs, warmup, threads } => {
            let GameLoad { players, hz, input_hz } = game;
            anyhow::ensure!((1..=128).contains(&hz), "--hz must be 1 to 128");
            anyhow::ensure!(players > 0 && matches > 0, "--matches and --players must be positive");
            let config = DensityConfig {
                matches,
                players,
                hz,
                input_hz,
                secs,
                warmup_secs: warmup,
                threads,
            };
            let report = density::run(&config)?;
            println!("{}", report.summary());
            Ok(true)
        }
    }
}
