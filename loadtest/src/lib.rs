//! pylon-loadtest: load generators for pylon. Today: the in-process `density` benchmark of
//! the simulation core (shard + tick, no sockets). Socket bots and the arena, entities and
//! fanout scenarios arrive with the loadtest issue.
//!
//! Depends on `pylon-shard` (codec, games) and `pylon-tick` (the real tick threads, for
//! density); never on the server crates, so it measures what it drives.

pub mod density;
pub mod procfs;
