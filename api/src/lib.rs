//! pylon-api: the async I/O edge of pylon (axum routers, shard sockets, SSE, HTTP API).
//!
//! Owns: everything that speaks HTTP, WebSocket or SSE. It talks to tick threads only
//! through `pylon_tick::TickPool` handles (bounded commands in, mailboxes out), and to
//! storage through `pylon_storage`.
//!
//! Must never: block a tick thread, or hold a lock across an `.await` on a shard path.
//!
//! Status: reserved. The server arrives with the server issue; until then this crate only
//! fixes its place in the dependency graph (`api -> tick, shard, storage, sync`).

pub use pylon_shard as shard;
pub use pylon_tick as tick;
