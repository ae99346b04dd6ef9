//! Who is calling: bearer tokens from the `Authorization` header, the `bearer.` WebSocket
//! subprotocol or the deprecated `?token=` query, resolved against the admin token
//! (constant-time) and the session store. Also the guest, logout and `me` endpoints.
//!
//! [`http_caller`], [`require_caller`] and [`resolve`] say who is calling;
//! [`http_session`] and [`resolve_session`] also say which session (its key and expiry),
//! for connections that must end with it (`crate::sessions_live`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use percent_encoding::percent_decode_str;
use pylon_shard::Auth;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{Refusal, addr_key};
use crate::metrics::Limit;
use crate::sessions_live::SessionRef;

/// The user id the admin token authenticates as.
pub const ADMIN_USER: &str = "admin";

/// Where a token came from (logged, and the subprotocol entry is echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …`.
    Header,
    /// `Sec-WebSocket-Protocol: bearer.<percent-encoded>`; holds the exact entry to echo.
    Subprotocol(String),
    /// `?token=` (deprecated).
    Query,
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
#[must_use]
pub fn header_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The first `bearer.` entry of `Sec-WebSocket-Protocol`: (exact entry, decoded token).
#[must_use]
pub fn subprotocol_token(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|entry| {
            let encoded = entry.strip_prefix("bearer.")?;
            let token = percent_decode_str(encoded).decode_utf8().ok()?.into_owned();
            (!token.is_empty()).then(|| (entry.to_owned(), token))
        })
}

/// The token a socket request carries, first found wins: header, subprotocol, query.
#[must_use]
pub fn socket_token(
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Option<(String, TokenSource)> {
    if let Some(token) = header_token(headers) {
        return Some((token, TokenSource::Header));
    }
    if let Some((entry, token)) = subprotocol_token(headers) {
        return Some((token, TokenSource::Subprotocol(entry)));
    }
    query_token.filter(|t| !t.is_empty()).map(|t| (t.to_owned(), TokenSource::Query))
}

/// The `Sec-WebSocket-Protocol` entry the handshake must echo, when the token came from
/// one (browsers drop a socket whose chosen subprotocol is not echoed).
#[must_use]
pub fn echo_entry(token: Option<&(String, TokenSource)>) -> Option<String> {
    match token {
        Some((_, TokenSource::Subprotocol(entry))) => Some(entry.clone()),
        _ => None,
    }
}

/// Why a token was not accepted.
#[derive(Debug)]
pub enum AuthFailure {
    /// Unknown, expired or revoked.
    Invalid,
    /// The session store failed.
    Store(String),
}

/// Whether `token` is the admin token (compared in constant time).
#[must_use]
pub fn is_admin_token(state: &AppState, token: &str) -> bool {
    state.config.admin_token.as_deref().is_some_and(|admin| {
        let same: bool = admin.as_bytes().ct_eq(token.as_bytes()).into();
        same
    })
}

/// A resolved token: the caller, and its session (`None` for the admin token, which has
/// no session and never expires).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Who is calling.
    pub auth: Auth,
    /// Which session, for connections that must end with it.
    pub session: Option<SessionRef>,
}

/// Resolves a token: the admin token (compared in constant time) or a live session.
///
/// # Errors
/// [`AuthFailure`].
pub async fn resolve(state: &AppState, token: &str) -> Result<Auth, AuthFailure> {
    resolve_session(state, token).await.map(|r| r.auth)
}

/// Like [`resolve`], also naming the session.
///
/// # Errors
/// [`AuthFailure`].
pub async fn resolve_session(state: &AppState, token: &str) -> Result<Resolved, AuthFailure> {
    if is_admin_token(state, token) {
        let auth = Auth { user_id: Arc::from(ADMIN_USER), is_admin: true };
        return Ok(Resolved { auth, session: None });
    }
    let key = pylon_storage::sessions::token_hash(token);
    let found = state
        .sessions
        .resolve(token, unix_now())
        .await
        .map_err(|e| AuthFailure::Store(e.to_string()))?;
    match found {
        Some(session) => Ok(Resolved {
            auth: Auth { user_id: Arc::from(session.user_id), is_admin: false },
            session: Some(SessionRef { key, expires_at: session.expires_at }),
        }),
        None => Err(AuthFailure::Invalid),
    }
}

/// The caller of an HTTP request from its `Authorization` header (or `?token=` where
/// EventSource cannot send headers). `Ok(None)`: no token at all.
///
/// # Errors
/// 401 for a token that resolves to nothing; 500 when the store fails.
pub async fn http_caller(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Option<Auth>, ApiError> {
    Ok(http_session(state, headers, query_token).await?.map(|r| r.auth))
}

/// Like [`http_caller`], also naming the session (streams that must end with it).
///
/// # Errors
/// 401 for a token that resolves to nothing; 500 when the store fails.
pub async fn http_session(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Option<Resolved>, ApiError> {
    let Some(token) = header_token(headers).or_else(|| query_token.map(str::to_owned)) else {
        return Ok(None);
    };
    match resolve_session(state, &token).await {
        Ok(resolved) => Ok(Some(resolved)),
        Err(AuthFailure::Invalid) => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            ErrorCode::AuthRequired,
            "the token is unknown or expired",
        )),
        Err(AuthFailure::Store(e)) => Err(ApiError::internal(&e)),
    }
}

