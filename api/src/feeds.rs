//! The change feeds' transports: `GET /api/sync/pull?since=N`, the sync WebSocket (port
//! `+1` and `/ws`) and SSE (port `+2` and `/events`). What a feed carries and in which
//! order is decided in `pylon_sync::feed` (the log, the hub, the read policy); this module
//! only moves it, under the same socket rules as shard sockets ([`crate::socket`]).
//!
//! A feed opened without `since` (pylon's own sync engine pulls, then connects without
//! one) starts at the cursor the caller's last pull returned: by session for a token, by
//! client address for anonymous callers (`pylon_sync::cursors`).
//!
//! The sync socket also carries presence (`pylon_sync::presence`): the client's
//! `{"type":"presence",…}` and `{"type":"topic",…}` frames go to the other sockets of
//! their room or topic, on every process, and theirs come back on this socket. Every
//! frame a client sends counts against `pylon_sync::presence::FRAMES_PER_SEC` (over it:
//! close 4429); a refused presence frame is answered with
//! `{"type":"error","error":{"code","message"}}` and the socket stays open. A signed-in
//! socket also gets the matchmaker's assignments of its user as `{"type":"match",…}`
//! frames (docs/MATCHMAKER.md).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use pylon_storage::access::Projection;
use pylon_storage::entity::EntityError;
use pylon_sync::presence::{self, PresenceError};
use pylon_sync::{CursorKey, Feed, Feeds, PresenceSocket};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{self, AuthFailure};
use crate::close::{BadRequest, Close};
use crate::entities::entities;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{ConnSlot, InputBucket};
use crate::matchmaking::Matchmaking;
use crate::matchmaking::waiters::{self, Push, Waiter};
use crate::policies;
use crate::sessions_live::LiveSession;
use crate::socket::{self, End, Read, SocketTimers};

/// The query of every feed route.
struct FeedQuery {
    since: Option<u64>,
    limit: u32,
    token: Option<String>,
}

fn feed_query(raw: Option<&str>) -> Result<FeedQuery, ApiError> {
    let max = pylon_storage::entity::limits::MAX_PAGE;
    let mut q =
        FeedQuery { since: None, limit: pylon_storage::entity::limits::DEFAULT_PAGE, token: None };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match &*key {
            "since" => q.since = Some(crate::query::whole_number("since", &value)?),
            "limit" => {
                let n = crate::query::clamped_limit("limit", Some(&value), 0, u64::from(max))?;
                q.limit = u32::try_from(n).unwrap_or(max);
            }
            "token" => q.token = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(q)
}

/// Whose pull cursor a request remembers or starts from: its token's session, or, for an
/// anonymous caller, its client address.
fn cursor_key(token: Option<&str>, peer: IpAddr) -> CursorKey {
    match token {
        Some(t) => CursorKey::Session(pylon_storage::sessions::token_hash(t)),
        None => CursorKey::Address(peer),
    }
}

/// `GET /api/sync/pull?since=N&limit=M`.
pub(crate) async fn pull(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let feeds = entities(&state)?;
    let q = feed_query(raw.as_deref())?;
    let token = auth::header_token(&headers).or(q.token);
    let caller = auth::http_caller(&state, &headers, token.as_deref()).await?;
    let key = cursor_key(token.as_deref(), peer.ip());
    let caller = policies::caller(caller.as_ref());
    let page = feeds.pull(&caller, Some(key), q.since.unwrap_or(0), q.limit).await?;
    Ok(Json(json!({
        "changes": page.changes,
        "cursor": { "last_seq": page.last_seq },
        "has_more": page.has_more,
    })))
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
            ErrorCode::TooManyConnections,
            crate::limits::over_cap(max),
        )
        .into_response();
    };
    let result = async {
        let feeds = Arc::clone(entities(&state)?);
        let q = feed_query(raw.as_deref())?;
        let last_event: Option<u64> = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let token = auth::header_token(&headers).or(q.token);
        let resolved = auth::http_session(&state, &headers, token.as_deref()).await?;
        let live = resolved.as_ref().and_then(|r| r.session);
        let live = live.map(|s| state.live.register(s, auth::unix_now()));
        let caller = policies::caller(resolved.map(|r| r.auth).as_ref());
        let key = cursor_key(token.as_deref(), peer.ip());
        let feed = feeds.open(caller, last_event.or(q.since), Some(key)).await?;
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
                let data = json!({ "code": ErrorCode::SessionEnded }).to_string();
                return Some((Ok(Event::default().event("session_ended").data(data)), None));
            }
            next = feed.next() => next,
        };
        match next {
            Ok(Some((e, p))) => {
                let json = e.json(p);
                let event = Event::default()
                    .id(e.event.seq.to_string())
                    .data(String::from_utf8_lossy(&json));
                Some((Ok(event), Some((feed, shutdown, slot, live))))
            }
            Ok(None) => None,
            Err(EntityError::ResyncRequired { oldest_seq, .. }) => {
                let data = json!({ "code": ErrorCode::ResyncRequired, "oldest_seq": oldest_seq })
                    .to_string();
                Some((Ok(Event::default().event("resync").data(data)), None))
            }
            Err(e) => {
                tracing::error!(error = %e, "change feed failed");
                None
            }
        }
    })
}

