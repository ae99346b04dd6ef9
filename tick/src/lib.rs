//! pylon-tick (stub while the crate is written).
