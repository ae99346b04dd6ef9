//! pylon binary (stub).
fn main() {}