/// What the sync socket decided before the upgrade.
enum Plan {
    Refuse(Close),
    Open(Box<Opening>),
}

/// The matchmaker's pushes for a socket's user: the service, the waiter, the user.
type MatchPushes = (Arc<Matchmaking>, Waiter, Arc<str>);

/// A sync socket allowed to open.
struct Opening {
    feeds: Arc<Feeds>,
    resolved: Option<auth::Resolved>,
    since: Option<u64>,
    key: CursorKey,
    /// Registered before the upgrade is answered: an assignment made once the client sees
    /// the socket open reaches it.
    matches: Option<MatchPushes>,
    /// The main port's `Host` as this client reaches it (the `ws_url` of a match).
    origin: HeaderMap,
}

/// `GET /ws` on the main port: the sync WebSocket, one text frame per change.
pub(crate) async fn ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: socket::Upgrade,
) -> Response {
    let origin = origin_of(&headers, false);
    sync_socket(state, peer, raw, headers, upgrade, origin).await
}

/// The sync WebSocket on its own port (`+1`, any path).
pub(crate) async fn ws_sync_port(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    upgrade: socket::Upgrade,
) -> Response {
    let origin = origin_of(&headers, true);
    sync_socket(state, peer, raw, headers, upgrade, origin).await
}

/// The `Host` and `X-Forwarded-Proto` of the main port this socket's client reaches:
/// what the matchmaker's `ws_url` is derived from when no socket URL is configured. On
/// the sync port, the main port is the one below it.
fn origin_of(headers: &HeaderMap, sync_port: bool) -> HeaderMap {
    use axum::http::header::{HOST, HeaderValue};
    let mut origin = HeaderMap::new();
    if let Some(proto) = headers.get("x-forwarded-proto") {
        origin.insert("x-forwarded-proto", proto.clone());
    }
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else { return origin };
    let host = match host.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((name, Ok(port))) if sync_port => format!("{name}:{}", port.saturating_sub(1)),
        _ => host.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&host) {
        origin.insert(HOST, value);
    }
    origin
}

