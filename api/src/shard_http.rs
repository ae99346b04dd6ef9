//! The shard HTTP API (docs/PROTOCOL.md, "HTTP"): list (admin), info, create, the input
//! fallback, stop and replay. The SSE snapshot stream is `shard_sse`.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use pylon_shard::codec::InputPayload;
use pylon_shard::{InputRejected, StopReason};
use pylon_tick::{InputFrom, InputVerdict, SendError};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{BodyBytes, JsonBody};
use crate::limits::Refusal;
use crate::matches::{CreateError, MatchEntry, MatchInfo, Quota};
use crate::metrics::Limit;

/// 307 to the region that owns `id`, when it is another one.
pub(crate) fn elsewhere(state: &AppState, id: &str, path: &str) -> Option<Response> {
    let base = state.config.regions.elsewhere(id)?;
    Some(Redirect::temporary(&format!("{}{path}", base.trim_end_matches('/'))).into_response())
}

fn find(state: &AppState, id: &str) -> Result<MatchEntry, ApiError> {
    state.matches.get(id).ok_or_else(|| ApiError::shard_not_found(id))
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
/// or `seed` needs the admin token). A session may create `matches_per_minute` a minute
/// (429 `RATE_LIMITED` with `Retry-After`) and have `max_matches_per_user` running (429
/// `TOO_MANY_MATCHES`); the admin token is exempt from both, but no creator from the
/// process-wide `max_matches` (429 `TOO_MANY_MATCHES`).
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
    let new = NewMatch {
        game: &body.game,
        params: body.params,
        id: body.id.as_deref(),
        seed: body.seed,
        record_replay: body.record_replay,
    };
    let entry = create_for(&state, &caller, new)?;
    Ok((StatusCode::CREATED, Json(entry.info())))
}

/// What a new match is made of.
pub(crate) struct NewMatch<'a> {
    pub game: &'a str,
    pub params: serde_json::Value,
    pub id: Option<&'a str>,
    pub seed: Option<u64>,
    pub record_replay: bool,
}

/// Creates a match for `caller` under the creation limits (per-minute rate and running
/// matches per session, both waived for the admin token; the process-wide cap for all).
pub(crate) fn create_for(
    state: &AppState,
    caller: &pylon_shard::Auth,
    new: NewMatch<'_>,
) -> Result<MatchEntry, ApiError> {
    let limits = &state.config.limits;
    if !caller.is_admin
        && let Err(refusal) =
            state.rates.match_creates.check(Arc::clone(&caller.user_id), Instant::now())
    {
        state.metrics.count_refusal(match refusal {
            Refusal::Crowded => Limit::LimiterFull,
            Refusal::Empty { .. } => Limit::MatchRate,
        });
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!("too many matches created (limit {} a minute)", limits.matches_per_minute),
            "join an existing match instead of creating one; retry after the Retry-After seconds",
            Some(refusal.retry_after_secs()),
        ));
    }
    let quota = Quota {
        owner: (!caller.is_admin).then(|| Arc::clone(&caller.user_id)),
        per_owner: limits.max_matches_per_user as usize,
        total: limits.max_matches as usize,
    };
    let created = state.matches.create_within(
        &quota,
        new.game,
        new.params,
        new.id,
        new.seed,
        new.record_replay,
    );
    match created {
        Ok(entry) => {
            tracing::info!(shard = %entry.id, game = %new.game, by = %caller.user_id, "match created");
            Ok(entry)
        }
        Err(e) => Err(create_error(state, e)),
    }
}

fn create_error(state: &AppState, e: CreateError) -> ApiError {
    match e {
        CreateError::Game(pylon_shard::ShardError::UnknownGame(name)) => {
            let known: Vec<&str> = state.matches.game_names().collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownGame,
                format!("no game named {name:?}"),
            )
            .with_hint(format!("registered games: {}", known.join(", ")))
        }
        CreateError::Game(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParams, e.to_string())
        }
        CreateError::Exists(id) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::ShardExists,
            format!("a match with id {id:?} already exists"),
        ),
        e @ CreateError::BadId => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidId, e.to_string())
        }
        e @ CreateError::TooManyForOwner(_) => {
            state.metrics.count_refusal(Limit::MatchesPerUser);
            ApiError::too_many(
                ErrorCode::TooManyMatches,
                e.to_string(),
                "finish or stop one of your matches first (idle matches stop after 60 s)",
                None,
            )
        }
        e @ CreateError::TooMany(_) => {
            state.metrics.count_refusal(Limit::MatchesTotal);
            ApiError::too_many(
                ErrorCode::TooManyMatches,
                e.to_string(),
                "the server is full; retry later or in another region",
                Some(30),
            )
        }
        CreateError::Send(SendError::Full) => ApiError::overloaded(),
        e => ApiError::internal(&e),
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

