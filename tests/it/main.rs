//! End-to-end tests of the `pylon` workspace. One binary, a module per area.

mod tidy;