/// Like [`http_caller`] but a missing token is 401.
///
/// # Errors
/// 401 without a valid token.
pub async fn require_caller(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Auth, ApiError> {
    http_caller(state, headers, query_token).await?.ok_or_else(ApiError::auth_required)
}

/// Like [`require_caller`] but only the admin token passes.
///
/// # Errors
/// 401 without a token, 403 for a non-admin.
pub async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<Auth, ApiError> {
    let auth = require_caller(state, headers, None).await?;
    if auth.is_admin {
        Ok(auth)
    } else {
        Err(ApiError::forbidden("this endpoint needs the admin token"))
    }
}

/// Seconds since the Unix epoch (session expiry is wall-clock by nature).
#[must_use]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Serialize)]
pub(crate) struct GuestReply {
    token: String,
    user_id: String,
    expires_at: i64,
}

/// `POST /api/auth/guest`: a new anonymous user and its session token. At most
/// `guests_per_minute_per_ip` per client address (429 `RATE_LIMITED` with `Retry-After`);
/// a request carrying the admin token (`Authorization: Bearer`) is exempt, for load tools
/// that sign in thousands of bots from one machine.
pub(crate) async fn guest(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<GuestReply>, ApiError> {
    let exempt = header_token(&headers).is_some_and(|t| is_admin_token(&state, &t));
    if !exempt && let Err(refusal) = state.rates.guests.check(addr_key(client.ip()), Instant::now())
    {
        let limit = state.config.limits.guests_per_minute_per_ip;
        let what =
            if matches!(refusal, Refusal::Crowded) { Limit::LimiterFull } else { Limit::Guests };
        state.metrics.count_refusal(what);
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!("too many guest sessions from this address (limit {limit} a minute)"),
            "reuse the guest token you have (it lasts a day); retry after the Retry-After seconds",
            Some(refusal.retry_after_secs()),
        ));
    }
    let ttl = i64::try_from(state.config.session_ttl.as_secs()).unwrap_or(i64::MAX);
    let new =
        state.sessions.create_guest(unix_now(), ttl).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(GuestReply {
        token: new.token,
        user_id: new.session.user_id,
        expires_at: new.session.expires_at,
    }))
}

#[derive(Serialize)]
pub(crate) struct LogoutReply {
    ok: bool,
}

/// `POST /api/auth/logout`: revokes the calling session and ends its live connections
/// (shard sockets and feed sockets close with 1008 "session ended", SSE streams end).
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<LogoutReply>, ApiError> {
    let token = header_token(&headers).ok_or_else(ApiError::auth_required)?;
    let key = pylon_storage::sessions::token_hash(&token);
    let revoked = state.sessions.revoke(&token).await.map_err(|e| ApiError::internal(&e))?;
    if !revoked {
        return Err(ApiError::auth_required());
    }
    if state.live.end(&key, unix_now()) {
        state.metrics.sessions_ended[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // The session's sockets on other processes end too (the bus only queues this).
    crate::cluster::session_ended(&state, &key);
    Ok(Json(LogoutReply { ok: true }))
}

#[derive(Serialize)]
pub(crate) struct MeReply {
    user_id: String,
    is_admin: bool,
}

/// `GET /api/auth/me`: who the token authenticates.
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<MeReply>, ApiError> {
    let auth = require_caller(&state, &headers, None).await?;
    Ok(Json(MeReply { user_id: auth.user_id.to_string(), is_admin: auth.is_admin }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Header beats subprotocol beats query; the subprotocol entry is kept verbatim for
    /// the echo and its token percent-decoded.
    #[test]
    fn token_sources_in_order() {
        let mut h = HeaderMap::new();
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("json, bearer.a%20b%2Fc, bearer.x"),
        );
        let (token, source) = socket_token(&h, Some("q")).unwrap();
        assert_eq!(token, "a b/c");
        assert_eq!(source, TokenSource::Subprotocol("bearer.a%20b%2Fc".into()));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer hdr"));
        assert_eq!(socket_token(&h, Some("q")).unwrap(), ("hdr".into(), TokenSource::Header));
        let empty = HeaderMap::new();
        assert_eq!(socket_token(&empty, Some("q")).unwrap(), ("q".into(), TokenSource::Query));
        assert!(socket_token(&empty, Some("")).is_none());
        let mut basic = HeaderMap::new();
        basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(header_token(&basic).is_none());
    }
}
