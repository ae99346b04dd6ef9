//! The shard HTTP API (DESIGN.md section 4): list (admin), info, create, the input
//! fallback, stop, and the SSE snapshot stream fallback.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use futures_util::Stream;
use pylon_shard::codec::{FrameEncoder, InputPayload, WireMode};
use pylon_shard::{JoinRejected, Outgoing, StopReason};
use pylon_tick::{InputFrom, Mailbox, SendError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::AppState;
use crate::auth;
use crate::error::ApiError;
use crate::matches::{CreateError, MatchEntry, MatchInfo};

/// A JSON body with our error shape: 413 `PAYLOAD_TOO_LARGE` over the body limit, 400
/// `INVALID_JSON` when it does not parse.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "request body too large",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_json(format!("invalid JSON body: {e}")))
    }
}

/// 307 to the region that owns `id`, when it is another one.
fn elsewhere(state: &AppState, id: &str, path: &str) -> Option<Response> {
    let base = state.config.regions.elsewhere(id)?;
    Some(Redirect::temporary(&format!("{}{path}", base.trim_end_matches('/'))).into_response())
}

fn find(state: &AppState, id: &str) -> Result<MatchEntry, ApiError> {
    state.matches.get(id).ok_or_else(|| ApiError::shard_not_found(id))
}

/// `GET /api/shards` (admin): every match.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<MatchInfo>>, ApiError> {
    auth::require_admin(&state, &headers).await?;
    Ok(Json(state.matches.list().iter().map(MatchEntry::info).collect()))
}

/// `GET /api/shards/:id`.
pub(crate) async fn info(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(redirect) = elsewhere(&state, &id, &format!("/api/shards/{id}")) {
        return redirect;
    }
    match find(&state, &id) {
        Ok(entry) => Json(entry.info()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Body of `POST /api/shards`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    game: String,
    #[serde(default)]
    params: serde_json::Value,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    record_replay: bool,
}

/// `POST /api/shards`: create a match of a registered game (any session; a chosen `id`
/// or `seed` needs the admin token).
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<MatchInfo>), ApiError> {
    let caller = auth::require_caller(&state, &headers, None).await?;
    if (body.id.is_some() || body.seed.is_some() || body.record_replay) && !caller.is_admin {
        return Err(ApiError::forbidden(
            "choosing a match id or seed, or recording a replay, needs the admin token",
        ));
    }
    let created = state.matches.create(
        &body.game,
        body.params,
        body.id.as_deref(),
        body.seed,
        body.record_replay,
    );
    match created {
        Ok(entry) => {
            tracing::info!(shard = %entry.id, game = %body.game, by = %caller.user_id, "match created");
            Ok((StatusCode::CREATED, Json(entry.info())))
        }
        Err(CreateError::Game(pylon_shard::ShardError::UnknownGame(name))) => {
            let known: Vec<&str> = state.matches.game_names().collect();
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNKNOWN_GAME",
                format!("no game named {name:?}"),
            )
            .with_hint(format!("registered games: {}", known.join(", "))))
        }
        Err(CreateError::Game(e)) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMS", e.to_string()))
        }
        Err(CreateError::Exists(id)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "SHARD_EXISTS",
            format!("a match with id {id:?} already exists"),
        )),
        Err(e @ CreateError::BadId) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ID", e.to_string()))
        }
        Err(CreateError::Send(SendError::Full)) => Err(ApiError::overloaded()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// Body of `POST /api/shards/:id/input`.
#[derive(Deserialize)]
pub(crate) struct InputBody<'a> {
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    client_seq: Option<u64>,
    #[serde(default)]
    subscriber_id: Option<String>,
}

