//! pylon-api: the async I/O edge of pylon (axum routers, shard sockets, SSE, HTTP API).
//!
//! Owns: everything that speaks HTTP, WebSocket or SSE. It talks to tick threads only
//! through `pylon_tick` handles (bounded commands in, mailboxes out), and to storage
//! through `pylon_storage`.
//!
//! Must never: block a tick thread, or hold a lock across an `.await` on a shard path.
//!
//! Layout:
//! - [`routes`]: the four routers; [`state`]: [`AppState`]; [`server`]: listeners, the
//!   accept loop, graceful shutdown.
//! - Shard transports: [`shard_ws`] (the shard socket), [`shard_sse`] (its SSE fallback),
//!   both through [`subscription`] (prepare, join, leave); [`shard_http`] (list, info,
//!   create, input, stop, replay); [`matches`] (match id -> tick-pool handle, creation
//!   quotas); [`persister`] (saved matches and results).
//! - Socket rules for every WebSocket: [`socket`] (bounded sends, pings, idle, close
//!   handshake) and [`close`] (every close code with its fixed reason).
//! - Entities: [`entities`] (CRUD, cursors, transactions), [`policies`] (the caller as
//!   policies see it), [`feeds`] (pull, sync WebSocket and SSE over `pylon_sync::Feeds`,
//!   presence frames on the sync socket).
//! - Matchmaking: [`matchmaker`] (the ticket routes and their SSE stream) over
//!   [`matchmaking`] (the service: rules from the registry, the matcher, matches made
//!   before their assignments commit, pushes, backfill slots, metrics).
//! - The fleet: [`cluster`] (connecting the cluster bus, the relay and receiver tasks,
//!   readiness and metrics of the bus), [`regions`] (`GET /api/regions`, the 307 of every
//!   match route to the owning region), [`rooms`] (presence rooms over HTTP).
//! - Auth and limits: [`auth`] (bearer tokens, guest sessions, logout), [`sessions_live`]
//!   (connections ended by logout and expiry), [`limits`] (per-address caps, rates),
//!   [`body`] (the body deadline), [`query`] (numeric query parameters), [`extract`]
//!   (body extractors with the JSON error shape); docs/SECURITY.md lists every limit.
//! - Errors and ops: [`error`] (the only producer of the JSON error shape, [`ErrorCode`]),
//!   [`ops`] (health, readiness), [`metrics`] (Prometheus text), [`config`].
//! - Pages: [`web`] (the demo, the dashboard and the dev start page, embedded).

pub mod auth;
pub mod body;
pub mod close;
pub mod cluster;
pub mod config;
pub mod entities;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod limits;
pub mod lobby;
pub mod matches;
pub mod matchmaker;
pub mod matchmaking;
pub mod metrics;
pub mod ops;
pub mod persister;
pub mod policies;
pub mod query;
pub mod regions;
pub mod rooms;
pub mod routes;
pub mod server;
pub mod sessions_live;
pub mod shard_http;
pub mod shard_sse;
pub mod shard_ws;
pub mod socket;
pub(crate) mod socket_groups;
pub mod state;
pub mod subscription;
pub mod web;

pub use config::{ApiConfig, Limits, Regions};
pub use error::{ApiError, ErrorCode};
pub use matches::Matches;
pub use matchmaking::{Matchmaking, MatchmakingConfig};
pub use metrics::ApiMetrics;
pub use policies::Policies;
pub use routes::{events_router, main_router, shard_router, sync_router};
pub use server::{Listeners, Server};
pub use state::AppState;
pub(crate) use state::shutting_down;
