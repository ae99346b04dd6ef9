//! pylon-loadtest binary (stub).
fn main() {}
