//! Finding a match without the matchmaker: `GET /api/shards` lists the matches of games
//! that opt in (`Game::LISTED`) to every session, and `POST /api/shards/join-or-create`
//! hands out a listed match with a free seat, or a new one.
//!
//! A session sees only listed matches and only their public fields ([`PublicInfo`]); the
//! admin token sees every match with everything ([`MatchInfo`]). A seat handed out is not
//! reserved: two callers racing for the last one both get the match, and the later socket
//! is refused with 1013 "shard full" (call again).

use std::cmp::Reverse;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::extract::JsonBody;
use crate::matches::{MatchEntry, MatchInfo, PublicInfo};
use crate::shard_http::{NewMatch, create_for};

/// `GET /api/shards?game=&joinable=true`: the admin token gets every match (full info);
/// a session gets the listed ones (public info). Both filtered by `game`, and to matches
/// with a free seat by `joinable=true`.
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = auth::require_caller(&state, &headers, None).await?;
    let (mut game, mut joinable) = (None, false);
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match &*key {
            "game" => game = Some(value.into_owned()),
            "joinable" => joinable = matches!(&*value, "1" | "true"),
            _ => {}
        }
    }
    if caller.is_admin {
        let all: Vec<MatchInfo> = state
            .matches
            .list()
            .iter()
            .filter(|e| game.as_deref().is_none_or(|g| e.handle.status().game() == g))
            .filter(|e| !joinable || e.joinable())
            .map(MatchEntry::info)
            .collect();
        return Ok(Json(all).into_response());
    }
    let listed: Vec<PublicInfo> = state
        .matches
        .listed(game.as_deref(), joinable)
        .iter()
        .map(MatchEntry::public_info)
        .collect();
    Ok(Json(listed).into_response())
}

/// Body of `POST /api/shards/join-or-create`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinOrCreate {
    game: String,
    #[serde(default)]
    params: serde_json::Value,
}

/// `POST /api/shards/join-or-create` `{game, params?}`: the fullest listed match of `game`
/// with these parameters that still has a free seat (200, `"created": false`), else a new
/// one under the usual creation limits (201, `"created": true`). Games that are not
/// listed answer 400 `GAME_NOT_LISTED`.
pub(crate) async fn join_or_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<JoinOrCreate>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let caller = auth::require_caller(&state, &headers, None).await?;
    match state.matches.game_listed(&body.game) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::GameNotListed,
                format!("{} does not list its matches", body.game),
            )
            .with_hint("use the matchmaker, or create a match and share its id"));
        }
        Err(_) => {
            let known: Vec<&str> = state.matches.game_names().collect();
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownGame,
                format!("no game named {:?}", body.game),
            )
            .with_hint(format!("registered games: {}", known.join(", "))));
        }
    }
    let open = state
        .matches
        .listed(Some(&body.game), true)
        .into_iter()
        .filter(|e| *e.params == body.params);
    // Fill the fullest match first (players meet sooner), oldest id on ties.
    if let Some(entry) =
        open.min_by_key(|e| (Reverse(e.handle.status().subscribers()), e.id.clone()))
    {
        return Ok((StatusCode::OK, Json(with_created(&entry, false))));
    }
    let new = NewMatch {
        game: &body.game,
        params: body.params,
        id: None,
        seed: None,
        record_replay: false,
    };
    let entry = create_for(&state, &caller, new)?;
    Ok((StatusCode::CREATED, Json(with_created(&entry, true))))
}

fn with_created(entry: &MatchEntry, created: bool) -> serde_json::Value {
    let mut info = serde_json::to_value(entry.public_info()).unwrap_or_else(|_| json!({}));
    if let Some(map) = info.as_object_mut() {
        map.insert("created".into(), json!(created));
    }
    info
}
