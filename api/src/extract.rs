//! Request extractors with the JSON error shape: [`BodyBytes`] (a whole body under the
//! size limit and the body deadline) and [`JsonBody`] (that body parsed as JSON).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// A request body read whole, with our error shape: 413 `PAYLOAD_TOO_LARGE` over the body
/// limit, 408 `REQUEST_TIMEOUT` when it does not arrive within the body deadline
/// ([`crate::body::TimedBody`]; the connection is then closed), 400 otherwise.
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(BodyBytes).map_err(|rejection| {
            if crate::body::is_body_timeout(&rejection) {
                let limit = crate::body::timeout_of(&rejection).unwrap_or_default();
                ApiError::body_timeout(limit)
            } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "request body too large",
                )
                .with_hint("PYLON_MAX_BODY_BYTES sets the limit")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, rejection.body_text())
            }
        })
    }
}

/// A JSON body with our error shape: the errors of [`BodyBytes`], and 400 `INVALID_JSON`
/// when it does not parse.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_json(format!("invalid JSON body: {e}")))
    }
}