async fn sync_socket(
    state: AppState,
    peer: SocketAddr,
    raw: Option<String>,
    headers: HeaderMap,
    upgrade: socket::Upgrade,
    origin: HeaderMap,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    // Counted with the shard sockets: one cap on long-lived sockets per client address.
    let max = state.config.limits.max_conns_per_ip;
    let slot = state.conns.acquire(peer.ip(), max);
    let query = feed_query(raw.as_deref());
    let query_token = query.as_ref().ok().and_then(|q| q.token.clone());
    let token = auth::socket_token(&headers, query_token.as_deref());
    let echo = auth::echo_entry(token.as_ref());
    let plan = match (&slot, query) {
        (None, _) => Plan::Refuse(Close::TooManySockets(max)),
        (Some(_), Err(_)) => Plan::Refuse(Close::BadRequest(BadRequest::Since)),
        (Some(_), Ok(q)) => {
            let opened = plan(&state, token.map(|(t, _)| t), q.since, peer.ip()).await;
            match opened {
                Plan::Open(mut opening) => {
                    opening.origin = origin;
                    Plan::Open(opening)
                }
                refused => refused,
            }
        }
    };
    let upgrade = socket::configure(upgrade, &state.config.limits, echo);
    let tasks = state.tasks.clone();
    upgrade.on_upgrade(move |mut socket| {
        tasks.track_future(async move {
            match plan {
                Plan::Refuse(close) => {
                    state.metrics.count_close(close.code());
                    socket::finish(&mut socket, &close).await;
                }
                Plan::Open(opening) => run_ws(socket, &state, *opening).await,
            }
            drop(slot);
        })
    })
}

async fn plan(state: &AppState, token: Option<String>, since: Option<u64>, peer: IpAddr) -> Plan {
    let Some(feeds) = state.entities.clone() else {
        return Plan::Refuse(Close::NoEntityStore);
    };
    let resolved = match &token {
        None => None,
        Some(t) => match auth::resolve_session(state, t).await {
            Ok(r) => Some(r),
            Err(AuthFailure::Invalid) => return Plan::Refuse(Close::InvalidToken),
            Err(AuthFailure::Store(e)) => {
                tracing::error!(error = %e, "session store failed");
                return Plan::Refuse(Close::Internal);
            }
        },
    };
    let user = resolved.as_ref().map(|r| Arc::clone(&r.auth.user_id));
    let matches = state
        .matchmaking
        .as_ref()
        .zip(user)
        .map(|(mm, u)| (Arc::clone(mm), mm.waiters().user(&u), u));
    let key = cursor_key(token.as_deref(), peer);
    let origin = HeaderMap::new();
    Plan::Open(Box::new(Opening { feeds, resolved, since, key, matches, origin }))
}

/// Runs one sync socket to its end.
async fn run_ws(mut socket: WebSocket, state: &AppState, opening: Opening) {
    let Opening { feeds, resolved, since, key, matches, origin } = opening;
    let live =
        resolved.as_ref().and_then(|r| r.session).map(|s| state.live.register(s, auth::unix_now()));
    let user = resolved.as_ref().map(|r| Arc::clone(&r.auth.user_id));
    let caller = policies::caller(resolved.map(|r| r.auth).as_ref());
    let end = match feeds.open(caller, since, Some(key)).await {
        Ok(feed) => {
            let presence = state.presence.connect(user.as_deref());
            let mut sync =
                SyncSocket { socket: &mut socket, state, feed, presence, matches, origin };
            sync.follow(live.as_ref()).await
        }
        Err(e) => {
            tracing::error!(error = %e, "opening a change feed failed");
            End::Close(Close::Internal)
        }
    };
    state.metrics.count_close(end.code());
    socket::end(&mut socket, end).await;
}

/// One open sync socket: its change feed out, its presence frames in and out.
struct SyncSocket<'a> {
    socket: &'a mut WebSocket,
    state: &'a AppState,
    feed: Feed,
    /// Dropped with the socket: it leaves its rooms and topics and tells its rooms.
    presence: PresenceSocket,
    /// The matchmaker's pushes for this socket's user (`{"type":"match",…}` frames).
    matches: Option<MatchPushes>,
    /// The main port as this client reaches it.
    origin: HeaderMap,
}

