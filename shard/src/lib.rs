//! pylon-shard: one match as a pure, synchronous state machine over a bevy_ecs `World`.
//!
//! Owns: the [`Game`] trait, the match runtime ([`Shard`], [`DynShard`]), inputs and acks,
//! snapshots and area of interest ([`aoi`]), replay ([`replay`]), the wire codec
//! ([`codec`]) and the built-in games ([`games`]).
//!
//! Must never: do I/O, read a clock, sleep, spawn threads or depend on tokio, axum, sqlx,
//! rusqlite or redis. Time is `tick * dt`; randomness is the seeded [`rng::ShardRng`]
//! resource. `shard/clippy.toml` enforces this for game code, and a tidy test enforces the
//! dependency rule.
//!
//! # Layout
//! - [`game`]: the `Game` trait and what games see (`Subscriber`, `MatchClock`, limits).
//! - [`runtime`]: `Shard<G>`: `handle_join`/`handle_leave`/`handle_input` in, `step` (or
//!   `step_with`, which takes the raw inputs its caller queued) runs one tick,
//!   `take_snapshots` (the tick's one frame, each subscriber's ack beside it) and
//!   `drain_outgoing` out.
//! - [`outgoing`]: the frames a subscriber receives.
//! - [`codec`]: the wire protocol (compat JSON, MessagePack, deltas) and input decoding.
//! - [`replay`]: replay logs and bit-for-bit re-simulation.
//! - [`aoi`], [`rng`], [`hash`]: helpers games use.
//! - [`games`]: `arena`, `tictactoe` and the [`GameRegistry`].
//!
//! # Writing a game
//! A game is one type implementing [`Game`]. Its state lives in the match world as
//! components and resources; `setup` registers them and adds systems to the schedule.
//! Inputs arrive decoded into `Game::Input` and are applied in arrival order at the start
//! of the next tick (`apply_input`), then the schedule runs once, then every subscriber
//! gets a snapshot (`snapshot`, or its own view from `snapshot_for`). A game whose snapshot
//! owns vectors can also implement `snapshot_into`, which refills an old snapshot's
//! buffers in place, so that a warm tick allocates nothing.
//!
//! ```
//! use bevy_ecs::prelude::*;
//! use pylon_shard::{Auth, DynShard, Game, JoinRejected, MatchConfig, Shard, Subscriber};
//!
//! /// Everyone pushes one shared counter; the match ends at 3.
//! struct Counter;
//!
//! #[derive(Resource, Default)]
//! struct Total(u32);
//!
//! impl Game for Counter {
//!     type Params = ();
//!     type Input = u32;
//!     type Snapshot = u32;
//!     type Outcome = u32;
//!     const NAME: &'static str = "counter";
//!
//!     fn tick_rate_hz(_: &()) -> u32 { 10 }
//!     fn setup(_: &(), world: &mut World, _schedule: &mut Schedule) {
//!         world.init_resource::<Total>();
//!     }
//!     fn handle_join(_: &mut World, _: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
//!         Ok(None)
//!     }
//!     fn apply_input(world: &mut World, _: &Subscriber, add: u32) {
//!         world.resource_mut::<Total>().0 += add.min(1);
//!     }
//!     fn snapshot(world: &mut World) -> u32 { world.resource::<Total>().0 }
//!     fn outcome(world: &mut World) -> Option<u32> {
//!         let total = world.resource::<Total>().0;
//!         (total >= 3).then_some(total)
//!     }
//! }
//!
//! let mut shard = Shard::<Counter>::new(&MatchConfig::default()).unwrap();
//! let auth = Auth { user_id: "ada".into(), is_admin: false };
//! let key = shard.handle_join("ada".into(), &auth).unwrap().key;
//! for seq in 1..=3 {
//!     shard.handle_typed_input(key, Some(seq), 1, 0).unwrap();
//!     shard.step();
//! }
//! assert!(shard.is_finished());
//! ```
//!
//! A complete real-time example with area of interest is `shard/examples/tag.rs`.

pub mod aoi;
pub mod codec;
pub mod error;
pub mod game;
pub mod games;
pub mod hash;
pub mod outgoing;
pub mod replay;
pub mod replay_log;
pub mod rng;
pub mod runtime;

pub use codec::CodecError;
pub use error::ShardError;
pub use game::{Auth, Game, JoinRejected, MatchClock, ShardLimits, Subscriber, SubscriberKey};
pub use games::GameRegistry;
pub use outgoing::{MatchEnd, Outgoing, SnapshotFrame, StopReason};
pub use runtime::{
    DynShard, InputRejected, Joined, MatchConfig, QueuedInput, SavedMatch, Shard, StepReport,
};
