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

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable UPPER_SNAKE code clients switch on.
    pub code: &'static str,
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
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(flatten)]
    details: &'a serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::UNAUTHORIZED => "AUTH_REQUIRED",
            StatusCode::FORBIDDEN => "FORBIDDEN",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::NOT_ACCEPTABLE => "NOT_ACCEPTABLE",
            StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
            StatusCode::CONFLICT => "CONFLICT",
            StatusCode::LENGTH_REQUIRED => "LENGTH_REQUIRED",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE_ENTITY",
            StatusCode::UPGRADE_REQUIRED => "UPGRADE_REQUIRED",
            StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "HEADERS_TOO_LARGE",
            StatusCode::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
            StatusCode::GATEWAY_TIMEOUT => "TIMEOUT",
            s if s.is_server_error() => "INTERNAL",
            _ => "BAD_REQUEST",
        };
        Self::new(status, code, message)
    }

    /// 429 with `code` (`RATE_LIMITED`, `TOO_MANY_MATCHES`), a hint and, when a wait
    /// helps, `Retry-After`.
    pub fn too_many(
        code: &'static str,
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
            "REQUEST_TIMEOUT",
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
            "AUTH_REQUIRED",
            "a valid session or admin token is required",
        )
        .with_hint("send Authorization: Bearer <token>; POST /api/auth/guest gives a guest token")
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404 `SHARD_NOT_FOUND`.
    pub fn shard_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "SHARD_NOT_FOUND", format!("shard \"{id}\" not found"))
    }

    /// 400 `INVALID_JSON`.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_JSON", message)
    }

    /// 503 `OVERLOADED`: a tick thread's command queue is full.
    pub fn overloaded() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", "the server is overloaded")
            .with_hint("retry after a short delay")
    }

    /// 500 `INTERNAL`, logging the cause (never sent to the client).
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal server error")
    }
}

impl From<axum::extract::ws::rejection::WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Self {
        Self::new(
            rejection.status(),
            "WEBSOCKET_REQUIRED",
            format!("this endpoint speaks WebSocket: {rejection}"),
        )
    }
}

impl From<EntityError> for ApiError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::UnknownEntity(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "ENTITY_NOT_FOUND",
                format!("unknown entity {name:?}"),
            ),
            e @ EntityError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", e.to_string())
            }
            EntityError::InvalidField { entity, field, reason } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("{entity}.{field}: {reason}"),
            )
            .with_detail("field", Value::String(field)),
            EntityError::UnknownField { entity, field } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNKNOWN_FIELD",
                format!("{entity} has no field {field:?}"),
            )
            .with_detail("field", Value::String(field)),
            e @ EntityError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "CONFLICT", e.to_string())
            }
            EntityError::PolicyDenied { entity, kind, hint } => ApiError::new(
                StatusCode::FORBIDDEN,
                "POLICY_DENIED",
                format!("{kind} on {entity} denied by policy"),
            )
            .with_hint(hint),
            EntityError::BadRequest(msg) => {
                ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", msg)
            }
            EntityError::ResyncRequired { oldest_seq, latest_seq } => ApiError::new(
                StatusCode::GONE,
                "RESYNC_REQUIRED",
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                hint: self.hint.as_deref(),
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