impl SyncSocket<'_> {
    /// Sends the feed's events and the presence frames for this socket, and takes its
    /// presence and topic frames, until the socket, the session, the feed or the server
    /// ends.
    async fn follow(&mut self, live: Option<&LiveSession>) -> End {
        match self.serve(live).await {
            Err(end) => end,
            Ok(never) => match never {},
        }
    }

    async fn serve(&mut self, live: Option<&LiveSession>) -> Result<Infallible, End> {
        let state = self.state;
        let limits = &state.config.limits;
        let mut shutdown_rx = state.shutdown.clone();
        let mut shutdown = pin!(crate::shutting_down(&mut shutdown_rx));
        let mut ended = pin!(crate::sessions_live::ended(live));
        let mut timers = SocketTimers::new(limits);
        let mut bucket = InputBucket::new(presence::FRAMES_PER_SEC, Instant::now());
        loop {
            let outgoing = tokio::select! {
                biased;
                () = &mut shutdown => return Err(End::Close(Close::GoingAway)),
                () = &mut ended => return Err(End::Close(Close::SessionEnded)),
                msg = self.socket.next() => {
                    timers.saw_read();
                    match socket::read(msg, limits) {
                        Read::End(end) => return Err(end),
                        Read::Data(bytes) => self.client_frame(&bytes, &mut bucket)?,
                        Read::Control => None,
                    }
                }
                next = self.feed.next() => Some(self.change(next).await?),
                frame = self.presence.recv() => Some(Message::Text(Utf8Bytes::from(&*frame))),
                push = waiters::next(self.matches.as_mut().map(|(_, w, _)| w)) => {
                    self.match_frame(&push)
                }
                timer = timers.next() => {
                    timers.handle(timer, self.socket, limits).await?;
                    None
                }
            };
            if let Some(message) = outgoing {
                socket::send(self.socket, limits, message).await?;
            }
        }
    }

    /// The `{"type":"match",…}` frame of a pushed assignment (nothing for other pushes).
    fn match_frame(&self, push: &Push) -> Option<Message> {
        let (Push::Matched(a), Some((mm, _, user))) = (push, &self.matches) else { return None };
        mm.metrics().pushes_socket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let frame = crate::matchmaker::socket_frame(self.state, mm, a, user, &self.origin);
        Some(Message::Text(frame.into()))
    }

    /// A frame from the client, within the socket's frame rate (over it the socket
    /// closes with 4429): presence and topic frames are relayed, a refused one is
    /// answered with an error frame, anything else is ignored.
    fn client_frame(
        &mut self,
        bytes: &[u8],
        bucket: &mut InputBucket,
    ) -> Result<Option<Message>, End> {
        if !bucket.take(Instant::now()) {
            return Err(End::Close(Close::FrameRate));
        }
        match self.presence.handle(bytes) {
            Ok(()) => Ok(None),
            Err(e) => Ok(Some(presence_error(&e))),
        }
    }

    /// The message for the feed's next event; the end of the socket when the feed ended
    /// (a resync is announced before the close).
    async fn change(
        &mut self,
        next: Result<Option<(Arc<pylon_sync::Published>, Projection)>, EntityError>,
    ) -> Result<Message, End> {
        match next {
            Ok(Some((e, p))) => match Utf8Bytes::try_from(e.json(p)) {
                Ok(text) => Ok(Message::Text(text)),
                Err(err) => {
                    tracing::error!(error = %err, "a change event was not UTF-8");
                    Err(End::Close(Close::Internal))
                }
            },
            Ok(None) => Err(End::Close(Close::GoingAway)),
            Err(EntityError::ResyncRequired { oldest_seq, .. }) => {
                let text = json!({ "error": { "code": ErrorCode::ResyncRequired, "oldest_seq": oldest_seq } });
                let limits = &self.state.config.limits;
                let _ =
                    socket::send(self.socket, limits, Message::Text(text.to_string().into())).await;
                Err(End::Close(Close::Resync))
            }
            Err(e) => {
                tracing::error!(error = %e, "change feed failed");
                Err(End::Close(Close::Internal))
            }
        }
    }
}

/// The error frame answering a refused presence frame:
/// `{"type":"error","error":{"code","message"}}` (the socket stays open).
fn presence_error(e: &PresenceError) -> Message {
    let code = match e {
        PresenceError::AuthRequired => ErrorCode::AuthRequired,
        PresenceError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
        PresenceError::TooManyScopes | PresenceError::ScopeFull => ErrorCode::RoomLimitReached,
        _ => ErrorCode::BadRequest,
    };
    let frame = json!({"type": "error", "error": {"code": code, "message": e.to_string()}});
    Message::Text(frame.to_string().into())
}
