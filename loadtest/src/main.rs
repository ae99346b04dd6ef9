//! `pylon-loadtest`: command-line entry to the load scenarios.

use clap::{Parser, Subcommand};
use pylon_loadtest::density::{self, DensityConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pylon-loadtest", version, about = "Load scenarios for pylon")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N arena matches in-process on the real tick threads, synthetic inputs, one summary line.
    Density {
        /// Matches to run.
        #[arg(long, default_value_t = 1000)]
        matches: usize,
        /// Players per match.
        #[arg(long, default_value_t = 8)]
        players: usize,
        /// Tick rate (1 to 128).
        #[arg(long, default_value_t = 20)]
        hz: u32,
        /// Inputs per second per player.
        #[arg(long, default_value_t = 20)]
        input_hz: u32,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Density { matches, players, hz, input_hz, secs, warmup, threads } => {
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
        }
    }
    Ok(())
}
