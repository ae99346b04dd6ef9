//! [`App`]: a pylon server with a studio's games, as a few lines of a studio's own
//! `main.rs`. The `pylon` binary is `App::new().run()`.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use pylon_shard::{Game, GameRegistry};
use pylon_sync::matchmaker::GameRules;

use crate::cli::{Cli, Command};
use crate::config::{Config, Mode};
use crate::setup::DevManifest;
use crate::{serve, tools};

/// The example manifest `pylon dev` loads for a new database when nothing names one.
const EXAMPLE_MANIFEST: &str = include_str!("../examples/pylon.manifest.json");

/// A pylon server: its games, its name, its dev defaults. [`App::run`] parses the command
/// line (`dev`, `serve`, `migrate`, `backup`, `restore`, `version`), reads the
/// environment and runs the command.
///
/// ```no_run
/// # use pylon::App;
/// fn main() -> std::process::ExitCode {
///     App::new()                 // the built-in games (arena, tictactoe) included
///         .name("my-game", "0.1.0")
///         // .game::<MyGame>()   // your own, registered under `MyGame::NAME`
///         .run()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct App {
    games: GameRegistry,
    name: &'static str,
    version: &'static str,
    dev_manifest: DevManifest,
    matchmaking: Vec<(String, GameRules)>,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// A server with the built-in games (`arena`, `tictactoe`).
    #[must_use]
    pub fn new() -> Self {
        Self {
            games: GameRegistry::builtin(),
            name: "pylon",
            version: env!("CARGO_PKG_VERSION"),
            dev_manifest: DevManifest {
                name: "the bundled example (examples/pylon.manifest.json)",
                json: EXAMPLE_MANIFEST,
            },
            matchmaking: Vec::new(),
        }
    }

    /// Registers game `G` under `G::NAME` (a game of the same name is replaced).
    #[must_use]
    pub fn game<G: Game>(mut self) -> Self {
        self.games.register::<G>();
        self
    }

    /// Leaves the built-in games out: only the games registered after this are served.
    #[must_use]
    pub fn without_builtin_games(mut self) -> Self {
        self.games = GameRegistry::empty();
        self
    }

    /// The name and version `version` prints and `/health` reports (default: pylon's).
    #[must_use]
    pub fn name(mut self, name: &'static str, version: &'static str) -> Self {
        self.name = name;
        self.version = version;
        self
    }

    /// The manifest `dev` loads for a new database when `PYLON_MANIFEST` is not set
    /// (default: pylon's example). `json` is the manifest's text, e.g.
    /// `include_str!("../pylon.manifest.json")`.
    #[must_use]
    pub fn dev_manifest(mut self, name: &'static str, json: &'static str) -> Self {
        self.dev_manifest = DevManifest { name, json };
        self
    }

    /// Replaces the matchmaker's rules of game `game` (which must declare
    /// `Game::MATCHMAKING`): its skill window, ticket timeout, fill timeout, and its sizes,
    /// modes and backfill too. Without this a game gets its declaration with the
    /// documented defaults (docs/MATCHMAKER.md). A game that is not matchmade stops the
    /// server at start.
    ///
    /// ```no_run
    /// # use pylon::App;
    /// use pylon::matchmaker::GameRules;
    /// use std::time::Duration;
    /// let mut rules = GameRules::fixed(8).with_backfill(true);
    /// rules.ticket_timeout = Duration::from_secs(60);
    /// let app = App::new().matchmaking_rules("arena", rules);
    /// ```
    #[must_use]
    pub fn matchmaking_rules(mut self, game: &str, rules: GameRules) -> Self {
        self.matchmaking.retain(|(g, _)| g != game);
        self.matchmaking.push((game.to_owned(), rules));
        self
    }

    /// The registered game names.
    pub fn games(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.games.names()
    }

    /// Runs the command named on the process's command line; one line on stderr and exit
    /// code 1 when it fails.
    #[must_use]
    pub fn run(self) -> ExitCode {
        self.run_with_args(std::env::args_os())
    }

    /// Runs the command `args` names (the first is the program name).
    #[must_use]
    pub fn run_with_args(
        self,
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> ExitCode {
        let command = Cli::command().name(self.name).version(self.version);
        let cli = match command.try_get_matches_from(args).and_then(|m| Cli::from_arg_matches(&m)) {
            Ok(cli) => cli,
            // Help, version and usage errors print themselves (exit 0 or 2).
            Err(e) => e.exit(),
        };
        match self.dispatch(cli.command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                // One line, naming what is wrong (config errors name the variable).
                eprintln!("{}: {error:#}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    fn dispatch(&self, command: Command) -> anyhow::Result<()> {
        let mode = match command {
            Command::Version => {
                if self.name == "pylon" {
                    println!("pylon {}", self.version);
                } else {
                    println!(
                        "{} {} (pylon {})",
                        self.name,
                        self.version,
                        env!("CARGO_PKG_VERSION")
                    );
                }
                return Ok(());
            }
            Command::Dev => Mode::Dev,
            Command::Serve => Mode::Serve,
            Command::Migrate { dry_run } => {
                return tools::migrate(&Config::from_env(Mode::Tool)?, self.dev_manifest, dry_run);
            }
            Command::Backup { dir } => {
                return tools::backup(&Config::from_env(Mode::Tool)?, self.dev_manifest, &dir);
            }
            Command::Restore { dir } => {
                return tools::restore(&Config::from_env(Mode::Tool)?, self.dev_manifest, &dir);
            }
        };
        let config = Config::from_env(mode)?;
        serve::init_logging(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pylon-io")
            .build()
            .context("cannot start the async runtime")?;
        let app = serve::AppParts {
            games: self.games.clone(),
            dev: self.dev_manifest,
            version: self.version,
            matchmaking: self.matchmaking.clone(),
        };
        runtime.block_on(serve::serve(config, app))
    }
}
