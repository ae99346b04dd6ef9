//! The HTTP error shape (docs/PROTOCOL.md, "Errors"):
//! `{"error":{"code":"SHARD_NOT_FOUND","message":"…","hint"?:"…"}}` with an UPPER_SNAKE
//! code. [`ApiError`] is the only producer of that shape; store errors become it through
//! `From`. Socket close frames are [`crate::close::Close`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pylon_storage::entity::{EntityError, IndexedError};
use serde::Serialize;
use serde_json::{Value, json};

/// Every error code the HTTP API answers with, rendered UPPER_SNAKE on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A party member already has an open matchmaker ticket (409; `ticket_id` names it).
    AlreadyQueued,
    /// The ticket is matched: it can no longer be cancelled (409).
    AlreadyMatched,
    /// No valid session or admin token (401).
    AuthRequired,
    /// A malformed request (400).
    BadRequest,
    /// A ticket's party: empty, a member twice, larger than the match, or a member who
    /// has no live session (400; `user` names the member).
    InvalidParty,
    /// A unique field or id already exists (409).
    Conflict,
    /// The server runs without an entity store (503).
    EntitiesUnavailable,
    /// The manifest declares no such entity (404).
    EntityNotFound,
    /// The caller may not do this (403).
    Forbidden,
    /// Request headers over the limit (431).
    HeadersTooLarge,
    /// The shard refused an HTTP input; `reason` says why.
    InputRejected,
    /// A server fault; details are in the server log (500).
    Internal,
    /// A field value does not fit its type (400).
    InvalidField,
    /// A match id with characters outside the allowed set (400).
    InvalidId,
    /// A body that is not the JSON the route takes (400).
    InvalidJson,
    /// Match parameters the game refuses (400).
    InvalidParams,
    /// A body without a length (411).
    LengthRequired,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// No acceptable representation (406).
    NotAcceptable,
    /// No such row or route (404).
    NotFound,
    /// Not implemented (501).
    NotImplemented,
    /// A readiness check failed (503 on /readyz).
    NotReady,
    /// A tick thread's queue is full, or an answer was late (503).
    Overloaded,
    /// A body over `PYLON_MAX_BODY_BYTES` (413).
    PayloadTooLarge,
    /// A policy refused the write (403); the hint names the rule.
    PolicyDenied,
    /// A list that would check too many rows one by one (400).
    QueryTooBroad,
    /// Over a rate limit (429, with `Retry-After`).
    RateLimited,
    /// No replay stored for the match (404).
    ReplayNotFound,
    /// A presence room or topic limit (rooms per process, members per room, rooms per
    /// user or socket, sockets per room) was reached (429; an error frame on sockets).
    RoomLimitReached,
    /// The body did not arrive within `PYLON_BODY_TIMEOUT_SECS` (408).
    RequestTimeout,
    /// The change log no longer holds the cursor (410).
    ResyncRequired,
    /// The session was logged out or expired (feed streams).
    SessionEnded,
    /// A match with the chosen id exists (409).
    ShardExists,
    /// No such match here (404).
    ShardNotFound,
    /// The match is full, stopped or finished (503).
    ShardUnavailable,
    /// An upstream timed out (504).
    Timeout,
    /// Over the per-address connection or socket cap (429).
    TooManyConnections,
    /// Over the running-matches caps (429).
    TooManyMatches,
    /// The game does not list its matches (400 on join-or-create).
    GameNotListed,
    /// The matchmaker ticket expired before a match was found (410).
    TicketExpired,
    /// The matchmaker ticket was cancelled (410).
    TicketCancelled,
    /// No matchmaker ticket with that id (404).
    TicketNotFound,
    /// Temporarily unavailable (503).
    Unavailable,
    /// The entity has no such field (400).
    UnknownField,
    /// No game of that name is registered, or it is not matchmade (400).
    UnknownGame,
    /// The game has no such mode (400).
    UnknownMode,
    /// No region of that name is configured (400).
    UnknownRegion,
    /// Unprocessable (422).
    UnprocessableEntity,
    /// Unsupported media type (415).
    UnsupportedMediaType,
    /// This route speaks WebSocket (426).
    UpgradeRequired,
    /// A plain request to a WebSocket route.
    WebsocketRequired,
}

