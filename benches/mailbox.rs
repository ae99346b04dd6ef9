//! stub

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests and benches fail loudly")]
fn main() {}
