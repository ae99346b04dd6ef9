//! The four routers: the main port (HTTP API, ops endpoints, `/shard`, `/ws`,
//! `/events`, the pages of [`crate::web`]), the shard socket port (`+3`), the sync socket
//! port (`+1`) and the SSE port (`+2`), with the layers every route shares (CORS, body
//! limit, request counting, the JSON error shape).

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::error::{ApiError, ErrorCode};
use crate::{
    ApiConfig, AppState, auth, entities, feeds, lobby, matchmaker, ops, regions, rooms, shard_http,
    shard_sse, shard_ws, web,
};

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
        .route("/api/shards", get(lobby::list).post(shard_http::create))
        .route("/api/shards/join-or-create", post(lobby::join_or_create))
        .route("/api/shards/{id}", get(shard_http::info).delete(shard_http::stop))
        .route("/api/shards/{id}/input", post(shard_http::input))
        .route("/api/shards/{id}/connect", get(shard_sse::connect))
        .route("/api/shards/{id}/replay", get(shard_http::replay))
        .route("/shard", get(shard_ws::handler))
        .route("/api/regions", get(regions::list))
        .route("/api/matchmaker/tickets", post(matchmaker::create))
        .route("/api/matchmaker/tickets/{id}", get(matchmaker::status).delete(matchmaker::cancel))
        .route("/api/matchmaker/tickets/{id}/events", get(matchmaker::events))
        .route("/api/rooms", get(rooms::list))
        .route("/api/rooms/join", post(rooms::join))
        .route("/api/rooms/leave", post(rooms::leave))
        .route("/api/rooms/presence", post(rooms::presence))
        .route("/api/rooms/broadcast", post(rooms::broadcast))
        .route("/api/rooms/{room}", get(rooms::members))
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
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), regions::match_owner))
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
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
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
        .fallback(get(feeds::ws_sync_port))
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
