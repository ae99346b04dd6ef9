//! Change feeds: `GET /api/sync/pull?since=N`, the sync WebSocket (port `+1` and `/ws`)
//! and SSE (port `+2` and `/events`). Every event passes the receiver's read policy.
//!
//! A live feed starts from `since` (query) or `Last-Event-ID` (SSE) by reading the
//! durable log, then follows the in-process hub. When it falls behind the hub's buffer,
//! or sees a gap in `seq` (commits published out of order), it reads the log again, so
//! nothing committed is ever skipped and nothing is delivered twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, Stream, StreamExt};
use pylon_shard::Auth;
use pylon_storage::ChangeEvent;
use pylon_storage::entity::EntityError;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::{self, AuthFailure};
use crate::entities::{Entities, Published, entities, entity_error};
use crate::error::{ApiError, close};
use crate::limits::ConnSlot;
use crate::policies::{self, Caller, Projection};
use crate::sessions_live::LiveSession;

/// How `e` reaches `caller`: as it is, as a delete (the row left the caller's view), or
/// not at all (the caller's feed shows a gap in `seq`).
fn projection(ents: &Entities, caller: &Caller, e: &ChangeEvent) -> Option<Projection> {
    ents.policies.project(e, caller)
}

/// `since`, `limit`, `token` from a query string.
fn feed_query(raw: Option<&str>) -> Result<(Option<u64>, u32, Option<String>), ApiError> {
    let (mut since, mut limit, mut token) = (None, 100u32, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*key {
            "since" => since = Some(crate::query::whole_number("since", &value)?),
            "limit" => {
                let max = u64::from(pylon_storage::entity::limits::MAX_PAGE);
                let n = crate::query::clamped_limit("limit", Some(&value), 100, max)?;
                limit = u32::try_from(n).unwrap_or(pylon_storage::entity::limits::MAX_PAGE);
            }
            "token" => token = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok((since, limit, token))
}

/// `GET /api/sync/pull?since=N&limit=M`.
pub(crate) async fn pull(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let ents = entities(&state)?;
    let (since, limit, token) = feed_query(raw.as_deref())?;
    let caller = auth::http_caller(&state, &headers, token.as_deref()).await?;
    let page = ents.store.changes_since(since.unwrap_or(0), limit).await.map_err(entity_error)?;
    let caller = policies::caller(caller.as_ref());
    let changes: Vec<ChangeEvent> = page
        .changes
        .into_iter()
        .filter_map(|e| match projection(ents, &caller, &e)? {
            Projection::AsIs => Some(e),
            Projection::AsDelete => Some(e.as_delete()),
        })
        .collect();
    Ok(Json(
        json!({ "changes": changes, "cursor": { "last_seq": page.last_seq }, "has_more": page.has_more }),
    ))
}

/// The ordered, policy-filtered event source behind both live transports.
struct Feed {
    ents: Arc<Entities>,
    caller: Caller,
    rx: tokio::sync::broadcast::Receiver<Arc<Published>>,
    last: u64,
    catching_up: bool,
    backlog: VecDeque<Arc<Published>>,
}

impl Feed {
    async fn start(
        ents: Arc<Entities>,
        caller: Option<Auth>,
        since: Option<u64>,
    ) -> Result<Self, EntityError> {
        let rx = ents.hub.subscribe();
        let (last, catching_up) = match since {
            Some(since) => (since, true),
            None => (ents.store.latest_seq().await?, false),
        };
        let caller = policies::caller(caller.as_ref());
        Ok(Self { ents, caller, rx, last, catching_up, backlog: VecDeque::new() })
    }

    /// The next event this caller may see, in seq order, with how they see it; `Err` when
    /// the log no longer holds what the feed needs (resync), `Ok(None)` when the hub is
    /// gone.
    async fn next(&mut self) -> Result<Option<(Arc<Published>, Projection)>, EntityError> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if e.event.seq <= self.last {
                    continue;
                }
                self.last = e.event.seq;
                if let Some(p) = projection(&self.ents, &self.caller, &e.event) {
                    return Ok(Some((e, p)));
                }
                continue;
            }
            if self.catching_up {
                let page = self.ents.store.changes_since(self.last, 500).await?;
                self.catching_up = page.has_more;
                self.backlog.extend(page.changes.into_iter().map(|c| Arc::new(Published::new(c))));
                if !self.backlog.is_empty() || self.catching_up {
                    continue;
                }
            }
            match self.rx.recv().await {
                Ok(e) if e.event.seq <= self.last => {}
                Ok(e) if e.event.seq == self.last + 1 => self.backlog.push_back(e),
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }
}

/// `GET /events` (and port `+2`): SSE, `id: <seq>`, `data: <change JSON>`.
pub(crate) async fn sse(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let max = state.config.limits.max_conns_per_ip;
    let Some(slot) = state.conns.acquire(peer.ip(), max) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_CONNECTIONS",
            crate::limits::over_cap(max),
        )
        .into_response();
    };
    let result = async {
        let ents = Arc::clone(entities(&state)?);
        let (since, _, token) = feed_query(raw.as_deref())?;
        let last_event: Option<u64> = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let resolved = auth::http_session(&state, &headers, token.as_deref()).await?;
        let live = resolved.as_ref().and_then(|r| r.session);
        let live = live.map(|s| state.live.register(s, auth::unix_now()));
        let caller = resolved.map(|r| r.auth);
        let feed = Feed::start(ents, caller, last_event.or(since)).await.map_err(entity_error)?;
        Ok::<_, ApiError>((feed, live))
    }
    .await;
    match result {
        Ok((feed, live)) => Sse::new(sse_events(feed, state.shutdown.clone(), slot, live))
            .keep_alive(
                KeepAlive::new().interval(state.config.limits.sse_heartbeat).text(" heartbeat"),
            )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The event stream; it holds the client address's connection slot until it ends, and
/// ends with `event: session_ended` when the caller's session is logged out or expires.
fn sse_events(
    feed: Feed,
    shutdown: tokio::sync::watch::Receiver<bool>,
    slot: ConnSlot,
    live: Option<LiveSession>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((feed, shutdown, slot, live)), |state| async move {
        let (mut feed, mut shutdown, slot, live) = state?;
        let next = tokio::select! {
            biased;
            () = crate::shutting_down(&mut shutdown) => return None,
            () = crate::sessions_live::ended(live.as_ref()) => {
                let data = json!({ "code": "SESSION_ENDED" }).to_string();
                return Some((Ok(Event::default().event("session_ended").data(data)), None));
            }
            next = feed.next() => next,
        };
        match next {
            Ok(Some((e, p))) => Some((
                Ok(Event::default().id(e.event.seq.to_string()).data(e.json_as(p).as_str())),
                Some((feed, shutdown, slot, live)),
            )),
            Ok(None) => None,
            Err(EntityError::ResyncRequired { oldest_seq, .. }) => {
                let data =
                    json!({ "code": "RESYNC_REQUIRED", "oldest_seq": oldest_seq }).to_string();
                Some((Ok(Event::default().event("resync").data(data)), None))
            }
            Err(e) => {
                tracing::error!(error = %e, "change feed failed");
                None
            }
        }
    })
}

