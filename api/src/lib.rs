//! pylon-api: the async I/O edge of pylon (axum routers, shard sockets, SSE, HTTP API).
//!
//! Owns: everything that speaks HTTP, WebSocket or SSE. It talks to tick threads only
//! through `pylon_tick` handles (bounded commands in, mailboxes out), and to storage
//! through `pylon_storage`.
//!
//! Must never: block a tick thread, or hold a lock across an `.await` on a shard path.
//!
//! Layout:
//! - [`shard_ws`]: the shard socket (compat binary/text frames, MessagePack and delta
//!   modes, auth paths, close codes, limits).
//! - [`shard_http`]: shard list/info/create/input/stop and the SSE fallback.
//! - [`auth`]: bearer tokens (header, `bearer.` subprotocol, `?token=`), admin token,
//!   guest sessions.
//! - [`entities`], [`policies`]: the entity API (CRUD, cursors, transactions) under the
//!   manifest's policies; [`feeds`]: change pull, sync WebSocket, SSE.
//! - [`ops`], [`metrics`]: health, readiness, Prometheus text.
//! - [`server`]: listeners, the accept loop, graceful shutdown.
//! - [`limits`], [`body`], [`query`], [`sessions_live`]: the limits on every door
//!   (connections per address, rates, body deadline, query numbers, live sessions ended
//!   by logout and expiry); docs/SECURITY.md lists them.

pub mod auth;
pub mod body;
pub mod close;
pub mod config;
pub mod entities;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod limits;
pub mod matches;
pub mod metrics;
pub mod ops;
pub mod persister;
pub mod policies;
pub mod query;
pub mod server;
pub mod sessions_live;
pub mod shard_http;
pub mod shard_sse;
pub mod shard_ws;
pub mod socket;
pub mod subscription;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use pylon_storage::Sessions;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use config::{ApiConfig, Limits, Regions};
pub use error::ApiError;
pub use matches::Matches;
pub use metrics::ApiMetrics;
pub use policies::Policies;
pub use server::{Listeners, Server};

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
    /// Becomes `true` when shutdown starts.
    pub shutdown: watch::Receiver<bool>,
    /// Socket tasks (shutdown waits for them to send their close frames).
    pub tasks: TaskTracker,
    /// Process start.
    pub started: Instant,
    /// The binary's version (`/health`).
    pub version: &'static str,
}

/// The main port's router: HTTP API, ops endpoints and `/shard`.
pub fn main_router(state: AppState) -> Router {
    let cors = cors_layer(&state.config);
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/health", get(ops::health))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/auth/guest", post(auth::guest))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/shards", get(shard_http::list).post(shard_http::create))
        .route("/api/shards/{id}", get(shard_http::info).delete(shard_http::stop))
        .route("/api/shards/{id}/input", post(shard_http::input))
        .route("/api/shards/{id}/connect", get(shard_sse::connect))
        .route("/api/shards/{id}/replay", get(shard_http::replay))
        .route("/shard", get(shard_ws::handler))
        .route("/api/entities/{entity}", get(entities::list).post(entities::create))
        .route("/api/entities/{entity}/cursor", get(entities::cursor))
        .route(
            "/api/entities/{entity}/{id}",
            get(entities::get_one).patch(entities::update).delete(entities::delete),
        )
        .route("/api/transact", post(entities::transact))
        .route("/api/sync/pull", get(feeds::pull))
        .route("/ws", get(feeds::ws))
        .route("/events", get(feeds::sse))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(cors)
        .with_state(state)
}

/// Every error answered in the JSON error shape: a 4xx or 5xx whose body is not JSON (a
/// rejection produced by axum or a layer, never by our handlers) is rewritten into
/// `{"error":{"code","message"}}` with the code named after the status, keeping
/// `Retry-After` and `Allow`. A 408 (a body that did not arrive in time) also closes the
/// connection: what is left of that body is never read.
async fn json_errors(req: Request, next: Next) -> Response {
    use axum::http::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
    use axum::response::IntoResponse;
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut response = if is_json {
        response
    } else {
        let (parts, body) = response.into_parts();
        let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        };
        let mut rewritten = ApiError::from_status(status, message).into_response();
        for name in [RETRY_AFTER, ALLOW] {
            if let Some(value) = parts.headers.get(&name) {
                rewritten.headers_mut().insert(name, value.clone());
            }
        }
        rewritten
    };
    if status == StatusCode::REQUEST_TIMEOUT {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The shard port's router: the socket handler on every path (stock clients connect to
/// `/?shard=…`), plus `/health` for probes.
pub fn shard_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .fallback(get(shard_ws::handler))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this route",
    )
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    state.metrics.count_http(&route, response.status().as_u16());
    response
}

fn cors_layer(config: &ApiConfig) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ]);
    if config.dev_mode
        && (config.cors_origins.is_empty() || config.cors_origins.iter().any(|o| o == "*"))
    {
        return base.allow_origin(AllowOrigin::mirror_request());
    }
    let origins: Vec<HeaderValue> =
        config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    base.allow_origin(origins)
}

/// The entity-sync socket port (`+1`): the sync WebSocket on every path.
pub fn sync_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .fallback(get(feeds::ws))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// The SSE port (`+2`): the change stream on every path.
pub fn events_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .fallback(get(feeds::sse))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Resolves once shutdown has started (the guard of `wait_for` is dropped inside, so the
/// future stays `Send`).
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}
