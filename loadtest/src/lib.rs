//! pylon-loadtest: load generators for pylon. Socket scenarios drive a running server
//! like real clients: [`arena`] (bots in matches, input -> ack latency; with
//! `--matchmaker` the bots get their matches from tickets, [`matchmade`]), [`entities`]
//! (a CRUD mix), [`fanout`] (one writer, many change-feed subscribers). [`density`] runs
//! the simulation core in-process (shard + tick, no sockets). [`report`] holds the HDR
//! latency summaries, `--json` figures and `--assert` checks.
//!
//! Depends on `pylon-shard` and `pylon-tick` (density only); never on the server crates,
//! so it measures what it drives.

pub mod arena;
pub mod density;
pub mod entities;
pub mod fanout;
pub mod matchmade;
pub mod procfs;
pub mod report;