/// `GET /ws` (and port `+1`): the sync WebSocket, one text frame per change.
pub(crate) async fn ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    // Counted with the shard sockets: one cap on long-lived sockets per client address.
    let slot = state.conns.acquire(peer.ip(), state.config.limits.max_conns_per_ip);
    let (since, _, query_token) = match feed_query(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let token = auth::socket_token(&headers, query_token.as_deref());
    let echo = auth::echo_entry(token.as_ref());
    let caller = match &token {
        None => Ok(None),
        Some((t, _)) => auth::resolve_session(&state, t).await.map(Some),
    };
    let mut upgrade = upgrade
        .max_message_size(state.config.limits.max_frame_bytes)
        .read_buffer_size(crate::shard_ws::SOCKET_READ_BUFFER)
        .write_buffer_size(0);
    if let Some(entry) = echo {
        upgrade = upgrade.protocols([entry]);
    }
    let tasks = state.tasks.clone();
    upgrade.on_upgrade(move |mut socket| {
        tasks.track_future(async move {
            let Some(_slot) = slot else {
                let why = crate::limits::over_cap(state.config.limits.max_conns_per_ip);
                let _ = socket.send(close::message(close::RATE_LIMITED, &why)).await;
                return;
            };
            run_ws(socket, state, caller, since).await;
        })
    })
}

async fn run_ws(
    mut socket: WebSocket,
    state: AppState,
    caller: Result<Option<auth::Resolved>, AuthFailure>,
    since: Option<u64>,
) {
    let (caller, live) = match caller {
        Ok(r) => {
            let live = r.as_ref().and_then(|r| r.session);
            (r.map(|r| r.auth), live.map(|s| state.live.register(s, auth::unix_now())))
        }
        Err(_) => {
            let _ = socket.send(close::message(close::POLICY, "invalid or expired token")).await;
            return;
        }
    };
    let Some(ents) = state.entities.clone() else {
        let _ = socket.send(close::message(close::TRY_AGAIN, "no entity store")).await;
        return;
    };
    let mut feed = match Feed::start(ents, caller, since).await {
        Ok(feed) => feed,
        Err(e) => {
            let _ = socket.send(close::message(close::INTERNAL, &e.to_string())).await;
            return;
        }
    };
    let (mut sink, mut stream) = socket.split();
    let mut shutdown_rx = state.shutdown.clone();
    let mut shutdown = std::pin::pin!(crate::shutting_down(&mut shutdown_rx));
    let mut ended = std::pin::pin!(crate::sessions_live::ended(live.as_ref()));
    let (code, why) = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break (close::GOING_AWAY, "server shutting down".to_owned()),
            () = &mut ended => break (close::POLICY, "session ended".to_owned()),
            incoming = stream.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            next = feed.next() => match next {
                Ok(Some((e, p))) => {
                    if sink.send(Message::Text(e.json_as(p))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break (close::GOING_AWAY, "server shutting down".to_owned()),
                Err(EntityError::ResyncRequired { oldest_seq, .. }) => {
                    let text = json!({ "error": { "code": "RESYNC_REQUIRED", "oldest_seq": oldest_seq } }).to_string();
                    let _ = sink.send(Message::Text(Utf8Bytes::from(text))).await;
                    break (close::RESYNC, "resync required".to_owned());
                }
                Err(e) => {
                    tracing::error!(error = %e, "change feed failed");
                    break (close::INTERNAL, "change feed failed".to_owned());
                }
            },
        }
    };
    let _ = sink.send(close::message(code, &why)).await;
}
