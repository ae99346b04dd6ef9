//! [`AppState`]: everything a request handler or socket task can reach, and the
//! shutdown signal they select on.

use std::sync::Arc;
use std::time::Instant;

use pylon_storage::Sessions;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::{ApiConfig, ApiMetrics, Matches, limits, sessions_live};

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<ApiConfig>,
    /// The matches of this process.
    pub matches: Arc<Matches>,
    /// The session store.
    pub sessions: Sessions,
    /// The entity store, policies and change hub (`None`: entity API answers 503).
    pub entities: Option<Arc<pylon_sync::Feeds>>,
    /// I/O-side counters.
    pub metrics: Arc<ApiMetrics>,
    /// Open sockets per client address.
    pub conns: Arc<limits::ConnLimiter>,
    /// Open TCP connections per client address (every port).
    pub http_conns: Arc<limits::ConnLimiter>,
    /// Keyed rate limits (guest sessions, match creations, HTTP inputs).
    pub rates: Arc<limits::Rates>,
    /// Live connections by session, ended by logout and expiry.
    pub live: Arc<sessions_live::LiveSessions>,
    /// The cluster bus (the no-op bus of a lone process unless the binary gave one).
    pub bus: pylon_sync::ClusterBus,
    /// Presence: the sync sockets' rooms and topics, the HTTP rooms.
    pub presence: Arc<pylon_sync::Presence>,
    /// The matchmaker service (`None`: its routes answer 404, as on a server without one).
    pub matchmaking: Option<Arc<crate::matchmaking::Matchmaking>>,
    /// Becomes `true` when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
    /// Socket tasks (shutdown waits for them to send their close frames).
    pub tasks: TaskTracker,
    /// The tasks that run subscribed shard sockets (`crate::socket_groups`).
    pub(crate) socket_groups: Arc<crate::socket_groups::SocketGroups>,
    /// Process start.
    pub started: Instant,
    /// The binary's version (`/health`).
    pub version: &'static str,
}

/// Resolves once shutdown has started (the guard of `wait_for` is dropped inside, so the
/// future stays `Send`).
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}