impl ErrorCode {
    /// The code as clients see it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyMatched => "ALREADY_MATCHED",
            Self::AlreadyQueued => "ALREADY_QUEUED",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::BadRequest => "BAD_REQUEST",
            Self::Conflict => "CONFLICT",
            Self::EntitiesUnavailable => "ENTITIES_UNAVAILABLE",
            Self::EntityNotFound => "ENTITY_NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::GameNotListed => "GAME_NOT_LISTED",
            Self::HeadersTooLarge => "HEADERS_TOO_LARGE",
            Self::InputRejected => "INPUT_REJECTED",
            Self::InvalidParty => "INVALID_PARTY",
            Self::Internal => "INTERNAL",
            Self::InvalidField => "INVALID_FIELD",
            Self::InvalidId => "INVALID_ID",
            Self::InvalidJson => "INVALID_JSON",
            Self::InvalidParams => "INVALID_PARAMS",
            Self::LengthRequired => "LENGTH_REQUIRED",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::NotAcceptable => "NOT_ACCEPTABLE",
            Self::NotFound => "NOT_FOUND",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::NotReady => "NOT_READY",
            Self::Overloaded => "OVERLOADED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::PolicyDenied => "POLICY_DENIED",
            Self::QueryTooBroad => "QUERY_TOO_BROAD",
            Self::RateLimited => "RATE_LIMITED",
            Self::ReplayNotFound => "REPLAY_NOT_FOUND",
            Self::RoomLimitReached => "ROOM_LIMIT_REACHED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::ResyncRequired => "RESYNC_REQUIRED",
            Self::SessionEnded => "SESSION_ENDED",
            Self::ShardExists => "SHARD_EXISTS",
            Self::ShardNotFound => "SHARD_NOT_FOUND",
            Self::ShardUnavailable => "SHARD_UNAVAILABLE",
            Self::TicketCancelled => "TICKET_CANCELLED",
            Self::TicketExpired => "TICKET_EXPIRED",
            Self::TicketNotFound => "TICKET_NOT_FOUND",
            Self::Timeout => "TIMEOUT",
            Self::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Self::TooManyMatches => "TOO_MANY_MATCHES",
            Self::Unavailable => "UNAVAILABLE",
            Self::UnknownField => "UNKNOWN_FIELD",
            Self::UnknownGame => "UNKNOWN_GAME",
            Self::UnknownMode => "UNKNOWN_MODE",
            Self::UnknownRegion => "UNKNOWN_REGION",
            Self::UnprocessableEntity => "UNPROCESSABLE_ENTITY",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::UpgradeRequired => "UPGRADE_REQUIRED",
            Self::WebsocketRequired => "WEBSOCKET_REQUIRED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable UPPER_SNAKE code clients switch on.
    pub code: ErrorCode,
    /// What went wrong, for a human.
    pub message: String,
    /// What to do about it, when we know.
    pub hint: Option<String>,
    /// Extra keys of the error object (`field`, `oldest_seq`, `operation`).
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(flatten)]
    details: &'a serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
            details: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// The error for a bare `status` (what the JSON-shape middleware turns a plain-text
    /// error into): the code is the status's name in UPPER_SNAKE (`PAYLOAD_TOO_LARGE`).
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::AuthRequired,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
            StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::UnprocessableEntity,
            StatusCode::UPGRADE_REQUIRED => ErrorCode::UpgradeRequired,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
            StatusCode::NOT_IMPLEMENTED => ErrorCode::NotImplemented,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => ErrorCode::Timeout,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        };
        Self::new(status, code, message)
    }

    /// 429 with `code` (`RATE_LIMITED`, `TOO_MANY_MATCHES`), a hint and, when a wait
    /// helps, `Retry-After`.
    pub fn too_many(
        code: ErrorCode,
        message: impl Into<String>,
        hint: impl Into<String>,
        retry_after: Option<u64>,
    ) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_hint(hint);
        e.retry_after = retry_after;
        e
    }

    /// 408 `REQUEST_TIMEOUT`: the request body did not arrive in time.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the request body did not arrive within {} s", limit.as_secs()),
        )
        .with_hint("send the whole body at once; the connection is closed")
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a key to the error object.
    #[must_use]
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// 401 `AUTH_REQUIRED`.
    pub fn auth_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::AuthRequired,
            "a valid session or admin token is required",
        )
        .with_hint("send Authorization: Bearer <token>; POST /api/auth/guest gives a guest token")
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 404 `SHARD_NOT_FOUND`.
    pub fn shard_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ShardNotFound,
            format!("shard \"{id}\" not found"),
        )
    }

    /// 400 `INVALID_JSON`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, message)
    }

    /// 503 `OVERLOADED`: a tick thread's command queue is full.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the server is overloaded",
        )
        .with_hint("retry after a short delay")
    }

    /// 500 `INTERNAL`, logging the cause (never sent to the client).
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal server error")
    }
}

impl From<axum::extract::ws::rejection::WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Self {
        Self::new(
            rejection.status(),
            ErrorCode::WebsocketRequired,
            format!("this endpoint speaks WebSocket: {rejection}"),
        )
    }
}

impl From<EntityError> for ApiError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::UnknownEntity(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::EntityNotFound,
                format!("unknown entity {name:?}"),
            ),
            e @ EntityError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, e.to_string())
            }
            EntityError::InvalidField { entity, field, reason } => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidField,
                format!("{entity}.{field}: {reason}"),
            )
            .with_detail("field", Value::String(field)),
            EntityError::UnknownField { entity, field } => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownField,
                format!("{entity} has no field {field:?}"),
            )
            .with_detail("field", Value::String(field)),
            e @ EntityError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string())
            }
            EntityError::PolicyDenied { entity, kind, hint } => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PolicyDenied,
                format!("{kind} on {entity} denied by policy"),
            )
            .with_hint(hint),
            EntityError::BadRequest(msg) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, msg)
            }
            EntityError::ResyncRequired { oldest_seq, latest_seq } => ApiError::new(
                StatusCode::GONE,
                ErrorCode::ResyncRequired,
                format!(
                    "the change log holds seq {oldest_seq} to {latest_seq}; reload the entity lists"
                ),
            )
            .with_detail("oldest_seq", json!(oldest_seq)),
            other => ApiError::internal(&other),
        }
    }
}

impl From<IndexedError> for ApiError {
    /// The failing operation's error, with its index as `operation`.
    fn from(e: IndexedError) -> Self {
        let index = e.index;
        Self::from(e.error).with_detail("operation", json!(index))
    }
}

impl ApiError {
    fn body(&self) -> Body<'_> {
        Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                hint: self.hint.as_deref(),
                details: &self.details,
            },
        }
    }

    /// The JSON body, for the rare answer written outside axum (a connection refused
    /// before HTTP is read).
    #[must_use]
    pub fn body_json(&self) -> String {
        serde_json::to_string(&self.body()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
