//! `pylon`: the server binary. `src/main.rs` is the CLI; `src/config.rs` reads the
//! environment; wiring of the crates happens here and only here.
//!
//! Until the network server lands (the server issue), `pylon serve` and `pylon dev` run
//! the simulation core in-process: arena matches with synthetic players on the real tick
//! threads, printing what the tick threads achieve.

mod config;

use clap::{Parser, Subcommand};
use pylon_loadtest::density::{self, DensityConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pylon", version, about = "pylon: realtime game shards")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run (today: the in-process simulation demo; the network server comes next).
    Serve(DemoArgs),
    /// Development mode (same as serve for now).
    Dev(DemoArgs),
    /// Print the version.
    Version,
}

#[derive(clap::Args, Clone)]
struct DemoArgs {
    /// Arena matches to run.
    #[arg(long, default_value_t = 500)]
    matches: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
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
    if let Some(Command::Version) = cli.command {
        println!("pylon {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let settings = config::Config::from_env()?;
    let demo = match cli.command {
        Some(Command::Version) => return Ok(()),
        Some(Command::Serve(args) | Command::Dev(args)) => args,
        None => DemoArgs { matches: 500, secs: 10 },
    };
    println!(
        "pylon {}: network server not built yet; running {} arena matches of 8 players at 20 Hz \
         on {} tick threads for {} s",
        env!("CARGO_PKG_VERSION"),
        demo.matches,
        settings.tick_threads,
        demo.secs
    );
    let config = DensityConfig {
        matches: demo.matches,
        players: 8,
        hz: 20,
        input_hz: 20,
        secs: demo.secs,
        warmup_secs: 2,
        threads: settings.tick_threads,
    };
    let report = density::run(&config)?;
    println!("{}", report.summary());
    Ok(())
}
