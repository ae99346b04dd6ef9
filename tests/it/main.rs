//! End-to-end tests of the `pylon` workspace. One binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]
#![allow(clippy::too_many_lines, reason = "end-to-end scenarios read top to bottom")]

mod backup;
mod cli;
mod delta_v2;
mod entities;
mod fleet;
mod hostile;
mod limits;
mod lobby;
mod matchmaker;
mod persist;
mod policy;
mod postgres;
mod server;
mod sockets;
mod support;
mod tidy;