/// `POST /api/shards/:id/input`: one input for a subscriber (by sid) of the match, answered
/// with what the shard did with it: 200 `{"accepted":true,"seq":N}` once a tick applied it
/// (N: the `client_seq`, or a server sequence), else 409 `INPUT_REJECTED` (no subscription
/// for the sid, or the match is over), 403 (refused by the game), 400 (undecodable), 429
/// (the subscriber's queue is full, or over its rate: the sockets' `max_inputs_per_sec`,
/// burst twice that, per match and sid), 503 `OVERLOADED` (the tick thread's queue is full
/// or no verdict came within the handshake timeout). Rejections carry `reason`.
pub(crate) async fn input(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
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
        return Err(input_rejected(InputRejected::Finished, None));
    }
    let key = (Arc::clone(&entry.id), Arc::clone(&sid));
    if let Err(refusal) = state.rates.http_inputs.check(key, Instant::now()) {
        state.metrics.count_refusal(match refusal {
            Refusal::Crowded => Limit::LimiterFull,
            Refusal::Empty { .. } => Limit::HttpInputs,
        });
        let rate = state.config.limits.max_inputs_per_sec;
        return Err(ApiError::too_many(
            ErrorCode::RateLimited,
            format!(
                "too many inputs for this subscriber (limit {rate} a second, burst {})",
                2 * rate
            ),
            "send inputs at the match's tick rate; a shard socket carries them with less overhead",
            Some(refusal.retry_after_secs()),
        ));
    }
    let payload = match parsed.input {
        Some(raw) => InputPayload::json(body.slice_ref(raw.get().as_bytes())),
        None => InputPayload::null(),
    };
    static SERVER_SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = parsed.client_seq.unwrap_or_else(|| SERVER_SEQ.fetch_add(1, Ordering::Relaxed) + 1);
    let verdict =
        match entry.handle.input_with_receipt(InputFrom::Sid(sid), parsed.client_seq, payload) {
            Ok(verdict) => verdict,
            Err(SendError::Full) => return Err(ApiError::overloaded()),
            Err(e) => return Err(ApiError::internal(&e)),
        };
    let wait = state.config.limits.handshake_timeout;
    match tokio::time::timeout(wait, poll_fn(|cx| verdict.poll_recv(cx))).await {
        Ok(Some(InputVerdict::Applied)) => {
            Ok(Json(serde_json::json!({ "accepted": true, "seq": seq })))
        }
        Ok(Some(InputVerdict::Unauthorized)) => Err(ApiError::forbidden(
            "the game refused this input now",
        )
        .with_hint(
            "it is not allowed in the match's current state (not your turn, not a legal move)",
        )
        .with_detail("reason", "unauthorized".into())
        .with_detail("seq", seq.into())),
        Ok(Some(InputVerdict::Rejected(why))) => Err(input_rejected(why, Some(seq))),
        // Closed without a verdict: the match ended before the tick that would take it.
        Ok(None) => Err(input_rejected(InputRejected::Finished, Some(seq))),
        Err(_) => Err(ApiError::overloaded().with_detail("seq", seq.into()).with_hint(format!(
            "no verdict within {} s; the input may still be applied",
            wait.as_secs()
        ))),
    }
}

/// The answer for an input the shard refused.
fn input_rejected(why: InputRejected, seq: Option<u64>) -> ApiError {
    let (status, message, hint) = match why {
        InputRejected::UnknownSubscriber => (
            StatusCode::CONFLICT,
            "no subscription for this sid in the match",
            "connect a shard socket (?shard=<id>&sid=<sid>) or the SSE stream \
             (GET /api/shards/<id>/connect?sid=<sid>) for this sid first",
        ),
        InputRejected::QueueFull => (
            StatusCode::TOO_MANY_REQUESTS,
            "this subscriber's input queue is full until the next tick",
            "send at most a few inputs per tick",
        ),
        InputRejected::Decode => (
            StatusCode::BAD_REQUEST,
            "the input does not decode as this game's input",
            "see the game's input format",
        ),
        _ => (StatusCode::CONFLICT, "the match is not running", "create or join another match"),
    };
    let mut e = ApiError::new(status, ErrorCode::InputRejected, message)
        .with_hint(hint)
        .with_detail("reason", why.as_str().into());
    if let Some(seq) = seq {
        e = e.with_detail("seq", seq.into());
    }
    if why == InputRejected::QueueFull {
        e.retry_after = Some(1);
    }
    e
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

/// `GET /api/shards/:id/replay`: the replay log of a finished match that was created with
/// `"record_replay": true` (JSON; `pylon_shard::replay` re-simulates it).
pub(crate) async fn replay(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let ents = match crate::entities::entities(&state) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match ents.store().replay(&id).await {
        Ok(Some(log)) => ([(axum::http::header::CONTENT_TYPE, "application/json")], log).into_response(),
        Ok(None) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ReplayNotFound, format!("no replay stored for {id:?}"))
            .with_hint("replays are recorded for matches created with \"record_replay\": true and stored when they finish")
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
