//! Presence rooms over HTTP, in pylon's shapes (so `useRoom` and its peers work):
//! `POST /api/rooms/join`, `/leave`, `/presence`, `/broadcast`, `GET /api/rooms` and
//! `GET /api/rooms/:room`. The rooms themselves are `pylon_sync::presence::rooms`
//! (replicated on every process over the cluster bus, members idle for 120 s leave); a
//! room's events (`{"type":"join"|"leave"|"presence"|"broadcast","room",…}`) go to the
//! sync sockets that joined the room.
//!
//! Every route needs a session or the admin token; the caller is the member. Only the
//! admin token may act for another user (`user_id` in the body, as pylon allows for
//! server-to-server mirroring).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use pylon_sync::presence::rooms::{Peer, RoomError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth;
use crate::error::{ApiError, ErrorCode};
use crate::extract::JsonBody;

/// The body of every `POST /api/rooms/*` route.
#[derive(Deserialize)]
pub(crate) struct RoomBody {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    topic: Option<String>,
}

/// The caller's member id and the room: 401 without a session, 400 without a room.
async fn member(
    state: &AppState,
    headers: &HeaderMap,
    body: &RoomBody,
) -> Result<(String, String), ApiError> {
    let caller = auth::require_caller(state, headers, None).await?;
    let user = match (&body.user_id, caller.is_admin) {
        (Some(user), true) => user.clone(),
        _ => caller.user_id.to_string(),
    };
    let room = body.room.clone().ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "room is required")
    })?;
    Ok((user, room))
}

fn room_error(e: &RoomError) -> ApiError {
    match e {
        RoomError::BadName | RoomError::DataTooLarge => {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, e.to_string())
        }
        _ => ApiError::too_many(
            ErrorCode::RoomLimitReached,
            e.to_string(),
            "leave a room first, or use another room",
            None,
        ),
    }
}

fn snapshot(room: &str, peers: Vec<Peer>) -> Value {
    json!({ "type": "snapshot", "room": room, "peers": peers })
}

/// `POST /api/rooms/join` `{room, data?}`: `{"joined": room, "snapshot": {"type":
/// "snapshot","room","peers":[{user_id,data,joined_at}]}}` (the members already there).
pub(crate) async fn join(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RoomBody>,
) -> Result<Json<Value>, ApiError> {
    let (user, room) = member(&state, &headers, &body).await?;
    let peers = state.presence.join(&room, &user, body.data).map_err(|e| room_error(&e))?;
    Ok(Json(json!({ "joined": room, "snapshot": snapshot(&room, peers) })))
}

/// `POST /api/rooms/leave` `{room}`: `{"left": room, "was_present": bool}` (idempotent).
pub(crate) async fn leave(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RoomBody>,
) -> Result<Json<Value>, ApiError> {
    let (user, room) = member(&state, &headers, &body).await?;
    let was_present = state.presence.leave(&room, &user);
    Ok(Json(json!({ "left": room, "was_present": was_present })))
}

/// `POST /api/rooms/presence` `{room, data}`: `{"updated": true}`, or `{"updated":
/// false, "reason": "not_in_room"}`.
pub(crate) async fn presence(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RoomBody>,
) -> Result<Json<Value>, ApiError> {
    let (user, room) = member(&state, &headers, &body).await?;
    let data = body.data.unwrap_or_else(|| json!({}));
    match state.presence.set_presence(&room, &user, data).map_err(|e| room_error(&e))? {
        true => Ok(Json(json!({ "updated": true }))),
        false => Ok(Json(json!({ "updated": false, "reason": "not_in_room" }))),
    }
}

/// `POST /api/rooms/broadcast` `{room, topic, data}`: `{"broadcasted": true}`, or
/// `{"broadcasted": false, "reason": "room_empty"}`.
pub(crate) async fn broadcast(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RoomBody>,
) -> Result<Json<Value>, ApiError> {
    let (user, room) = member(&state, &headers, &body).await?;
    let topic = body.topic.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "topic is required")
    })?;
    let data = body.data.unwrap_or_else(|| json!({}));
    let sent = state.presence.broadcast(&room, Some(&user), topic, data);
    match sent.map_err(|e| room_error(&e))? {
        true => Ok(Json(json!({ "broadcasted": true }))),
        false => Ok(Json(json!({ "broadcasted": false, "reason": "room_empty" }))),
    }
}

/// `GET /api/rooms`: `[{"name","members":N}]`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::require_caller(&state, &headers, None).await?;
    let rooms: Vec<Value> = state
        .presence
        .rooms()
        .into_iter()
        .map(|(name, members)| json!({ "name": name, "members": members }))
        .collect();
    Ok(Json(Value::Array(rooms)))
}

/// `GET /api/rooms/:room`: `{"room","members":[{user_id,data,joined_at}],"count"}`.
pub(crate) async fn members(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::require_caller(&state, &headers, None).await?;
    let members = state.presence.members(&room);
    let count = members.len();
    Ok(Json(json!({ "room": room, "members": members, "count": count })))
}
