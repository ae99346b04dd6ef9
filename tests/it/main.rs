//! End-to-end tests of the `pylon` workspace. One binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]

mod cli;
mod hostile;
mod server;
mod support;
mod tidy;
