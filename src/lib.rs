//! pylon: a realtime simulation server for games. Every match is a shard (a bevy_ecs
//! `World` plus a schedule of systems) stepped at a fixed rate by a small pool of tick
//! threads; clients connect over WebSocket (or SSE), and the same binary serves an entity
//! API with change feeds.
//!
//! This crate is what a studio depends on to run its own game: implement [`Game`] in one
//! file, register it on an [`App`], and `main` is three lines:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     pylon::App::new() /* .game::<MyGame>() */ .run()
//! }
//! ```
//!
//! The binary then has pylon's whole command line (`dev`, `serve`, `migrate`, `backup`,
//! `restore`, `version`) and reads the same environment (`pylon --help` lists it).
//! `docs/GAMES.md` walks through the [`Game`] trait hook by hook; `templates/game/` is a
//! starter project.
//!
//! Everything a game needs is re-exported here, so a game names no internal crate:
//! [`Game`] and the types it sees, [`ecs`] (bevy_ecs: a game crate also depends on
//! `bevy_ecs` itself, at the same version, for its derive macros), [`aoi`] (area of
//! interest), [`rng`] (the seeded match RNG), [`codec`] (the wire protocol, both halves,
//! for clients and tests), [`replay`], [`testing`] (a fake-clock stepper for game tests).
//!
//! Layout of this crate: `app.rs` [`App`]; `cli.rs` the command line and its help;
//! `config.rs` the environment (the only module that reads it); `setup.rs` the database,
//! the manifest, the stores; `serve.rs` the running server and its start-up lines;
//! `tools.rs` `migrate`, `backup`, `restore`.

mod app;
mod cli;
mod config;
mod serve;
mod setup;
mod tools;

pub use app::App;
pub use bevy_ecs as ecs;
pub use mimalloc::MiMalloc;
pub use pylon_shard::codec;
pub use pylon_shard::game::Matchmaking;
pub use pylon_shard::{
    Auth, DynShard, Game, GameRegistry, JoinRejected, MatchClock, MatchConfig, Outgoing, Shard,
    ShardLimits, StopReason, Subscriber, SubscriberKey, aoi, games, hash, replay, rng,
};

/// The matchmaker's rules, for [`App::matchmaking_rules`]: a game declares its sizes,
/// modes and backfill in `Game::MATCHMAKING` ([`Matchmaking`]); these override the rest
/// (skill windows, timeouts) per game. docs/MATCHMAKER.md lists the defaults.
pub mod matchmaker {
    pub use pylon_sync::matchmaker::{
        DEFAULT_FILL_TIMEOUT, DEFAULT_SKILL_START, DEFAULT_SKILL_UNBOUNDED_AFTER,
        DEFAULT_SKILL_WIDEN_PER_SEC, DEFAULT_TICKET_TIMEOUT, GameRules, SkillWindow,
    };
}

/// Testing a game without sockets: [`Shard`] can be stepped by hand, and a
/// [`testing::Stepper`] drives the real scheduler on a [`testing::ManualClock`] (time moves
/// only when the test moves it).
pub mod testing {
    pub use pylon_tick::{ManualClock, Stepper, TickConfig};
}

/// What a game file usually imports: bevy's ECS prelude and pylon's game types.
pub mod prelude {
    pub use bevy_ecs::prelude::*;
    pub use pylon_shard::game::Matchmaking;
    pub use pylon_shard::rng::ShardRng;
    pub use pylon_shard::{Auth, Game, JoinRejected, MatchClock, ShardLimits, Subscriber};
}

/// The game authoring guide, compiled: every Rust block of `docs/GAMES.md` runs as a
/// doctest of this crate.
#[cfg(doctest)]
#[doc = include_str!("../docs/GAMES.md")]
pub struct GamesGuide;
