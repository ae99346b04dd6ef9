//! pylon-sync: the entity change log, the in-process fan-out hub and the `ClusterBus`
//! (noop, or Redis pub/sub between regional processes).
//!
//! Must never: depend on HTTP types; transports live in `pylon-api`.
//!
//! Status: reserved for the storage and entity API issue. The crate exists so the
//! workspace has its final shape and the dependency rule can be checked from day one.