/// `POST /api/shards/:id/input`: one input for a subscriber (by sid) of the match,
/// reply `{"accepted":true,"seq":N}` (N: the `client_seq`, or a server sequence).
pub(crate) async fn input(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = auth::require_caller(&state, &headers, None).await?;
    let entry = find(&state, &id)?;
    let parsed: InputBody<'_> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_json(format!("invalid JSON body: {e}")))?;
    let sid: Arc<str> = match parsed.subscriber_id {
        Some(sid) => Arc::from(sid),
        None => Arc::clone(&caller.user_id),
    };
    if *sid != *caller.user_id && !caller.is_admin {
        return Err(ApiError::forbidden(format!("cannot send inputs as {sid}")));
    }
    if !entry.handle.status().is_running() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "INPUT_REJECTED",
            "the match is not running",
        ));
    }
    let payload = match parsed.input {
        Some(raw) => InputPayload::json(body.slice_ref(raw.get().as_bytes())),
        None => InputPayload::null(),
    };
    static SERVER_SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = parsed.client_seq.unwrap_or_else(|| SERVER_SEQ.fetch_add(1, Ordering::Relaxed) + 1);
    match entry.handle.input(InputFrom::Sid(sid), parsed.client_seq, payload) {
        Ok(()) => Ok(Json(serde_json::json!({ "accepted": true, "seq": seq }))),
        Err(SendError::Full) => Err(ApiError::overloaded()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// `DELETE /api/shards/:id` (admin): stop the match.
pub(crate) async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth::require_admin(&state, &headers).await?;
    let entry = find(&state, &id)?;
    match entry.handle.stop(StopReason::Stopped) {
        Ok(()) => Ok(Json(serde_json::json!({ "stopped": true, "id": id }))),
        Err(SendError::Full) => Err(ApiError::overloaded()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// `GET /api/shards/:id/connect?sid=…` (session required; `?token=` accepted because
/// EventSource cannot send headers): one SSE event per snapshot, `id: <tick>` then
/// `data: <snapshot JSON>`. A reconnect with `Last-Event-ID: T` resumes the same
/// subscription and skips snapshots up to tick T (snapshots are state: the next one
/// supersedes anything missed). The match's end arrives as `event: end`, a stop as
/// `event: stopped`, then the stream closes.
pub(crate) async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    match connect_inner(state, id, raw, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn connect_inner(
    state: AppState,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut sid = None;
    let mut token = None;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*key {
            "sid" => sid = Some(value.into_owned()),
            "token" => token = Some(value.into_owned()),
            _ => {}
        }
    }
    if let Some(redirect) = elsewhere(&state, &id, &format!("/api/shards/{id}/connect")) {
        return Ok(redirect);
    }
    let caller = auth::require_caller(&state, &headers, token.as_deref()).await?;
    let entry = find(&state, &id)?;
    let sid: Arc<str> = match sid.filter(|s| !s.is_empty()) {
        Some(sid) => Arc::from(sid),
        None => Arc::clone(&caller.user_id),
    };
    let last_seen: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);

    let mailbox = Arc::new(Mailbox::new(8));
    match entry.handle.join(Arc::clone(&sid), caller, Arc::clone(&mailbox)) {
        Ok(()) => {}
        Err(SendError::Full) => return Err(ApiError::overloaded()),
        Err(e) => return Err(ApiError::internal(&e)),
    }
    let answer = tokio::time::timeout(
        state.config.limits.handshake_timeout,
        poll_fn(|cx| mailbox.poll_recv(cx)),
    )
    .await;
    let key = match answer {
        Ok(Some(Outgoing::Joined { key, .. })) => key,
        Ok(Some(Outgoing::JoinRejected(JoinRejected::Forbidden))) => {
            return Err(ApiError::forbidden(format!("cannot subscribe as {sid}")));
        }
        Ok(Some(Outgoing::JoinRejected(_))) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SHARD_UNAVAILABLE",
                "the shard is full or finished",
            ));
        }
        _ => return Err(ApiError::overloaded()),
    };
    let guard = SseGuard { state: state.clone(), handle: entry.handle.clone(), key, mailbox };
    state.metrics.sse_open.fetch_add(1, Ordering::Relaxed);
    let heartbeat = state.config.limits.sse_heartbeat;
    Ok(Sse::new(events(guard, last_seen))
        .keep_alive(KeepAlive::new().interval(heartbeat).text(" heartbeat"))
        .into_response())
}

/// Leaves the shard when the SSE stream is dropped (client gone or stream ended).
struct SseGuard {
    state: AppState,
    handle: pylon_tick::ShardHandle,
    key: pylon_shard::SubscriberKey,
    mailbox: Arc<Mailbox<Outgoing>>,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.mailbox.close_consumer();
        self.state
            .metrics
            .snapshots_replaced
            .fetch_add(self.mailbox.replaced_count(), Ordering::Relaxed);
        let _ = self.handle.leave(self.key);
        self.state.metrics.sse_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn events(guard: SseGuard, last_seen: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(
        Some((guard, FrameEncoder::new(WireMode::Binary))),
        move |state| async move {
            let (guard, mut encoder) = state?;
            let mut shutdown = guard.state.shutdown.clone();
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = crate::shutting_down(&mut shutdown) => {
                        let event = Event::default().event("stopped").data("{\"code\":\"shutdown\"}");
                        return Some((Ok(event), None));
                    }
                    frame = poll_fn(|cx| guard.mailbox.poll_recv(cx)) => frame,
                };
                let Some(frame) = frame else {
                    let event = Event::default().event("stopped").data("{\"code\":\"gone\"}");
                    return Some((Ok(event), None));
                };
                match &frame {
                    Outgoing::Snapshot(s) if s.tick > last_seen => {
                        let mut out = Vec::new();
                        if encoder.encode(&frame, &mut out).is_err() || out.len() < 8 {
                            continue;
                        }
                        let json = String::from_utf8_lossy(&out[8..]).into_owned();
                        guard.state.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                        guard
                            .state
                            .metrics
                            .bytes_out
                            .fetch_add(json.len() as u64, Ordering::Relaxed);
                        let event = Event::default().id(s.tick.to_string()).data(json);
                        return Some((Ok(event), Some((guard, encoder))));
                    }
                    Outgoing::MatchEnd(end) => {
                        let outcome =
                            end.outcome.json().map(|b| String::from_utf8_lossy(b).into_owned());
                        let event = Event::default()
                            .event("end")
                            .id(end.tick.to_string())
                            .data(outcome.unwrap_or_else(|_| "null".into()));
                        return Some((Ok(event), None));
                    }
                    Outgoing::Stopped(why) => {
                        let event = Event::default()
                            .event("stopped")
                            .data(format!("{{\"code\":\"{}\"}}", why.as_str()));
                        return Some((Ok(event), None));
                    }
                    _ => {}
                }
            }
        },
    )
}

/// `GET /api/shards/:id/replay`: the replay log of a finished match that was created with
/// `"record_replay": true` (JSON; `pylon_shard::replay` re-simulates it).
pub(crate) async fn replay(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let ents = match crate::entities::entities(&state) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match ents.store.replay(&id).await {
        Ok(Some(log)) => ([(axum::http::header::CONTENT_TYPE, "application/json")], log).into_response(),
        Ok(None) => ApiError::new(StatusCode::NOT_FOUND, "REPLAY_NOT_FOUND", format!("no replay stored for {id:?}"))
            .with_hint("replays are recorded for matches created with \"record_replay\": true and stored when they finish")
            .into_response(),
        Err(e) => crate::entities::entity_error(e).into_response(),
    }
}
